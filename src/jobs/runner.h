// The native runner: one `tuneloop train SPEC.yaml [--resume]` child per running job, in its own
// process group (so cancel kills the trainer and anything it started), with stdout/stderr in the job's
// work directory, plus the readers that turn what the trainer writes into registry rows:
//
//   OUTPUT_DIR/metrics.jsonl            one JSON object per line: {"step": 10, "loss": 1.9, "lr": 1e-4, …}
//                                       numeric fields become run metrics at that step; lines are read
//                                       only once complete (ending in '\n'), from a persisted offset.
//                                       `tuneloop train` rewrites the file at every start (atomically:
//                                       a new inode) keeping the lines its checkpoint covers, so a
//                                       changed inode means "read again from 0"
//   WORK_DIR/stderr.log                 the trainer's "data: … -> … ; N steps" line gives the total
//                                       step count when metrics lines carry no `total_steps`
//   OUTPUT_DIR/checkpoints/<name>-<N>/  a checkpoint at step N, registered once its directory exists
//                                       (the trainer renames a finished temp dir into place)
//
// The real `tuneloop train` (src/train/trainer.h) is the contract (tests/jobs/real_trainer_test.cpp
// runs it end to end); tests/jobs/fake_trainer.cpp is a faster test double that writes the same files.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(TrainerProcess p, TrainerProcess::launch(spec));
//   while (!p.poll()) { … }           // exit status once the child has ended
//   p.kill_group(SIGKILL);             // cancel
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tl::jobs {

struct LaunchSpec {
  std::string trainer_path;  // the `tuneloop` binary (or a stand-in with the same CLI)
  std::string spec_path;
  std::string work_dir;  // stdout.log / stderr.log go here
  bool resume = false;
  std::vector<std::string> env;  // extra NAME=VALUE entries
};

struct ExitStatus {
  bool exited = false;  // false: killed by a signal
  int code = 0;         // exit code or signal number
  std::string describe() const;
};

class TrainerProcess {
 public:
  static Result<TrainerProcess> launch(const LaunchSpec& spec);
  TrainerProcess(TrainerProcess&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  TrainerProcess& operator=(TrainerProcess&& o) noexcept {
    std::swap(pid_, o.pid_);
    return *this;
  }
  TrainerProcess(const TrainerProcess&) = delete;
  ~TrainerProcess() = default;  // never kills: a server restart must be able to find running jobs

  pid_t pid() const { return pid_; }
  // Non-blocking: the exit status once the child has ended (reaped), else nullopt.
  std::optional<ExitStatus> poll();
  // Signals the whole process group; SIGTERM, then SIGKILL after `grace_ms` if it is still alive; reaps.
  ExitStatus terminate(int grace_ms);

 private:
  explicit TrainerProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// After a server crash: kills the process group `pgid` if it is still alive and really is this job's
// trainer (its command line mentions `spec_path`, so a recycled pid is left alone). Waits up to 5 s.
void kill_orphaned_trainer(int64_t pgid, const std::string& spec_path);

struct MetricsLine {
  int64_t step = 0;
  std::map<std::string, double> values;  // every numeric field except step
  std::string raw;
};

// Reads complete lines of metrics.jsonl from *offset on, advancing it past them. The file is read from
// the start when it was replaced (its inode differs from *file_id, when file_id is given; *file_id is
// then updated; 0 = the file did not exist) or is shorter than *offset: a (resumed) trainer rewrites it.
// Metrics are idempotent per step. Malformed lines are skipped and counted in *bad_lines.
Result<std::vector<MetricsLine>> read_metrics(const std::string& path, int64_t* offset, int64_t* bad_lines,
                                              uint64_t* file_id = nullptr);
// The inode of `path`, 0 when it does not exist (the file_id read_metrics compares).
uint64_t metrics_file_id(const std::string& path);

// The trainer's total step count from its stderr log ("data: … ; N steps"), 0 when not (yet) there.
int64_t trainer_total_steps(const std::string& stderr_log);

struct CheckpointDir {
  int64_t step = 0;
  std::string path;
};
// OUTPUT_DIR/checkpoints/* directories whose name ends in -N or _N (N = step), ordered by step.
std::vector<CheckpointDir> scan_checkpoints(const std::string& output_dir);

// The last `n` non-empty lines of a text file ("" if unreadable).
std::string tail_lines(const std::string& path, int n);

}  // namespace tl::jobs
