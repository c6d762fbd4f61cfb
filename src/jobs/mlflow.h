// MlflowMirror: mirrors each fine-tuning run into an MLflow tracking server through its REST API, so
// teams that live in MLflow see tuneloop runs next to their others. The registry stays the record; the
// mirror is best effort: a failure to reach MLflow never fails or delays a job — it is counted
// (failures()) and logged to stderr, and the request is dropped.
//
//   start_run  → GET  /api/2.0/mlflow/experiments/get-by-name   (experiment id, cached; created with
//                POST /api/2.0/mlflow/experiments/create when missing)
//                POST /api/2.0/mlflow/runs/create               {experiment_id, run_name, start_time, tags}
//                POST /api/2.0/mlflow/runs/log-batch            params, ≤ 100 per request
//   log_metrics→ POST /api/2.0/mlflow/runs/log-batch            metrics, ≤ 1000 per request (the history
//                                                                is batched; queued points coalesce)
//   end_run    → POST /api/2.0/mlflow/runs/update               {run_id, status FINISHED|FAILED|KILLED, end_time}
//
// MLflow's log-batch limits are 1000 metrics, 100 params and 1000 items in total per request; params
// and metrics go in separate requests so neither limit can be crossed. Params are written once per run
// (MLflow rejects changing a param). Non-finite metric values are skipped (JSON cannot carry them).
//
// Restart safety: the run id and the newest mirrored step live in STATE_FILE (the job's
// `mlflow.json`), so a server restart resumes the same MLflow run and does not log a step twice.
//
// One worker thread drains a FIFO queue, so calls never block on the network and the requests of one
// job keep their order. Usage:
//   MlflowMirror m(MlflowOptions{"http://127.0.0.1:5000", "tuneloop", "", 5000});
//   m.start_run("ftjob-1", dir + "/mlflow.json", "ftjob-1", {{"method", "lora"}}, {{"tuneloop.job_id", "ftjob-1"}});
//   m.log_metrics("ftjob-1", {{"loss", 1.9, 1, now_ms}});
//   m.end_run("ftjob-1", "FINISHED");
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tl::jobs {

struct MlflowOptions {
  std::string url;                     // tracking server, http(s)://host[:port][/prefix]; "" = disabled
  std::string experiment = "tuneloop";  // experiment name runs go to (created when missing)
  std::string token;                   // optional bearer token (MLFLOW_TRACKING_TOKEN)
  int timeout_ms = 5000;               // connect and read timeout per request
};

struct MlflowMetric {
  std::string key;
  double value = 0;
  int64_t step = 0;
  int64_t timestamp_ms = 0;
};

using MlflowPairs = std::vector<std::pair<std::string, std::string>>;

// MLflow's per-request limits for runs/log-batch.
inline constexpr size_t kMlflowMaxMetricsPerBatch = 1000;
inline constexpr size_t kMlflowMaxParamsPerBatch = 100;

class MlflowMirror {
 public:
  explicit MlflowMirror(MlflowOptions options);
  ~MlflowMirror();  // drains what is queued (bounded by flush()), then stops the worker
  MlflowMirror(const MlflowMirror&) = delete;
  MlflowMirror& operator=(const MlflowMirror&) = delete;

  // Creates the job's MLflow run unless STATE_FILE already names one (a relaunch), and logs `params`.
  void start_run(const std::string& job_id, const std::string& state_file, const std::string& run_name, MlflowPairs params,
                 MlflowPairs tags);
  // Points with a step at or below the newest mirrored one are dropped (a resumed trainer re-reports).
  void log_metrics(const std::string& job_id, std::vector<MlflowMetric> points);
  // status: FINISHED | FAILED | KILLED. A job whose run was never started (no start_run in this process
  // and no STATE_FILE) is left alone.
  void end_run(const std::string& job_id, const std::string& status, const std::string& state_file);
  // Waits until the queue is empty and the worker idle, at most `timeout_ms`; true when drained.
  bool flush(int timeout_ms);

  int64_t failures() const { return failures_.load(); }
  int64_t requests() const { return requests_.load(); }

 private:
  struct Task {
    enum Kind { kStart, kMetrics, kEnd } kind;
    std::string job_id;
    std::string state_file, run_name, status;
    MlflowPairs params, tags;
    std::vector<MlflowMetric> metrics;
    int64_t time_ms = 0;
  };
  struct RunState {
    std::string state_file;
    std::string run_id;
    int64_t last_step = 0;
  };

  void loop();
  void run_task(Task& t);
  bool ensure_run(const std::string& job_id, RunState& rs, const Task* start, const std::string& state_file = "");
  bool post(const std::string& endpoint, const std::string& body, std::string* response);
  bool experiment_id(std::string* id);
  void save(const RunState& rs);
  void fail(const std::string& what);

  MlflowOptions options_;
  std::string host_, prefix_;

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread thread_;

  // Worker-only state.
  std::map<std::string, RunState> runs_;
  std::map<std::string, Task> pending_start_;  // start requests whose runs/create failed: retried lazily
  std::string experiment_id_;

  std::atomic<int64_t> failures_{0}, requests_{0};
};

}  // namespace tl::jobs
