// JobService: the fine-tuning job lifecycle — uploads, submit with preflight estimate and quota check,
// the dispatcher that feeds the scheduler and runs trainers, cancel, and recovery after a restart.
//
// Job lifecycle (status strings are OpenAI's):
//
//   submit() ─► validating_files ─► queued ─► running ─┬─► succeeded   (trainer exit 0; adapter registered)
//                     │              │   ▲       │      └─► failed      (non-zero exit / signal: last stderr lines)
//                     │              │   │       │
//                     └─► failed     │   └───────┘ restart: the trainer died with the server; on start the job
//                   (file vanished)  │             is relaunched with --resume (attempts + 1) on its device
//                                    ▼
//          cancel() from validating_files / queued / running ─► cancelled (process group killed)
//
// | from             | to               | by                        | side effects                                  |
// |------------------|------------------|---------------------------|-----------------------------------------------|
// | (none)           | validating_files | submit                    | estimate, quota reserved, run row, events     |
// | validating_files | queued           | dispatcher (admit)        | scheduler.enqueue                             |
// | validating_files | failed           | dispatcher (admit)        | file missing from the artifact store          |
// | queued           | running          | dispatcher (schedule)     | spec.yaml written, trainer launched           |
// | running          | running          | start() after a crash     | orphan killed, usage charged, relaunch resume |
// | running          | succeeded        | dispatcher (child exit 0) | usage charged, adapter (draft) registered     |
// | running          | failed           | dispatcher (exit ≠ 0)     | usage charged, error = last stderr lines      |
// | any non-terminal | cancelled        | cancel                    | dequeue or kill group, usage charged          |
//
// Invariants: a running job has a device and (once launched) a pid; a queued job is in the scheduler;
// terminal states never change; every state change is also an event. Everything is in the registry
// before it is acted on, so kill -9 of the server at any point loses nothing (see start()).
//
// Quotas: a submit is refused (kResourceExhausted, code quota_exceeded) when this month's charged
// device-hours + the estimates of the tenant's unfinished jobs + this job's estimate exceed the
// tenant's monthly quota. Usage is charged per launch from actual run time (wall clock on the device).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "jobs/devices.h"
#include "jobs/job_spec.h"
#include "jobs/mlflow.h"
#include "jobs/runner.h"
#include "jobs/scheduler.h"
#include "registry/artifact_store.h"
#include "registry/registry.h"

namespace tl::jobs {

struct ServiceOptions {
  std::string data_dir = "tuneloop-data";  // jobs/<id>/{spec.yaml,stdout.log,stderr.log,output/}
  std::string trainer_path;                // `tuneloop` (runs `trainer train SPEC [--resume]`)
  DevicePool pool = default_device_pool();
  std::vector<std::string> trainer_env;  // extra NAME=VALUE for every trainer
  int poll_ms = 200;
  int cancel_grace_ms = 2000;
  MlflowOptions mlflow;  // url "" = no mirroring (see mlflow.h)
};

// OpenAI error-object fields a failure should carry besides its message.
struct ErrorDetail {
  std::string param;
  std::string code;
};

struct JobRequest {
  std::string model;
  std::string training_file;
  std::string validation_file;
  std::string suffix;
  std::optional<int64_t> seed;
  std::string method = "supervised";  // supervised | dpo
  std::optional<int64_t> n_epochs;
  std::optional<int64_t> batch_size;
  std::optional<double> learning_rate_multiplier;
  std::optional<double> beta;  // dpo
  std::string tuneloop_spec;   // optional YAML; paths are overridden by the service
};

class JobService {
 public:
  JobService(registry::Registry& reg, registry::ArtifactStore& store, ServiceOptions options);
  ~JobService();
  JobService(const JobService&) = delete;
  JobService& operator=(const JobService&) = delete;

  // Recovers state from the registry (see the table above), then starts the dispatcher thread.
  Status start();
  // Stops the dispatcher; running trainers are killed and stay `running` in the registry, so the next
  // start() resumes them — a graceful stop and a crash recover the same way.
  void stop();

  Result<registry::FileRecord> upload_file(const registry::Tenant& t, const std::string& filename, const std::string& purpose,
                                           std::string_view content, ErrorDetail* detail);
  Result<registry::JobRecord> submit(const registry::Tenant& t, const JobRequest& req, ErrorDetail* detail);
  Result<registry::JobRecord> cancel(const registry::Tenant& t, const std::string& job_id);

  registry::Registry& registry() { return reg_; }
  // The MLflow mirror, null when no URL is configured (failures(), requests(), flush()).
  MlflowMirror* mlflow() { return mlflow_.get(); }
  const ServiceOptions& options() const { return options_; }
  std::string job_dir(const std::string& job_id) const { return options_.data_dir + "/jobs/" + job_id; }
  // One dispatcher iteration (admit, poll running, schedule); the thread calls it every poll_ms.
  void tick();

 private:
  struct Running {
    TrainerProcess proc;
    std::string device_id;
    std::set<int64_t> checkpoints;                      // steps already registered
    std::map<int64_t, std::map<std::string, double>> recent;  // step → metrics, for checkpoint rows
    int64_t total_steps = 0;
    int64_t max_step = 0;  // newest step already turned into an event (a resumed trainer rewrites older lines)
    int64_t last_heartbeat = 0;
    uint64_t metrics_file_id = 0;  // inode of metrics.jsonl at launch; a new one means the trainer rewrote it
  };

  void loop();
  void admit_validating();
  void launch(const Assignment& a);
  void ingest(registry::JobRecord& job, Running& r);
  void finish(registry::JobRecord& job, Running& r, const ExitStatus& exit);
  void charge(const registry::JobRecord& job, int64_t until);
  void event(const std::string& job_id, const std::string& level, const std::string& message, const std::string& data = "");
  void mirror_start(const registry::JobRecord& job);

  registry::Registry& reg_;
  registry::ArtifactStore& store_;
  ServiceOptions options_;

  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  Scheduler scheduler_;
  std::map<std::string, Running> running_;
  std::vector<std::string> to_resume_;  // running at start(): relaunch with --resume on their device
  bool stop_ = false;
  bool wake_ = false;
  std::thread thread_;
  std::mutex submit_mu_;  // makes quota check + insert atomic
  std::unique_ptr<MlflowMirror> mlflow_;
};

}  // namespace tl::jobs
