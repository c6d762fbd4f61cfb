// Tiered FIFO with aging over an ordered set (policy in scheduler.h).
#include "jobs/scheduler.h"

#include <algorithm>

namespace tl::jobs {

Scheduler::Scheduler(std::vector<Device> devices, int64_t aging_seconds) : aging_seconds_(aging_seconds) {
  for (auto& d : devices) slots_.push_back({std::move(d), ""});
  std::stable_sort(slots_.begin(), slots_.end(), [](const Slot& a, const Slot& b) { return a.device.memory_mb < b.device.memory_mb; });
  for (const Slot& sl : slots_) by_class_[sl.device.memory_mb];
}

int64_t Scheduler::virtual_time(const QueuedJob& job) const {
  int64_t boost = (2 - static_cast<int64_t>(job.tier)) * aging_seconds_;  // enterprise 2A, pro A, free 0
  return job.submitted_at - boost;
}

Status Scheduler::enqueue(const QueuedJob& job) {
  if (jobs_.count(job.id)) return already_exists("job {} is already queued", job.id);
  int64_t largest = slots_.empty() ? 0 : slots_.back().device.memory_mb;
  if (job.memory_mb > largest)
    return resource_exhausted("job {} needs {} MiB of device memory; the largest device has {} MiB", job.id, job.memory_mb, largest);
  Key key{virtual_time(job), job.seq, job.id};
  auto cls = by_class_.lower_bound(job.memory_mb);  // exists: memory_mb <= largest device
  cls->second.insert(key);
  jobs_.emplace(job.id, Entry{key, job.memory_mb, cls->first});
  return Status::ok();
}

bool Scheduler::remove(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  by_class_[it->second.mem_class].erase(it->second.key);
  jobs_.erase(it);
  return true;
}

size_t Scheduler::free_devices() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.job_id.empty(); }));
}

std::vector<Assignment> Scheduler::schedule() {
  // Equivalent to walking all queued jobs in line order and giving each the best-fitting free device:
  // free devices only disappear during one call, so a job that fits none when its turn comes never
  // will. Each round takes the earliest job among the classes that fit the largest free device.
  std::vector<Assignment> out;
  for (;;) {
    int64_t largest_free = -1;
    for (const Slot& sl : slots_)
      if (sl.job_id.empty()) largest_free = std::max(largest_free, sl.device.memory_mb);
    if (largest_free < 0) break;
    const Key* best = nullptr;
    std::set<Key>* best_set = nullptr;
    for (auto& [mem, set] : by_class_) {
      if (mem > largest_free) break;
      if (!set.empty() && (!best || *set.begin() < *best)) best = &*set.begin(), best_set = &set;
    }
    if (!best) break;
    const std::string id = std::get<2>(*best);
    int64_t need = jobs_.at(id).memory_mb;
    Slot* chosen = nullptr;
    for (Slot& sl : slots_)  // ascending memory: the first free fit is the best fit
      if (sl.job_id.empty() && sl.device.memory_mb >= need) {
        chosen = &sl;
        break;
      }
    // need <= class <= largest_free guarantees a fit.
    chosen->job_id = id;
    out.push_back({id, chosen->device.id});
    best_set->erase(best_set->begin());
    jobs_.erase(id);
  }
  return out;
}

void Scheduler::release(const std::string& device_id) {
  for (Slot& s : slots_)
    if (s.device.id == device_id) s.job_id.clear();
}

Status Scheduler::occupy(const std::string& device_id, const std::string& job_id) {
  for (Slot& s : slots_) {
    if (s.device.id != device_id) continue;
    if (!s.job_id.empty() && s.job_id != job_id)
      return failed_precondition("device {} is already running job {}", device_id, s.job_id);
    s.job_id = job_id;
    return Status::ok();
  }
  return not_found("device '{}' is not in the pool (was the devices file changed?)", device_id);
}

int64_t Scheduler::position(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return -1;
  int64_t ahead = 0;
  for (const auto& [mem, set] : by_class_)
    ahead += static_cast<int64_t>(std::distance(set.begin(), set.lower_bound(it->second.key)));
  return ahead;
}

}  // namespace tl::jobs
