// Golden-file tests of the axolotl and unsloth exporters. Each case is a unified spec in
// tests/jobs/golden/<case>.spec.yaml; the expected outputs sit beside it as <case>.axolotl.yaml and
// <case>.unsloth.py. After an intended change, regenerate with TL_UPDATE_GOLDEN=1 and review the diff.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/file.h"
#include "jobs/exporters.h"
#include "jobs/job_spec.h"

namespace tl::jobs {
namespace {

const std::string kGolden = std::string(TL_SOURCE_DIR) + "/tests/jobs/golden/";

void check_golden(const std::string& path, const std::string& actual) {
  if (std::getenv("TL_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(path, actual).is_ok());
    return;
  }
  auto expected = read_file(path);
  ASSERT_TRUE(expected.is_ok()) << path << " is missing; run with TL_UPDATE_GOLDEN=1 to create it";
  EXPECT_EQ(actual, *expected) << "exporter output differs from " << path;
}

class Exporters : public ::testing::TestWithParam<std::string> {};

TEST_P(Exporters, MatchGoldenFiles) {
  const std::string spec_path = kGolden + GetParam() + ".spec.yaml";
  auto text = read_file(spec_path);
  ASSERT_TRUE(text.is_ok()) << text.status().message();
  auto spec = parse_job_spec(*text, spec_path);
  ASSERT_TRUE(spec.is_ok()) << spec.status().message();
  check_golden(kGolden + GetParam() + ".axolotl.yaml", export_axolotl_yaml(*spec));
  check_golden(kGolden + GetParam() + ".unsloth.py", export_unsloth_script(*spec));
}

INSTANTIATE_TEST_SUITE_P(Cases, Exporters, ::testing::Values("lora_chat", "qlora_sharegpt_validation", "dpo", "dpo_qlora", "dpo_full", "full_alpaca", "qlora_bf16"));

}  // namespace
}  // namespace tl::jobs
