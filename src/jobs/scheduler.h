// The tiered FIFO scheduler: which queued job runs next, on which device.
//
// Policy
//   * Tiers enterprise → pro → free with strict priority, FIFO within a tier, memory fit per device.
//   * Aging, so a free job is never starved: a job's place in line is its *virtual submit time*
//       virtual = submitted_at − boost(tier),  boost(enterprise) = 2A, boost(pro) = A, boost(free) = 0
//     with A = aging_seconds (default 1 h, `aging_minutes` in the devices file). So a pro job outranks
//     every free job submitted less than A before it (strict priority among jobs submitted within A of
//     each other), and a free job that has waited A is treated like a pro job submitted now, 2A like an
//     enterprise job. Its wait is bounded: only jobs with an earlier virtual time go first, and every
//     job submitted more than 2A after it has a later one.
//   * Memory fit: each job (in virtual-time order) takes the smallest free device with enough memory.
//     A job that fits no *free* device is passed over, and later jobs may use the free devices — all of
//     which are too small for it, so this backfill never delays it. A job that fits no device of the
//     pool at all is refused at enqueue (the estimate already refuses it at submit).
//
// Cost: queued jobs are kept in one ordered set per *memory class* (the distinct device memory sizes;
// a job's class is the smallest size that holds it). A decision takes the earliest job among the
// classes that fit the largest free device: O(classes × log n), independent of how many big jobs wait
// at the head of the line for a big device (a plain scan was O(n) there: 22 k decisions/s at 10,000
// queued). bench/control_plane_bench.cpp measures it.
//
// Not thread-safe: JobService calls it under its own mutex.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "jobs/devices.h"
#include "registry/registry.h"

namespace tl::jobs {

struct QueuedJob {
  std::string id;
  registry::Tier tier = registry::Tier::kFree;
  int64_t submitted_at = 0;  // Unix seconds
  int64_t seq = 0;           // registry insertion order: FIFO tie-break within the same second
  int64_t memory_mb = 0;
};

struct Assignment {
  std::string job_id;
  std::string device_id;
};

class Scheduler {
 public:
  Scheduler(std::vector<Device> devices, int64_t aging_seconds);

  Status enqueue(const QueuedJob& job);
  bool remove(const std::string& job_id);  // false when not queued
  // Assigns queued jobs to free devices (marking them busy) and returns the assignments.
  std::vector<Assignment> schedule();
  // A device finished its job (or the job was cancelled): free again.
  void release(const std::string& device_id);
  // Marks a device busy without scheduling (recovery of a running job after restart).
  Status occupy(const std::string& device_id, const std::string& job_id);

  size_t queued() const { return jobs_.size(); }
  size_t free_devices() const;
  int64_t virtual_time(const QueuedJob& job) const;
  // Position (0-based) of a queued job in line, or -1. O(n); for display only.
  int64_t position(const std::string& job_id) const;

 private:
  using Key = std::tuple<int64_t, int64_t, std::string>;  // virtual time, seq, id
  struct Slot {
    Device device;
    std::string job_id;  // empty = free
  };

  std::vector<Slot> slots_;  // sorted by memory ascending, so the first fit is the best fit
  int64_t aging_seconds_;
  std::map<int64_t, std::set<Key>> by_class_;  // memory class (MiB) → queued jobs in line order
  struct Entry {
    Key key;
    int64_t memory_mb;
    int64_t mem_class;
  };
  std::unordered_map<std::string, Entry> jobs_;
};

}  // namespace tl::jobs
