// End-to-end with the official `openai` Node SDK (fetched by scripts/fetch_openai_sdk.sh as the ctest
// fixture openai_sdk): a real server process, a tenant and a tiny model registered through the CLI,
// then tests/jobs/e2e/openai_sdk_e2e.cjs uploads, trains (test-double trainer), polls events,
// lists checkpoints and cancels a job. A missing node or SDK fails the test.
#include <gtest/gtest.h>

#include <filesystem>

#include "server_process.h"

namespace tl::jobs {
namespace {

TEST(OpenAiSdk, UploadTrainPollCheckpointsCancel) {
  const std::string sdk = std::string(TL_SOURCE_DIR) + "/third_party/npm/openai-sdk/node_modules/openai";
  ASSERT_TRUE(file_exists(sdk + "/package.json")) << sdk << " is missing: run scripts/fetch_openai_sdk.sh (ctest does)";
  const std::string root = test::temp_dir("e2e");
  const std::string db = root + "/tuneloop.db", cp = test::control_plane();
  auto [tc, key_out] = test::run_command(cp + " tenant add e2e --tier enterprise --db " + db + " 2>/dev/null");
  ASSERT_EQ(tc, 0);
  std::string key = key_out.substr(0, key_out.find('\n'));
  ASSERT_EQ(test::run_command(cp + " model add tiny " + test::tiny_model_dir(root) + " --db " + db).first, 0);
  ASSERT_TRUE(write_file_atomic(root + "/train.jsonl", test::chat_jsonl(8)).is_ok());
  test::ServerProcess server({"server", "--db", db, "--port", "0", "--data-dir", root + "/data", "--trainer", test::fake_trainer(),
                              "--threads", "8"},
                             {"TL_FAKE_STEPS=6", "TL_FAKE_STEP_MS=30"});
  ASSERT_GT(server.port(), 0);
  std::string cmd = "OPENAI_BASE_URL=http://127.0.0.1:" + std::to_string(server.port()) + "/v1 OPENAI_API_KEY=" + key +
                    " TL_OPENAI_SDK_DIR=" + sdk + " TL_TRAIN_FILE=" + root + "/train.jsonl timeout 60 node " +
                    std::string(TL_SOURCE_DIR) + "/tests/jobs/e2e/openai_sdk_e2e.cjs 2>&1";
  auto [rc, out] = test::run_command(cmd);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\nok\n"), std::string::npos) << out;
  std::printf("%s", out.c_str());
  server.signal_and_wait(SIGTERM);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs
