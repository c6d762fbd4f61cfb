// MLflow mirroring against a fake MLflow tracking server (cpp-httplib on 127.0.0.1, in this process)
// that records every request and enforces MLflow's log-batch limits (≤ 1000 metrics, ≤ 100 params,
// ≤ 1000 items) the way the real server does (HTTP 400). Asserts the exact requests: experiment lookup
// and creation, runs/create, params, every metric key at every step exactly once, and the final status
// FINISHED / FAILED / KILLED. An unreachable MLflow never fails a job; failures are counted.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "jobs/job_service.h"
#include "jobs/mlflow.h"
#include "registry/artifact_store.h"
#include "registry/registry.h"
#include "test_util.h"

namespace tl::jobs {
namespace {

using nlohmann::json;

struct Request {
  std::string method, path;
  json body;   // POST body, or {"experiment_name": …} for get-by-name
};

// A fake MLflow: experiments by name, runs with ids run-1, run-2, …
class FakeMlflow {
 public:
  FakeMlflow() {
    srv_.Get("/api/2.0/mlflow/experiments/get-by-name", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      std::string name = req.get_param_value("experiment_name");
      log_.push_back({"GET", req.path, {{"experiment_name", name}}});
      if (!experiments_.count(name)) {
        res.status = 404;
        res.set_content(R"({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no experiment"})", "application/json");
        return;
      }
      res.set_content(json({{"experiment", {{"experiment_id", experiments_[name]}, {"name", name}}}}).dump(), "application/json");
    });
    srv_.Post(R"(/api/2.0/mlflow/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      json body = json::parse(req.body, nullptr, false);
      log_.push_back({"POST", req.path, body});
      const std::string ep = req.matches[1];
      auto bad = [&](const std::string& m) {
        res.status = 400;
        res.set_content(json({{"error_code", "INVALID_PARAMETER_VALUE"}, {"message", m}}).dump(), "application/json");
      };
      if (body.is_discarded()) return bad("malformed JSON");
      if (ep == "experiments/create") {
        std::string id = std::to_string(7 + experiments_.size());
        experiments_[body["name"]] = id;
        res.set_content(json({{"experiment_id", id}}).dump(), "application/json");
      } else if (ep == "runs/create") {
        if (!body.contains("experiment_id")) return bad("missing experiment_id");
        std::string id = "run-" + std::to_string(++runs_);
        res.set_content(json({{"run", {{"info", {{"run_id", id}, {"run_uuid", id}, {"status", "RUNNING"}}}}}}).dump(), "application/json");
      } else if (ep == "runs/log-batch") {
        size_t m = body.value("metrics", json::array()).size(), p = body.value("params", json::array()).size(),
               t = body.value("tags", json::array()).size();
        if (m > 1000 || p > 100 || m + p + t > 1000) return bad("batch over MLflow's limits");
        res.set_content("{}", "application/json");
      } else if (ep == "runs/update") {
        res.set_content(json({{"run_info", {{"run_id", body["run_id"]}, {"status", body["status"]}}}}).dump(), "application/json");
      } else {
        res.status = 404;
      }
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    test::wait_until([this] { return srv_.is_running(); }, 5);
  }
  ~FakeMlflow() {
    srv_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> log() {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }
  std::vector<Request> for_run(const std::string& run_id) {
    std::vector<Request> out;
    for (const auto& r : log())
      if (r.body.is_object() && r.body.value("run_id", "") == run_id) out.push_back(r);
    return out;
  }

 private:
  httplib::Server srv_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<Request> log_;
  std::map<std::string, std::string> experiments_;
  int runs_ = 0;
};

// A loopback port with nothing listening: bound, then closed.
int closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class MlflowJobs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::temp_dir("mlflow");
    reg_ = std::move(registry::Registry::open(root_ + "/tuneloop.db")).value();
    store_ = std::make_unique<registry::ArtifactStore>(root_ + "/artifacts");
    ASSERT_TRUE(reg_->add_model({"tiny", test::tiny_model_dir(root_), 150000, "x", 0}).is_ok());
    tenant_ = reg_->create_tenant("acme", registry::Tier::kPro, -1)->tenant;
  }
  void TearDown() override {
    svc_.reset();
    reg_.reset();
    std::filesystem::remove_all(root_);
  }
  void start(const std::string& mlflow_url, std::vector<std::string> env) {
    ServiceOptions o;
    o.data_dir = root_ + "/data";
    o.trainer_path = test::fake_trainer();
    o.poll_ms = 20;
    o.trainer_env = std::move(env);
    o.pool.flops_per_second = {{"cpu", 1e12}};
    o.pool.devices = {{"cpu0", "cpu", 64 << 10, 0.0}, {"cpu1", "cpu", 64 << 10, 0.0}};
    o.mlflow.url = mlflow_url;
    o.mlflow.experiment = "team-ft";
    o.mlflow.timeout_ms = 1000;
    svc_ = std::make_unique<JobService>(*reg_, *store_, o);
    ASSERT_TRUE(svc_->start().is_ok());
  }
  std::string submit(int64_t seed, const std::string& spec = "") {
    ErrorDetail d;
    auto f = svc_->upload_file(tenant_, "train.jsonl", "fine-tune", test::chat_jsonl(4), &d);
    EXPECT_TRUE(f.is_ok());
    JobRequest req;
    req.model = "tiny";
    req.training_file = f->id;
    req.suffix = "math";
    req.seed = seed;
    req.n_epochs = 2;
    req.tuneloop_spec = spec;
    auto j = svc_->submit(tenant_, req, &d);
    EXPECT_TRUE(j.is_ok()) << j.status().message();
    return j->id;
  }
  bool wait_status(const std::string& id, const std::string& status) {
    return test::wait_until([&] { return reg_->job(tenant_.id, id)->status == status; }, 20);
  }

  std::string root_;
  std::unique_ptr<registry::Registry> reg_;
  std::unique_ptr<registry::ArtifactStore> store_;
  std::unique_ptr<JobService> svc_;
  registry::Tenant tenant_;
};

TEST_F(MlflowJobs, MirrorsParamsMetricHistoryAndFinalStatus) {
  FakeMlflow ml;
  start(ml.url(), {"TL_FAKE_STEPS=6", "TL_FAKE_STEP_MS=20", "TL_FAKE_CRASH_SEED=99"});
  const std::string ok = submit(1, "lora: {r: 8}\n");
  ASSERT_TRUE(wait_status(ok, "succeeded"));
  ASSERT_TRUE(svc_->mlflow()->flush(5000));

  auto log = ml.log();
  ASSERT_GE(log.size(), 5u);
  // The experiment is looked up by name, created when missing, then the run is created in it.
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].path, "/api/2.0/mlflow/experiments/get-by-name");
  EXPECT_EQ(log[0].body, json({{"experiment_name", "team-ft"}}));
  EXPECT_EQ(log[1].path, "/api/2.0/mlflow/experiments/create");
  EXPECT_EQ(log[1].body, json({{"name", "team-ft"}}));
  EXPECT_EQ(log[2].path, "/api/2.0/mlflow/runs/create");
  EXPECT_EQ(log[2].body["experiment_id"], "7");
  EXPECT_EQ(log[2].body["run_name"], ok);
  EXPECT_GT(log[2].body["start_time"].get<int64_t>(), 1600000000000);
  std::map<std::string, std::string> tags;
  for (const auto& t : log[2].body["tags"]) tags[t["key"]] = t["value"];
  EXPECT_EQ(tags["tuneloop.job_id"], ok);
  EXPECT_EQ(tags["tuneloop.tier"], "pro");
  EXPECT_EQ(tags["mlflow.runName"], ok);

  auto reqs = ml.for_run("run-1");
  ASSERT_GE(reqs.size(), 3u);
  // Params: one batch (under 100), written once, the request and the spec it trains with.
  EXPECT_EQ(reqs[0].path, "/api/2.0/mlflow/runs/log-batch");
  ASSERT_TRUE(reqs[0].body.contains("params"));
  EXPECT_FALSE(reqs[0].body.contains("metrics"));
  std::map<std::string, std::string> params;
  for (const auto& p : reqs[0].body["params"]) params[p["key"]] = p["value"];
  EXPECT_EQ(params["model"], "tiny");
  EXPECT_EQ(params["method_type"], "supervised");
  EXPECT_EQ(params["seed"], "1");
  EXPECT_EQ(params["suffix"], "math");
  EXPECT_EQ(params["hyperparameters.n_epochs"], "2");
  EXPECT_EQ(params["spec.method"], "lora");
  EXPECT_EQ(params["spec.lora.r"], "8");
  EXPECT_EQ(params["spec.training.epochs"], "2");
  EXPECT_EQ(params["spec.training.learning_rate"], "0.0001");
  EXPECT_LE(params.size(), 100u);
  int param_batches = 0;
  for (const auto& r : reqs) param_batches += r.body.contains("params");
  EXPECT_EQ(param_batches, 1);
  // Metrics: every key the trainer wrote, at steps 1..6, each exactly once.
  std::multiset<std::pair<std::string, int64_t>> points;
  for (const auto& r : reqs)
    if (r.body.contains("metrics"))
      for (const auto& m : r.body["metrics"]) {
        points.insert({m["key"], m["step"].get<int64_t>()});
        EXPECT_GT(m["timestamp"].get<int64_t>(), 1600000000000);
        EXPECT_TRUE(m["value"].is_number());
      }
  std::multiset<std::pair<std::string, int64_t>> want;
  for (int64_t s = 1; s <= 6; ++s)
    for (const char* k : {"epoch", "loss", "lr", "total_steps"}) want.insert({k, s});
  EXPECT_EQ(points, want);
  // The final status, last.
  EXPECT_EQ(reqs.back().path, "/api/2.0/mlflow/runs/update");
  EXPECT_EQ(reqs.back().body["status"], "FINISHED");
  EXPECT_GT(reqs.back().body["end_time"].get<int64_t>(), log[2].body["start_time"].get<int64_t>() - 1);
  EXPECT_EQ(svc_->mlflow()->failures(), 0);

  // A crashing trainer ends FAILED; a cancelled one KILLED; both in the (cached) experiment.
  const std::string bad = submit(99);
  ASSERT_TRUE(wait_status(bad, "failed"));
  const std::string slow = submit(2, "training: {max_steps: 0}\n");
  ASSERT_TRUE(test::wait_until([&] { return reg_->job(tenant_.id, slow)->status == "running"; }, 10));
  ASSERT_TRUE(svc_->cancel(tenant_, slow).is_ok());
  ASSERT_TRUE(svc_->mlflow()->flush(5000));
  std::map<std::string, std::string> final_status, run_of;
  int gets = 0;
  for (const auto& r : ml.log()) {
    gets += r.method == "GET";
    if (r.path == "/api/2.0/mlflow/runs/update") final_status[r.body["run_id"]] = r.body["status"];
  }
  EXPECT_EQ(gets, 1) << "the experiment id is cached";
  EXPECT_EQ(final_status["run-1"], "FINISHED");
  auto run_for = [&](const std::string& job) {
    for (const auto& r : ml.log())
      if (r.path == "/api/2.0/mlflow/runs/create" && r.body["run_name"] == job) return r;
    return Request{};
  };
  ASSERT_FALSE(run_for(bad).path.empty());
  ASSERT_FALSE(run_for(slow).path.empty());
  std::set<std::string> statuses;
  for (const auto& [run, st] : final_status) statuses.insert(st);
  EXPECT_EQ(statuses, (std::set<std::string>{"FINISHED", "FAILED", "KILLED"}));
  EXPECT_EQ(final_status.size(), 3u);
  EXPECT_EQ(svc_->mlflow()->failures(), 0);
}

TEST(MlflowMirror, BatchesHistoryAndParamsWithinLimits) {
  FakeMlflow ml;
  const std::string root = test::temp_dir("mlflow_batch");
  {
    MlflowMirror m(MlflowOptions{ml.url(), "big", "", 5000});
    MlflowPairs params;
    for (int i = 0; i < 150; ++i) params.push_back({fmt::format("p{}", i), std::to_string(i)});
    m.start_run("job-1", root + "/mlflow.json", "job-1", params, {});
    std::vector<MlflowMetric> pts;
    for (int64_t s = 1; s <= 1250; ++s) {
      pts.push_back({"loss", 1.0 / static_cast<double>(s), s, 1700000000000 + s});
      pts.push_back({"lr", 1e-4, s, 1700000000000 + s});
    }
    pts.push_back({"nan", std::nan(""), 1250, 1});  // JSON cannot carry it: skipped
    m.log_metrics("job-1", pts);
    // A resumed trainer re-reports steps already mirrored: dropped.
    m.log_metrics("job-1", {{"loss", 9.0, 1250, 1}, {"loss", 0.5, 1251, 1}});
    m.end_run("job-1", "FINISHED", root + "/mlflow.json");
    ASSERT_TRUE(m.flush(10000));
    EXPECT_EQ(m.failures(), 0);
  }
  std::vector<size_t> param_sizes, metric_sizes;
  std::set<std::pair<std::string, int64_t>> seen;
  size_t total = 0;
  for (const auto& r : ml.for_run("run-1")) {
    if (r.body.contains("params")) param_sizes.push_back(r.body["params"].size());
    if (r.body.contains("metrics")) {
      metric_sizes.push_back(r.body["metrics"].size());
      for (const auto& x : r.body["metrics"]) {
        seen.insert({x["key"], x["step"].get<int64_t>()});
        ++total;
      }
    }
  }
  EXPECT_EQ(param_sizes, (std::vector<size_t>{100, 50}));
  // 2501 points: full batches of 1000, then the rest (the second call may or may not have coalesced).
  ASSERT_GE(metric_sizes.size(), 3u);
  EXPECT_EQ(metric_sizes[0], 1000u);
  EXPECT_EQ(metric_sizes[1], 1000u);
  for (size_t n : metric_sizes) EXPECT_LE(n, kMlflowMaxMetricsPerBatch);
  EXPECT_EQ(total, 2501u);
  EXPECT_EQ(seen.size(), 2501u);
  EXPECT_TRUE(seen.count({"loss", 1251}));
  auto state = json::parse(*read_file(root + "/mlflow.json"));
  EXPECT_EQ(state["run_id"], "run-1");
  EXPECT_EQ(state["last_step"], 1251);
  // A new mirror (a server restart) reuses the run from the state file: no runs/create, no params.
  {
    MlflowMirror m(MlflowOptions{ml.url(), "big", "", 5000});
    m.start_run("job-1", root + "/mlflow.json", "job-1", {{"x", "y"}}, {});
    m.log_metrics("job-1", {{"loss", 0.1, 1251, 1}, {"loss", 0.1, 1252, 1}});
    ASSERT_TRUE(m.flush(5000));
  }
  int creates = 0;
  for (const auto& r : ml.log()) creates += r.path == "/api/2.0/mlflow/runs/create";
  EXPECT_EQ(creates, 1);
  auto last = ml.for_run("run-1").back();
  ASSERT_TRUE(last.body.contains("metrics"));
  EXPECT_EQ(last.body["metrics"].size(), 1u);
  EXPECT_EQ(last.body["metrics"][0]["step"], 1252);
  std::filesystem::remove_all(root);
}

TEST_F(MlflowJobs, UnreachableMlflowNeverFailsAJob) {
  start("http://127.0.0.1:" + std::to_string(closed_port()), {"TL_FAKE_STEPS=4", "TL_FAKE_STEP_MS=10"});
  const std::string id = submit(3);
  ASSERT_TRUE(wait_status(id, "succeeded"));
  ASSERT_TRUE(svc_->mlflow()->flush(10000));
  EXPECT_GT(svc_->mlflow()->failures(), 0);
  EXPECT_EQ(reg_->job(tenant_.id, id)->fine_tuned_model.rfind("ft:tiny:math:", 0), 0u);
}

}  // namespace
}  // namespace tl::jobs
