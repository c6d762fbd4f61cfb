// Restart safety: a real server process with one running and one queued job is killed with SIGKILL;
// the trainer dies with it (PR_SET_PDEATHSIG); a new server on the same database finds the queued job
// still queued and resumes the running one from its last checkpoint (`--resume`, attempt 2). Both
// finish, every metric step is recorded exactly once, and both launches of the first job are charged.
// Also drives the CLI subcommands (tenant add, model add, lineage) that share the binary.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "registry/registry.h"
#include "server_process.h"

namespace tl::jobs {
namespace {

using nlohmann::json;

TEST(Restart, KillDashNineLosesNothing) {
  const std::string root = test::temp_dir("restart");
  const std::string db = root + "/tuneloop.db", data = root + "/data";
  const std::string cp = test::control_plane();
  auto [tc, key_out] = test::run_command(cp + " tenant add acme --tier pro --quota-hours -1 --db " + db + " 2>/dev/null");
  ASSERT_EQ(tc, 0) << key_out;
  std::string key = key_out.substr(0, key_out.find('\n'));
  ASSERT_EQ(key.rfind("tl-", 0), 0u) << key;
  auto [mc, mout] = test::run_command(cp + " model add tiny " + test::tiny_model_dir(root) + " --db " + db);
  ASSERT_EQ(mc, 0) << mout;
  EXPECT_NE(mout.find("registered model tiny"), std::string::npos);
  auto [bad, bad_out] = test::run_command(cp + " tenant add x --tier gold --db " + db + " 2>&1");
  EXPECT_EQ(bad, 2);
  EXPECT_EQ(bad_out, "error: --tier: expected enterprise, pro or free, got 'gold'\n");
  ASSERT_TRUE(write_file_atomic(root + "/devices.yaml", "devices:\n  - {id: gpu0, kind: cpu, memory_gb: 64}\n").is_ok());
  const std::vector<std::string> args = {"server", "--db", db, "--port", "0", "--data-dir", data, "--trainer", test::fake_trainer(),
                                         "--devices", root + "/devices.yaml", "--threads", "4"};
  const std::vector<std::string> env = {"TL_FAKE_STEPS=30", "TL_FAKE_STEP_MS=40"};

  std::string job_a, job_b;
  int64_t trainer_pid = 0;
  {
    test::ServerProcess server(args, env);
    ASSERT_GT(server.port(), 0);
    httplib::Client c("127.0.0.1", server.port());
    c.set_bearer_token_auth(key.c_str());
    httplib::MultipartFormDataItems items = {{"file", test::chat_jsonl(4), "train.jsonl", ""}, {"purpose", "fine-tune", "", ""}};
    auto up = c.Post("/v1/files", items);
    ASSERT_TRUE(up && up->status == 200);
    std::string file = json::parse(up->body)["id"];
    json req = {{"model", "tiny"}, {"training_file", file}, {"tuneloop_spec", "checkpointing: {every_steps: 5}\n"}};
    job_a = json::parse(c.Post("/v1/fine_tuning/jobs", req.dump(), "application/json")->body)["id"];
    job_b = json::parse(c.Post("/v1/fine_tuning/jobs", req.dump(), "application/json")->body)["id"];
    // Wait for A to run past its first checkpoint while B waits for the only device.
    ASSERT_TRUE(test::wait_until([&] {
      auto r = c.Get(("/v1/fine_tuning/jobs/" + job_a + "/checkpoints").c_str());
      return r && json::parse(r->body)["data"].size() >= 2;
    }, 20));
    EXPECT_EQ(json::parse(c.Get(("/v1/fine_tuning/jobs/" + job_b).c_str())->body)["status"], "queued");
    auto reg = registry::Registry::open(db);
    trainer_pid = (*reg)->job_any_tenant(job_a)->pid;
    ASSERT_GT(trainer_pid, 0);
    int st = server.signal_and_wait(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(st));
  }
  // The trainer died with its server.
  EXPECT_TRUE(test::wait_until([&] { return kill(static_cast<pid_t>(trainer_pid), 0) != 0; }, 5));
  {
    auto reg = std::move(registry::Registry::open(db)).value();
    EXPECT_EQ(reg->job_any_tenant(job_a)->status, "running");
    EXPECT_EQ(reg->job_any_tenant(job_b)->status, "queued");
  }
  {
    test::ServerProcess server(args, env);
    ASSERT_GT(server.port(), 0);
    httplib::Client c("127.0.0.1", server.port());
    c.set_bearer_token_auth(key.c_str());
    for (const std::string& id : {job_a, job_b}) {
      ASSERT_TRUE(test::wait_until([&] {
        auto r = c.Get(("/v1/fine_tuning/jobs/" + id).c_str());
        return r && json::parse(r->body)["status"] == "succeeded";
      }, 30)) << id;
    }
    EXPECT_EQ(server.signal_and_wait(SIGTERM), 0);  // graceful stop exits 0
  }
  auto reg = std::move(registry::Registry::open(db)).value();
  auto a = *reg->job_any_tenant(job_a);
  EXPECT_EQ(a.attempts, 2);
  EXPECT_EQ(reg->job_any_tenant(job_b)->attempts, 1);
  auto resumed = read_file(a.output_dir + "/resume.log");
  ASSERT_TRUE(resumed.is_ok());
  EXPECT_EQ(resumed->rfind("resumed from step ", 0), 0u);
  EXPECT_NE(*resumed, "resumed from step 0\n");
  auto loss = reg->metric_history(reg->run_for_job(job_a)->id, "loss");
  ASSERT_EQ(loss->size(), 30u);  // each step once, across both launches
  for (size_t i = 0; i < loss->size(); ++i) EXPECT_EQ((*loss)[i].step, static_cast<int64_t>(i + 1));
  bool saw_resume = false;
  auto events = reg->events(job_a, {"", 200});
  for (const auto& e : *events)
    saw_resume |= e.message.rfind("Fine-tuning job resumed from checkpoint step", 0) == 0;
  EXPECT_TRUE(saw_resume);
  EXPECT_EQ(reg->checkpoints(job_a)->size(), 6u);
  // Lineage through the CLI: adapter → job → dataset.
  auto adapters = *reg->adapters(a.tenant_id);
  ASSERT_EQ(adapters.size(), 2u);
  auto [lc, lout] = test::run_command(cp + " lineage " + a.fine_tuned_model + " --db " + db);
  ASSERT_EQ(lc, 0) << lout;
  EXPECT_NE(lout.find("adapter  " + a.fine_tuned_model), std::string::npos) << lout;
  EXPECT_NE(lout.find("job      " + job_a + " — succeeded"), std::string::npos) << lout;
  EXPECT_NE(lout.find("dataset  " + a.training_file + " train.jsonl — 4 lines, openai_chat"), std::string::npos) << lout;
  auto [nc, nout] = test::run_command(cp + " lineage ft:nope --db " + db + " 2>&1");
  EXPECT_EQ(nc, 3);
  EXPECT_EQ(nout, "error: no adapter 'ft:nope'\n");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tl::jobs
