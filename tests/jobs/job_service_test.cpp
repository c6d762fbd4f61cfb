// JobService with the native runner on the test-double trainer (fake_trainer.cpp): a job runs to
// success with metrics, events, checkpoints, an adapter and charged usage; a crashing trainer fails
// the job with its last stderr lines; cancel kills the process group; quotas refuse a submit; the
// lifecycle never skips a state.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "jobs/job_service.h"
#include "registry/artifact_store.h"
#include "registry/registry.h"
#include "test_util.h"

namespace tl::jobs {
namespace {

using registry::JobRecord;

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::temp_dir("jobsvc");
    reg_ = std::move(registry::Registry::open(root_ + "/tuneloop.db")).value();
    store_ = std::make_unique<registry::ArtifactStore>(root_ + "/artifacts");
    auto model_dir = test::tiny_model_dir(root_);
    ASSERT_TRUE(reg_->add_model({"tiny", model_dir, 150000, "x", 0}).is_ok());
    tenant_ = reg_->create_tenant("acme", registry::Tier::kPro, -1)->tenant;
  }
  void TearDown() override {
    svc_.reset();
    reg_.reset();
    std::filesystem::remove_all(root_);
  }
  void start(std::vector<std::string> env = {}, int devices = 1) {
    ServiceOptions o;
    o.data_dir = root_ + "/data";
    o.trainer_path = test::fake_trainer();
    o.poll_ms = 20;
    o.trainer_env = std::move(env);
    o.pool.flops_per_second = {{"cpu", 1e12}};
    o.pool.devices.clear();
    for (int i = 0; i < devices; ++i) o.pool.devices.push_back({"cpu" + std::to_string(i), "cpu", 64 << 10, 3.0});
    svc_ = std::make_unique<JobService>(*reg_, *store_, o);
    ASSERT_TRUE(svc_->start().is_ok());
  }
  std::string upload(int lines = 4) {
    ErrorDetail d;
    auto f = svc_->upload_file(tenant_, "train.jsonl", "fine-tune", test::chat_jsonl(lines), &d);
    EXPECT_TRUE(f.is_ok()) << f.status().message();
    return f->id;
  }
  JobRecord wait_status(const std::string& id, const std::string& status, double seconds = 20) {
    JobRecord j;
    test::wait_until([&] {
      j = *reg_->job(tenant_.id, id);
      return j.status == status;
    }, seconds);
    return j;
  }
  std::vector<std::string> messages(const std::string& id) {
    std::vector<std::string> out;
    auto events = reg_->events(id, {"", 100});  // keep the Result alive while iterating
    for (const auto& e : *events) out.insert(out.begin(), e.message);
    return out;
  }

  std::string root_;
  std::unique_ptr<registry::Registry> reg_;
  std::unique_ptr<registry::ArtifactStore> store_;
  std::unique_ptr<JobService> svc_;
  registry::Tenant tenant_;
};

TEST_F(JobServiceTest, RunsToSuccessWithMetricsCheckpointsAdapterAndUsage) {
  start({"TL_FAKE_STEPS=6", "TL_FAKE_STEP_MS=30"});
  JobRequest req;
  req.model = "tiny";
  req.training_file = upload();
  req.suffix = "math";
  req.n_epochs = 2;
  req.batch_size = 8;
  req.seed = 11;
  req.tuneloop_spec = "checkpointing: {every_steps: 2}\n";
  ErrorDetail d;
  auto j = svc_->submit(tenant_, req, &d);
  ASSERT_TRUE(j.is_ok()) << j.status().message();
  EXPECT_EQ(j->status, "validating_files");
  EXPECT_GT(j->estimated_device_hours, 0);
  EXPECT_NEAR(j->estimated_cost, j->estimated_device_hours * 3.0, 1e-12);
  EXPECT_GE(j->estimated_finish, j->created_at);
  EXPECT_EQ(j->hyperparameters, R"({"batch_size":8,"learning_rate_multiplier":1.0,"n_epochs":2})");
  JobRecord done = wait_status(j->id, "succeeded");
  ASSERT_EQ(done.status, "succeeded") << testing::PrintToString(messages(j->id));
  EXPECT_EQ(done.fine_tuned_model, "ft:tiny:math:" + j->id.substr(6));
  EXPECT_EQ(done.attempts, 1);
  auto run = reg_->run_for_job(j->id);
  auto loss = reg_->metric_history(run->id, "loss");
  ASSERT_EQ(loss->size(), 6u);
  EXPECT_DOUBLE_EQ((*loss)[1].value, 1.0);
  auto ck = reg_->checkpoints(j->id);
  ASSERT_EQ(ck->size(), 3u);  // steps 2, 4, 6
  EXPECT_EQ((*ck)[0].step, 6);
  EXPECT_EQ((*ck)[0].metrics, R"({"epoch":1.0,"lr":0.0001,"step":6,"total_steps":6.0,"train_loss":0.333333})");
  auto msgs = messages(j->id);
  ASSERT_GE(msgs.size(), 10u);
  EXPECT_EQ(msgs[0], "Created fine-tuning job: " + j->id);
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "Files validated; fine-tuning job queued"), msgs.end());
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "Fine-tuning job started on device cpu0"), msgs.end());
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "Step 2/6: training loss=1.0000"), msgs.end());
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "Checkpoint created at step 4"), msgs.end());
  EXPECT_EQ(msgs.back(), "The job has successfully completed");
  auto adapters = reg_->adapters(tenant_.id);
  ASSERT_EQ(adapters->size(), 1u);
  EXPECT_EQ((*adapters)[0].state, registry::AdapterState::kDraft);
  EXPECT_EQ((*adapters)[0].domain, "math");
  EXPECT_TRUE(store_->contains((*adapters)[0].sha256));
  EXPECT_GT(*reg_->usage_hours(tenant_.id, registry::month_key(done.attempt_started_at ? done.attempt_started_at : done.started_at)), 0);
  // The spec the trainer ran is the unified spec with the service's paths.
  auto spec = read_file(svc_->job_dir(j->id) + "/spec.yaml");
  ASSERT_TRUE(spec.is_ok());
  EXPECT_NE(spec->find("every_steps: 2"), std::string::npos);
  EXPECT_NE(spec->find("seed: 11"), std::string::npos);
}

TEST_F(JobServiceTest, CrashedTrainerFailsTheJobWithItsLastStderrLines) {
  start({"TL_FAKE_STEPS=6", "TL_FAKE_STEP_MS=10", "TL_FAKE_CRASH_SEED=13"});
  JobRequest req;
  req.model = "tiny";
  req.training_file = upload();
  req.seed = 13;
  ErrorDetail d;
  auto j = svc_->submit(tenant_, req, &d);
  ASSERT_TRUE(j.is_ok());
  JobRecord done = wait_status(j->id, "failed");
  ASSERT_EQ(done.status, "failed");
  EXPECT_EQ(done.error,
            R"x({"code":"trainer_failed","message":"the trainer exited with status 3:\nloading batch 3\nerror: CUDA out of memory at step 3 (fake)","param":null})x");
  EXPECT_EQ(reg_->metric_history(reg_->run_for_job(j->id)->id, "loss")->size(), 2u);
  EXPECT_TRUE(reg_->adapters(tenant_.id)->empty());
}

TEST_F(JobServiceTest, CancelKillsTheProcessGroupAndDequeues) {
  start({"TL_FAKE_STEPS=1000", "TL_FAKE_STEP_MS=20"});
  JobRequest req;
  req.model = "tiny";
  req.training_file = upload();
  ErrorDetail d;
  auto a = svc_->submit(tenant_, req, &d);
  auto b = svc_->submit(tenant_, req, &d);  // one device: b waits in the queue
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  JobRecord ra = wait_status(a->id, "running");
  ASSERT_EQ(ra.status, "running");
  ASSERT_TRUE(test::wait_until([&] { return reg_->job(tenant_.id, a->id)->pid > 0; }, 5));
  int64_t pgid = reg_->job(tenant_.id, a->id)->pid;
  ASSERT_EQ(wait_status(b->id, "queued").status, "queued");
  auto cb = svc_->cancel(tenant_, b->id);
  ASSERT_TRUE(cb.is_ok());
  EXPECT_EQ(cb->status, "cancelled");
  auto ca = svc_->cancel(tenant_, a->id);
  ASSERT_TRUE(ca.is_ok()) << ca.status().message();
  EXPECT_EQ(ca->status, "cancelled");
  EXPECT_EQ(kill(static_cast<pid_t>(-pgid), 0), -1);  // the whole group is gone
  auto again = svc_->cancel(tenant_, a->id);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(again.status().message(), "job " + a->id + " has already cancelled; it cannot be cancelled");
  EXPECT_EQ(reg_->job(tenant_.id, b->id)->attempts, 0);  // never ran
  EXPECT_GT(*reg_->usage_hours(tenant_.id, registry::month_key(ra.attempt_started_at)), 0);  // a's run time is charged
}

TEST_F(JobServiceTest, QuotaRefusesSubmitsThatWouldExceedIt) {
  start();
  auto poor = reg_->create_tenant("poor", registry::Tier::kFree, 1e-5)->tenant;
  ErrorDetail d;
  auto f = svc_->upload_file(poor, "big.jsonl", "fine-tune", test::chat_jsonl(2000), &d);
  ASSERT_TRUE(f.is_ok());
  JobRequest req;
  req.model = "tiny";
  req.training_file = f->id;
  req.n_epochs = 50;
  auto j = svc_->submit(poor, req, &d);
  ASSERT_FALSE(j.is_ok());
  EXPECT_EQ(j.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(d.code, "quota_exceeded");
  EXPECT_NE(j.status().message().find("device-hour quota exceeded: this job needs an estimated"), std::string::npos);
  EXPECT_NE(j.status().message().find("tenant 'poor' has used 0 and reserved 0 of its 1e-05 device-hours for "), std::string::npos);
  EXPECT_TRUE(reg_->jobs(poor.id, {})->empty());
}

TEST_F(JobServiceTest, RequestErrorsCarryParamAndCode) {
  start();
  ErrorDetail d;
  JobRequest req;
  req.model = "gpt-9";
  req.training_file = upload();
  auto r = svc_->submit(tenant_, req, &d);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d.param, "model");
  EXPECT_EQ(d.code, "model_not_found");
  req.model = "tiny";
  req.method = "dpo";
  r = svc_->submit(tenant_, req, &d);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.param, "training_file");
  req.method = "supervised";
  req.tuneloop_spec = "training: {epochs: 0}\n";
  r = svc_->submit(tenant_, req, &d);
  EXPECT_EQ(r.status().message(), "tuneloop_spec: training.epochs must be in [1, 1000], got 0");
  EXPECT_EQ(d.param, "tuneloop_spec");
  auto up = svc_->upload_file(tenant_, "x.jsonl", "assistants", "{}", &d);
  EXPECT_EQ(d.param, "purpose");
}

}  // namespace
}  // namespace tl::jobs
