// `tuneloop calibrate` on a tiny model: it measures LoRA training steps through forward_backward, writes
// a positive tokens/s + FLOP/s entry for the device kind named by --devices into the calibration table
// (keeping other kinds), and the preflight estimate uses that figure instead of the built-in one.
#include <gtest/gtest.h>

#include <filesystem>

#include "jobs/devices.h"
#include "jobs/estimate.h"
#include "model/random_model.h"
#include "server_process.h"

namespace tl::jobs {
namespace {

TEST(Calibrate, WritesMeasuredEntryThatTheEstimatorUses) {
  const std::string root = test::temp_dir("calibrate");
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  ASSERT_TRUE(write_random_model(root + "/tiny", c, 1).is_ok());
  ASSERT_TRUE(write_file_atomic(root + "/devices.yaml", "devices:\n  - {id: gpu0, kind: l4, memory_gb: 24, price_per_hour: 0.8}\n").is_ok());
  const std::string table = root + "/calibration.yaml";
  ASSERT_TRUE(write_file_atomic(table, "calibration:\n  h100: 3.0e14\n").is_ok());  // another kind: kept

  const std::string bin = std::string(TL_BINARY_DIR) + "/tuneloop";
  auto [rc, out] = test::run_command(bin + " calibrate --devices " + root + "/devices.yaml --model " + root +
                                     "/tiny --out " + table + " --steps 2 --seq-len 64 2>&1");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out.rfind("calibrated l4: ", 0), 0u) << out;

  auto entries = read_calibration_file(table);
  ASSERT_TRUE(entries.is_ok()) << entries.status().message();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ(entries->at("h100").flops_per_second, 3.0e14);
  const CalibrationEntry& e = entries->at("l4");
  auto shape = read_model_shape(root + "/tiny");
  ASSERT_TRUE(shape.is_ok());
  EXPECT_GT(e.tokens_per_second, 10.0);   // a 2-layer h64 model trains far faster than this on any CPU
  EXPECT_LT(e.tokens_per_second, 1e8);
  JobSpec spec;  // lora with gradient checkpointing: what calibrate measures
  EXPECT_NEAR(e.flops_per_second, e.tokens_per_second * flops_per_token(*shape, spec), e.flops_per_second * 1e-5);
  EXPECT_EQ(e.parameters, shape->parameters);
  EXPECT_EQ(e.seq_len, 64);
  EXPECT_EQ(e.steps, 2);
  EXPECT_EQ(e.method, "lora");
  EXPECT_EQ(e.model, std::filesystem::absolute(root + "/tiny").string());
  EXPECT_FALSE(e.measured_at.empty());

  // The estimator: built-in l4 figure without the table, the measured one with it.
  auto pool = load_device_pool(root + "/devices.yaml");
  ASSERT_TRUE(pool.is_ok());
  auto before = estimate_job(*shape, spec, 100000, 0, *pool);
  ASSERT_TRUE(before.is_ok());
  ASSERT_TRUE(apply_calibration_file(table, &*pool).is_ok());
  EXPECT_DOUBLE_EQ(*pool->throughput(pool->devices[0]), e.flops_per_second);
  auto after = estimate_job(*shape, spec, 100000, 0, *pool);
  ASSERT_TRUE(after.is_ok());
  EXPECT_DOUBLE_EQ(after->device_hours, after->flops / e.flops_per_second / 3600.0);
  EXPECT_NE(after->device_hours, before->device_hours);
  EXPECT_DOUBLE_EQ(before->device_hours, before->flops / default_calibration()["l4"] / 3600.0);

  // Errors name the file and line.
  ASSERT_TRUE(write_file_atomic(root + "/bad.yaml", "calibration:\n  cpu: {flops_per_second: -1}\n").is_ok());
  auto bad = read_calibration_file(root + "/bad.yaml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), root + "/bad.yaml:2: calibration for 'cpu': flops_per_second must be positive");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs
