// MlflowMirror: the worker thread and the MLflow REST calls (contract in mlflow.h). Every request has
// a bounded timeout; any failure (no connection, non-2xx, unparsable reply) is counted, logged as one
// stderr line, and the task dropped — the job it mirrors never notices.
#include "jobs/mlflow.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/file.h"

namespace tl::jobs {
using nlohmann::json;

namespace {
int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

MlflowMirror::MlflowMirror(MlflowOptions options) : options_(std::move(options)) {
  std::string url = options_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  host_ = slash == std::string::npos ? url : url.substr(0, slash);
  prefix_ = slash == std::string::npos ? "" : url.substr(slash);
  thread_ = std::thread([this] { loop(); });
}

MlflowMirror::~MlflowMirror() {
  flush(options_.timeout_ms * 2);
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MlflowMirror::start_run(const std::string& job_id, const std::string& state_file, const std::string& run_name,
                             MlflowPairs params, MlflowPairs tags) {
  Task t{Task::kStart, job_id, state_file, run_name, "", std::move(params), std::move(tags), {}, now_ms()};
  std::lock_guard<std::mutex> l(mu_);
  queue_.push_back(std::move(t));
  cv_.notify_all();
}

void MlflowMirror::log_metrics(const std::string& job_id, std::vector<MlflowMetric> points) {
  if (points.empty()) return;
  std::lock_guard<std::mutex> l(mu_);
  // Coalesce with a queued metrics task of the same job at the tail: the history goes out in few batches.
  // Steps already queued are dropped from the new points, as the worker drops mirrored ones.
  if (!queue_.empty() && queue_.back().kind == Task::kMetrics && queue_.back().job_id == job_id) {
    auto& m = queue_.back().metrics;
    int64_t queued_max = 0;
    for (const auto& p : m) queued_max = std::max(queued_max, p.step);
    for (auto& p : points)
      if (p.step > queued_max) m.push_back(std::move(p));
  } else {
    queue_.push_back(Task{Task::kMetrics, job_id, "", "", "", {}, {}, std::move(points), 0});
  }
  cv_.notify_all();
}

void MlflowMirror::end_run(const std::string& job_id, const std::string& status, const std::string& state_file) {
  std::lock_guard<std::mutex> l(mu_);
  queue_.push_back(Task{Task::kEnd, job_id, state_file, "", status, {}, {}, {}, now_ms()});
  cv_.notify_all();
}

bool MlflowMirror::flush(int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  return idle_cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [this] { return queue_.empty() && !busy_; });
}

void MlflowMirror::loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    Task t = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    l.unlock();
    run_task(t);
    l.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

void MlflowMirror::fail(const std::string& what) {
  ++failures_;
  std::fprintf(stderr, "tuneloop server: MLflow mirror (%s): %s\n", options_.url.c_str(), what.c_str());
}

bool MlflowMirror::post(const std::string& endpoint, const std::string& body, std::string* response) {
  ++requests_;
  httplib::Client c(host_);
  c.set_connection_timeout(std::chrono::milliseconds(options_.timeout_ms));
  c.set_read_timeout(std::chrono::milliseconds(options_.timeout_ms));
  c.set_write_timeout(std::chrono::milliseconds(options_.timeout_ms));
  if (!options_.token.empty()) c.set_bearer_token_auth(options_.token.c_str());
  const std::string path = prefix_ + "/api/2.0/mlflow/" + endpoint;
  auto r = c.Post(path.c_str(), body, "application/json");
  if (!r) {
    fail(fmt::format("POST {}: request failed ({})", path, httplib::to_string(r.error())));
    return false;
  }
  if (r->status < 200 || r->status >= 300) {
    fail(fmt::format("POST {}: HTTP {}: {}", path, r->status, r->body.substr(0, 300)));
    return false;
  }
  if (response) *response = r->body;
  return true;
}

bool MlflowMirror::experiment_id(std::string* id) {
  if (!experiment_id_.empty()) {
    *id = experiment_id_;
    return true;
  }
  ++requests_;
  httplib::Client c(host_);
  c.set_connection_timeout(std::chrono::milliseconds(options_.timeout_ms));
  c.set_read_timeout(std::chrono::milliseconds(options_.timeout_ms));
  if (!options_.token.empty()) c.set_bearer_token_auth(options_.token.c_str());
  const std::string path = prefix_ + "/api/2.0/mlflow/experiments/get-by-name";
  auto r = c.Get(path.c_str(), {{"experiment_name", options_.experiment}}, httplib::Headers{});
  if (!r) {
    fail(fmt::format("GET {}: request failed ({})", path, httplib::to_string(r.error())));
    return false;
  }
  if (r->status == 200) {
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_discarded() && j.contains("experiment") && j["experiment"].contains("experiment_id")) {
      const auto& e = j["experiment"]["experiment_id"];
      experiment_id_ = e.is_string() ? e.get<std::string>() : e.dump();
      *id = experiment_id_;
      return true;
    }
    fail(fmt::format("GET {}: reply has no experiment.experiment_id", path));
    return false;
  }
  if (r->status != 404) {
    fail(fmt::format("GET {}: HTTP {}: {}", path, r->status, r->body.substr(0, 300)));
    return false;
  }
  std::string body;
  if (!post("experiments/create", json({{"name", options_.experiment}}).dump(), &body)) return false;
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("experiment_id")) {
    fail("experiments/create: reply has no experiment_id");
    return false;
  }
  experiment_id_ = j["experiment_id"].is_string() ? j["experiment_id"].get<std::string>() : j["experiment_id"].dump();
  *id = experiment_id_;
  return true;
}

void MlflowMirror::save(const RunState& rs) {
  if (rs.state_file.empty()) return;
  Status st = write_file_atomic(rs.state_file, json({{"run_id", rs.run_id}, {"last_step", rs.last_step}}).dump() + "\n");
  if (!st.is_ok()) std::fprintf(stderr, "tuneloop server: MLflow mirror state not saved: %s\n", st.message().c_str());
}

// The run for `job_id`: from memory, from its state file (a restart), or created now from `start` (the
// job's start request, kept for a lazy retry when MLflow was down at launch). False when there is none.
bool MlflowMirror::ensure_run(const std::string& job_id, RunState& rs, const Task* start, const std::string& state_file) {
  if (!rs.run_id.empty()) return true;
  if (!start) {
    auto it = pending_start_.find(job_id);
    if (it != pending_start_.end()) start = &it->second;
  }
  rs.state_file = start ? start->state_file : state_file;
  if (auto text = read_file(rs.state_file); text.is_ok()) {
    auto j = json::parse(*text, nullptr, false);
    if (!j.is_discarded() && j.value("run_id", "") != "") {
      rs.run_id = j["run_id"];
      rs.last_step = j.value("last_step", int64_t{0});
      pending_start_.erase(job_id);
      return true;
    }
  }
  if (!start) return false;  // never started here and no state file: nothing to mirror
  std::string exp;
  if (!experiment_id(&exp)) return false;
  json tags = json::array();
  for (const auto& [k, v] : start->tags) tags.push_back({{"key", k}, {"value", v}});
  tags.push_back({{"key", "mlflow.runName"}, {"value", start->run_name}});
  json req = {{"experiment_id", exp}, {"run_name", start->run_name}, {"start_time", start->time_ms}, {"tags", tags}};
  std::string body;
  if (!post("runs/create", req.dump(), &body)) return false;
  auto j = json::parse(body, nullptr, false);
  std::string run_id;
  if (!j.is_discarded() && j.contains("run") && j["run"].contains("info")) {
    const auto& info = j["run"]["info"];
    run_id = info.value("run_id", info.value("run_uuid", ""));
  }
  if (run_id.empty()) {
    fail("runs/create: reply has no run.info.run_id");
    return false;
  }
  rs.run_id = run_id;
  save(rs);
  // Params, at most 100 per log-batch (MLflow values up to 6000 characters; ours are short).
  const MlflowPairs& params = start->params;
  for (size_t i = 0; i < params.size(); i += kMlflowMaxParamsPerBatch) {
    json batch = json::array();
    for (size_t k = i; k < std::min(params.size(), i + kMlflowMaxParamsPerBatch); ++k)
      batch.push_back({{"key", params[k].first}, {"value", params[k].second.substr(0, 6000)}});
    (void)post("runs/log-batch", json({{"run_id", rs.run_id}, {"params", batch}}).dump(), nullptr);
  }
  pending_start_.erase(job_id);
  return true;
}

void MlflowMirror::run_task(Task& t) {
  RunState& rs = runs_[t.job_id];
  switch (t.kind) {
    case Task::kStart:
      if (!rs.run_id.empty()) return;  // a relaunch of a run already mirrored
      pending_start_[t.job_id] = t;
      (void)ensure_run(t.job_id, rs, &t);
      return;
    case Task::kMetrics: {
      if (!ensure_run(t.job_id, rs, nullptr)) return;
      // Steps arrive in order per launch; a resumed trainer re-reports steps its checkpoint covers.
      std::vector<MlflowMetric> fresh;
      for (auto& m : t.metrics)
        if (m.step > rs.last_step && std::isfinite(m.value)) fresh.push_back(std::move(m));
      for (size_t i = 0; i < fresh.size(); i += kMlflowMaxMetricsPerBatch) {
        json batch = json::array();
        int64_t max_step = rs.last_step;
        for (size_t k = i; k < std::min(fresh.size(), i + kMlflowMaxMetricsPerBatch); ++k) {
          const MlflowMetric& m = fresh[k];
          batch.push_back({{"key", m.key}, {"value", m.value}, {"timestamp", m.timestamp_ms}, {"step", m.step}});
          max_step = std::max(max_step, m.step);
        }
        if (!post("runs/log-batch", json({{"run_id", rs.run_id}, {"metrics", batch}}).dump(), nullptr)) return;
        // Whole steps only: a batch boundary inside a step still advances past it, since the rest of that
        // step follows in the next batch of this same task.
        if (i + kMlflowMaxMetricsPerBatch >= fresh.size()) rs.last_step = max_step;
      }
      save(rs);
      return;
    }
    case Task::kEnd: {
      if (!ensure_run(t.job_id, rs, nullptr, t.state_file)) return;
      (void)post("runs/update", json({{"run_id", rs.run_id}, {"status", t.status}, {"end_time", t.time_ms}}).dump(), nullptr);
      runs_.erase(t.job_id);
      return;
    }
  }
}

}  // namespace tl::jobs
