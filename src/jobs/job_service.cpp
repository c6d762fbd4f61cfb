// JobService implementation: the lifecycle table of job_service.h, one dispatcher thread, the
// registry as the only state that survives a crash.
#include "jobs/job_service.h"

#include <signal.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/file.h"
#include "jobs/dataset_check.h"
#include "jobs/estimate.h"
#include "registry/hashing.h"

namespace tl::jobs {
namespace fs = std::filesystem;
using nlohmann::json;
using registry::JobRecord;
using registry::unix_now;

namespace {

bool terminal(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled";
}

std::string error_json(const std::string& code, const std::string& message, const std::string& param = "") {
  json e = {{"code", code}, {"message", message}, {"param", param.empty() ? json(nullptr) : json(param)}};
  return e.dump();
}

Status with_detail(ErrorDetail* d, const std::string& param, const std::string& code, Status st) {
  if (d) *d = {param, code};
  return st;
}

}  // namespace

JobService::JobService(registry::Registry& reg, registry::ArtifactStore& store, ServiceOptions options)
    : reg_(reg), store_(store), options_(std::move(options)), scheduler_(options_.pool.devices, options_.pool.aging_seconds) {
  if (!options_.mlflow.url.empty()) mlflow_ = std::make_unique<MlflowMirror>(options_.mlflow);
}

JobService::~JobService() { stop(); }

// The run's MLflow params: the job's request (model, files, seed, OpenAI hyperparameters) and the
// unified spec it trains with, flattened to dotted keys (well under MLflow's 100 per batch).
void JobService::mirror_start(const JobRecord& j) {
  if (!mlflow_) return;
  MlflowPairs params = {{"model", j.model}, {"method_type", j.method}, {"training_file", j.training_file}, {"seed", std::to_string(j.seed)}};
  if (!j.validation_file.empty()) params.push_back({"validation_file", j.validation_file});
  if (!j.suffix.empty()) params.push_back({"suffix", j.suffix});
  auto hp = json::parse(j.hyperparameters, nullptr, false);
  if (hp.is_object())
    for (auto it = hp.begin(); it != hp.end(); ++it)
      params.push_back({"hyperparameters." + it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump()});
  if (auto spec = parse_job_spec(j.spec_yaml, "spec.yaml"); spec.is_ok()) {
    const JobSpec& s = *spec;
    const TrainingSpec& t = s.training;
    auto num = [](double v) { return fmt::format("{}", v); };
    std::string targets;
    for (const auto& m : s.lora.target_modules) targets += (targets.empty() ? "" : ",") + m;
    MlflowPairs more = {{"spec.method", s.method}, {"spec.dataset.format", s.dataset.format}, {"spec.dataset.train_on", s.dataset.train_on},
                        {"spec.training.epochs", std::to_string(t.epochs)}, {"spec.training.micro_batch_size", std::to_string(t.micro_batch_size)},
                        {"spec.training.gradient_accumulation", std::to_string(t.gradient_accumulation)},
                        {"spec.training.learning_rate", num(t.learning_rate)}, {"spec.training.lr_scheduler", t.lr_scheduler},
                        {"spec.training.warmup_ratio", num(t.warmup_ratio)}, {"spec.training.weight_decay", num(t.weight_decay)},
                        {"spec.training.max_grad_norm", num(t.max_grad_norm)}, {"spec.training.max_seq_len", std::to_string(t.max_seq_len)},
                        {"spec.training.packing", t.packing ? "true" : "false"},
                        {"spec.training.gradient_checkpointing", t.gradient_checkpointing ? "true" : "false"},
                        {"spec.training.max_steps", std::to_string(t.max_steps)},
                        {"spec.checkpointing.every_steps", std::to_string(s.checkpointing.every_steps)},
                        {"spec.checkpointing.keep", std::to_string(s.checkpointing.keep)}};
    if (!trains_all_weights(s))
      more.insert(more.end(), {{"spec.lora.r", std::to_string(s.lora.r)}, {"spec.lora.alpha", num(s.lora.alpha)},
                               {"spec.lora.dropout", num(s.lora.dropout)}, {"spec.lora.rslora", s.lora.rslora ? "true" : "false"},
                               {"spec.lora.target_modules", targets}});
    if (s.method == "dpo")
      more.insert(more.end(), {{"spec.dpo.beta", num(s.dpo.beta)}, {"spec.dpo.loss", s.dpo.loss}, {"spec.dpo.adapter", s.dpo.adapter}});
    params.insert(params.end(), more.begin(), more.end());
  }
  MlflowPairs tags = {{"tuneloop.job_id", j.id}, {"tuneloop.tenant_id", j.tenant_id}, {"tuneloop.tier", registry::tier_name(j.tier)}};
  mlflow_->start_run(j.id, job_dir(j.id) + "/mlflow.json", j.id, std::move(params), std::move(tags));
}

void JobService::event(const std::string& job_id, const std::string& level, const std::string& message, const std::string& data) {
  Status st = reg_.add_event(job_id, level, data.empty() ? "message" : "metrics", message, data);
  if (!st.is_ok()) std::fprintf(stderr, "tuneloop server: event for %s not recorded: %s\n", job_id.c_str(), st.message().c_str());
}

// ---- uploads ----

Result<registry::FileRecord> JobService::upload_file(const registry::Tenant& t, const std::string& filename,
                                                     const std::string& purpose, std::string_view content, ErrorDetail* detail) {
  if (purpose != "fine-tune")
    return with_detail(detail, "purpose", "invalid_value",
                       invalid_argument("purpose must be 'fine-tune' (the only purpose this server stores), got '{}'", purpose));
  auto summary = check_jsonl_dataset(content, filename.empty() ? "file" : filename);
  if (!summary.is_ok()) return with_detail(detail, "file", "invalid_file_format", summary.status());
  TL_ASSIGN_OR_RETURN(std::string sha, store_.put(content));
  registry::FileRecord f;
  f.id = registry::random_token("file-", 12);
  f.tenant_id = t.id;
  f.filename = filename;
  f.purpose = purpose;
  f.bytes = static_cast<int64_t>(content.size());
  f.sha256 = sha;
  f.line_count = summary->lines;
  f.format = summary->format;
  f.token_estimate = summary->token_estimate;
  f.path = store_.path_for(sha);
  f.created_at = unix_now();
  TL_TRY(reg_.add_file(f));
  return f;
}

// ---- submit ----

Result<JobRecord> JobService::submit(const registry::Tenant& t, const JobRequest& req, ErrorDetail* detail) {
  if (req.model.empty()) return with_detail(detail, "model", "missing_required_parameter", invalid_argument("missing required parameter 'model'"));
  if (req.training_file.empty())
    return with_detail(detail, "training_file", "missing_required_parameter", invalid_argument("missing required parameter 'training_file'"));
  auto model = reg_.model(req.model);
  if (!model.is_ok()) {
    if (model.status().code() == StatusCode::kNotFound)
      return with_detail(detail, "model", "model_not_found",
                         not_found("model '{}' does not exist (registered base models: tuneloop model add)", req.model));
    return model.status();
  }
  auto train = reg_.file(t.id, req.training_file);
  if (!train.is_ok())
    return with_detail(detail, "training_file", "invalid_training_file",
                       invalid_argument("invalid training_file: no file '{}'", req.training_file));
  std::optional<registry::FileRecord> val;
  if (!req.validation_file.empty()) {
    auto v = reg_.file(t.id, req.validation_file);
    if (!v.is_ok())
      return with_detail(detail, "validation_file", "invalid_validation_file",
                         invalid_argument("invalid validation_file: no file '{}'", req.validation_file));
    val = *v;
  }
  if (req.method != "supervised" && req.method != "dpo")
    return with_detail(detail, "method.type", "invalid_value",
                       invalid_argument("method.type must be 'supervised' or 'dpo', got '{}'", req.method));
  if (req.suffix.size() > 64)
    return with_detail(detail, "suffix", "invalid_value", invalid_argument("suffix must be at most 64 characters"));

  JobSpec spec;
  if (!req.tuneloop_spec.empty()) {
    auto parsed = parse_job_spec(req.tuneloop_spec, "tuneloop_spec", /*require_paths=*/false);
    if (!parsed.is_ok()) return with_detail(detail, "tuneloop_spec", "invalid_value", parsed.status());
    spec = *parsed;
    // A spec that leaves the method out takes the request's (dpo, or lora for supervised).
    if (!spec.method_given && req.method == "dpo") spec.method = "dpo";
    if ((spec.method == "dpo") != (req.method == "dpo"))
      return with_detail(detail, "method.type", "invalid_value",
                         invalid_argument("method.type '{}' contradicts tuneloop_spec method '{}'", req.method, spec.method));
  } else {
    spec.method = req.method == "dpo" ? "dpo" : "lora";
  }
  bool wants_dpo = spec.method == "dpo";
  if (wants_dpo != (train->format == "dpo"))
    return with_detail(detail, "training_file", "invalid_training_file",
                       invalid_argument("training_file {} holds {} examples, which method {} cannot train on", train->id,
                                        train->format, req.method));
  if (val && val->format != train->format)
    return with_detail(detail, "validation_file", "invalid_validation_file",
                       invalid_argument("validation_file {} is {} but training_file is {}", val->id, val->format, train->format));
  // OpenAI hyperparameters → the unified spec. batch_size = micro_batch × accumulation.
  const double base_lr = trains_all_weights(spec) ? 1e-5 : 1e-4;
  double lr_mult = spec.training.learning_rate / base_lr;
  if (req.n_epochs) spec.training.epochs = *req.n_epochs;
  if (req.batch_size) {
    spec.training.micro_batch_size = std::min<int64_t>(*req.batch_size, 4);
    spec.training.gradient_accumulation = (*req.batch_size + spec.training.micro_batch_size - 1) / spec.training.micro_batch_size;
  }
  if (req.learning_rate_multiplier) {
    lr_mult = *req.learning_rate_multiplier;
    spec.training.learning_rate = base_lr * lr_mult;
  }
  if (req.beta) spec.dpo.beta = *req.beta;
  int64_t seed = req.seed ? *req.seed : static_cast<int64_t>(std::stoull(registry::random_token("", 3), nullptr, 16));
  spec.training.seed = seed;
  std::string job_id = registry::random_token("ftjob-", 12);
  spec.base_model = model->dir;
  spec.dataset.train = train->path;
  spec.dataset.validation = val ? val->path : "";
  spec.dataset.format = train->format;
  spec.output_dir = fs::absolute(job_dir(job_id) + "/output").string();
  if (Status st = validate_job_spec(spec, "fine-tuning job"); !st.is_ok())
    return with_detail(detail, "hyperparameters", "invalid_value", st);

  TL_ASSIGN_OR_RETURN(ModelShape shape, read_model_shape(model->dir));
  auto est = estimate_job(shape, spec, train->token_estimate, val ? val->token_estimate : 0, options_.pool);
  if (!est.is_ok()) return with_detail(detail, "model", "insufficient_device_memory", est.status());

  JobRecord j;
  j.id = job_id;
  j.tenant_id = t.id;
  j.model = req.model;
  j.training_file = train->id;
  j.validation_file = val ? val->id : "";
  j.suffix = req.suffix;
  j.seed = seed;
  j.method = req.method;
  json hp = {{"n_epochs", spec.training.epochs},
             {"batch_size", spec.training.micro_batch_size * spec.training.gradient_accumulation},
             {"learning_rate_multiplier", lr_mult}};
  if (wants_dpo) hp["beta"] = spec.dpo.beta;
  j.hyperparameters = hp.dump();
  j.spec_yaml = job_spec_to_yaml(spec);
  j.status = "validating_files";
  j.tier = t.tier;
  j.output_dir = spec.output_dir;
  j.estimated_device_hours = est->device_hours;
  j.estimated_cost = est->cost;
  j.memory_mb = est->memory_mb;
  j.trained_tokens = est->tokens;
  j.created_at = unix_now();

  {
    std::lock_guard<std::mutex> l(submit_mu_);
    if (t.quota_device_hours >= 0) {
      std::string month = registry::month_key(j.created_at);
      TL_ASSIGN_OR_RETURN(double used, reg_.usage_hours(t.id, month));
      TL_ASSIGN_OR_RETURN(double reserved, reg_.unfinished_estimated_hours(t.id));
      if (used + reserved + est->device_hours > t.quota_device_hours)
        return with_detail(detail, "", "quota_exceeded",
                           resource_exhausted("device-hour quota exceeded: this job needs an estimated {:.6g} device-hours; "
                                              "tenant '{}' has used {:.6g} and reserved {:.6g} of its {:.6g} device-hours for {}",
                                              est->device_hours, t.name, used, reserved, t.quota_device_hours, month));
    }
    // Queue wait: the backlog ahead spread over the pool (an estimate; the scheduler decides).
    double backlog = 0;
    TL_ASSIGN_OR_RETURN(auto queued, reg_.jobs_with_status("queued"));
    for (const auto& q : queued) backlog += q.estimated_device_hours;
    double wait_h = backlog / static_cast<double>(std::max<size_t>(options_.pool.devices.size(), 1));
    j.estimated_finish = j.created_at + static_cast<int64_t>(std::ceil((wait_h + est->device_hours) * 3600.0));
    TL_TRY(reg_.create_job(j));
  }
  TL_ASSIGN_OR_RETURN(registry::RunRecord run, reg_.run_for_job(j.id));
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"base_model", req.model}, {"method", spec.method}, {"epochs", std::to_string(spec.training.epochs)},
           {"learning_rate", fmt::format("{}", spec.training.learning_rate)}, {"seed", std::to_string(seed)},
           {"lora_r", std::to_string(spec.lora.r)}, {"training_file", train->id}, {"dataset_sha256", train->sha256}})
    TL_TRY(reg_.set_run_param(run.id, k, v));
  event(j.id, "info", "Created fine-tuning job: " + j.id);
  event(j.id, "info",
        fmt::format("Preflight estimate: {} tokens, {:.4f} device-hours on {}, cost {:.4f}, {} MiB device memory", est->tokens,
                    est->device_hours, est->device_kind, est->cost, est->memory_mb));
  event(j.id, "info", "Validating training file: " + train->id);
  {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = true;
  }
  cv_.notify_one();
  return j;
}

// ---- cancel ----

Result<JobRecord> JobService::cancel(const registry::Tenant& t, const std::string& job_id) {
  TL_ASSIGN_OR_RETURN(JobRecord j, reg_.job(t.id, job_id));
  std::lock_guard<std::mutex> l(mu_);
  TL_ASSIGN_OR_RETURN(j, reg_.job(t.id, job_id));  // re-read under the lock: the dispatcher may have moved it
  if (terminal(j.status)) return failed_precondition("job {} has already {}; it cannot be cancelled", j.id, j.status);
  int64_t now = unix_now();
  if (auto it = running_.find(j.id); it != running_.end()) {
    ExitStatus ex = it->second.proc.terminate(options_.cancel_grace_ms);
    ingest(j, it->second);
    charge(j, now);
    scheduler_.release(it->second.device_id);
    running_.erase(it);
    event(j.id, "info", "Trainer process group stopped: it " + ex.describe());
  } else {
    scheduler_.remove(j.id);
    if (j.status == "running") scheduler_.release(j.device_id);  // pending resume after a restart
    to_resume_.erase(std::remove(to_resume_.begin(), to_resume_.end(), j.id), to_resume_.end());
  }
  j.status = "cancelled";
  j.cancel_requested = true;
  j.finished_at = now;
  j.pid = 0;
  TL_TRY(reg_.update_job(j));
  event(j.id, "info", "Fine-tuning job cancelled");
  if (mlflow_) mlflow_->end_run(j.id, "KILLED", job_dir(j.id) + "/mlflow.json");  // no-op for a job that never launched
  wake_ = true;
  cv_.notify_one();
  return j;
}

// ---- dispatcher ----

Status JobService::start() {
  std::error_code ec;
  fs::create_directories(options_.data_dir + "/jobs", ec);
  if (ec) return io_error("{}/jobs: cannot create: {}", options_.data_dir, ec.message());
  {
    std::lock_guard<std::mutex> l(mu_);
    TL_ASSIGN_OR_RETURN(auto queued, reg_.jobs_with_status("queued"));
    for (auto& j : queued) {
      Status st = scheduler_.enqueue({j.id, j.tier, j.created_at, j.seq, j.memory_mb});
      if (!st.is_ok()) {
        j.status = "failed";
        j.error = error_json("no_device", st.message());
        j.finished_at = unix_now();
        TL_TRY(reg_.update_job(j));
        event(j.id, "error", "Job failed at restart: " + st.message());
      }
    }
    TL_ASSIGN_OR_RETURN(auto running, reg_.jobs_with_status("running"));
    for (auto& j : running) {
      // The trainer died with the server (PR_SET_PDEATHSIG); make sure, then charge the lost launch up
      // to the last heartbeat (updated_at) and relaunch it with --resume.
      kill_orphaned_trainer(j.pid, job_dir(j.id) + "/spec.yaml");
      if (j.attempt_started_at > 0) charge(j, std::max(j.updated_at, j.attempt_started_at));
      j.pid = 0;
      Status st = scheduler_.occupy(j.device_id, j.id);
      if (!st.is_ok()) {  // its device is gone from the pool: back in line (resume happens at launch)
        j.status = "queued";
        j.device_id.clear();
        TL_TRY(reg_.update_job(j));
        TL_TRY(scheduler_.enqueue({j.id, j.tier, j.created_at, j.seq, j.memory_mb}));
        event(j.id, "warn", "Server restarted; device gone from the pool, job re-queued: " + st.message());
        continue;
      }
      TL_TRY(reg_.update_job(j));
      to_resume_.push_back(j.id);
    }
    stop_ = false;
  }
  thread_ = std::thread([this] { loop(); });
  return Status::ok();
}

void JobService::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, r] : running_) {
    r.proc.terminate(0);  // stays `running` in the registry: the next start() resumes it
    if (auto j = reg_.job_any_tenant(id); j.is_ok()) {
      charge(*j, unix_now());
      j->attempt_started_at = 0;  // charged: a restart must not charge this launch again
      (void)reg_.update_job(*j);
    }
  }
  running_.clear();
}

void JobService::loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    l.unlock();
    tick();
    l.lock();
    cv_.wait_for(l, std::chrono::milliseconds(options_.poll_ms), [this] { return stop_ || wake_; });
    wake_ = false;
  }
}

void JobService::tick() {
  admit_validating();
  std::lock_guard<std::mutex> l(mu_);
  for (const std::string& id : to_resume_) {
    auto j = reg_.job_any_tenant(id);
    if (j.is_ok() && j->status == "running") launch({id, j->device_id});
  }
  to_resume_.clear();
  std::vector<std::string> ids;
  for (const auto& [id, r] : running_) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = running_.find(id);
    auto j = reg_.job_any_tenant(id);
    if (!j.is_ok()) continue;
    ingest(*j, it->second);
    if (auto ex = it->second.proc.poll()) {
      finish(*j, it->second, *ex);
      scheduler_.release(it->second.device_id);
      running_.erase(it);
    }
  }
  for (const Assignment& a : scheduler_.schedule()) launch(a);
}

void JobService::admit_validating() {
  auto pending = reg_.jobs_with_status("validating_files");
  if (!pending.is_ok() || pending->empty()) return;
  std::lock_guard<std::mutex> l(mu_);
  for (JobRecord& j : *pending) {
    auto re = reg_.job_any_tenant(j.id);  // cancel may have raced us
    if (!re.is_ok() || re->status != "validating_files") continue;
    std::string missing;
    for (const std::string& fid : {j.training_file, j.validation_file}) {
      if (fid.empty()) continue;
      auto f = reg_.file(j.tenant_id, fid);
      if (!f.is_ok() || !file_exists(f->path)) missing = fid;
    }
    if (!missing.empty()) {
      j.status = "failed";
      j.error = error_json("invalid_training_file", "file " + missing + " is missing from the artifact store", "training_file");
      j.finished_at = unix_now();
      (void)reg_.update_job(j);
      event(j.id, "error", "File validation failed: " + missing + " is missing from the artifact store");
      continue;
    }
    Status st = scheduler_.enqueue({j.id, j.tier, j.created_at, j.seq, j.memory_mb});
    if (!st.is_ok()) {
      j.status = "failed";
      j.error = error_json("no_device", st.message());
      j.finished_at = unix_now();
      (void)reg_.update_job(j);
      event(j.id, "error", st.message());
      continue;
    }
    j.status = "queued";
    (void)reg_.update_job(j);
    event(j.id, "info", "Files validated; fine-tuning job queued");
  }
}

void JobService::launch(const Assignment& a) {
  auto jr = reg_.job_any_tenant(a.job_id);
  if (!jr.is_ok() || (jr->status != "queued" && jr->status != "running")) {
    scheduler_.release(a.device_id);
    return;
  }
  JobRecord j = *jr;
  const std::string dir = job_dir(j.id), spec_path = dir + "/spec.yaml";
  std::error_code ec;
  fs::create_directories(j.output_dir, ec);
  std::vector<CheckpointDir> ckpts = scan_checkpoints(j.output_dir);
  bool resume = !ckpts.empty();
  Status st = ec ? io_error("{}: {}", j.output_dir, ec.message()) : write_file_atomic(spec_path, j.spec_yaml);
  // Running before launch: a crash between the two is then recovered as a resume, never lost.
  int64_t now = unix_now();
  j.status = "running";
  j.device_id = a.device_id;
  j.attempts += 1;
  j.attempt_started_at = now;
  if (!j.started_at) j.started_at = now;
  if (st.is_ok()) st = reg_.update_job(j);
  Result<TrainerProcess> proc = st.is_ok() ? TrainerProcess::launch({options_.trainer_path, fs::absolute(spec_path).string(), dir,
                                                                      resume, options_.trainer_env})
                                           : Result<TrainerProcess>(st);
  if (!proc.is_ok()) {
    j.status = "failed";
    j.error = error_json("launch_failed", proc.status().message());
    j.finished_at = unix_now();
    j.attempt_started_at = 0;
    (void)reg_.update_job(j);
    event(j.id, "error", "Could not start the trainer: " + proc.status().message());
    scheduler_.release(a.device_id);
    return;
  }
  j.pid = proc->pid();
  (void)reg_.update_job(j);
  Running r{std::move(*proc), a.device_id, {}, {}, 0, 0, now, metrics_file_id(j.output_dir + "/metrics.jsonl")};
  if (auto known = reg_.checkpoints(j.id); known.is_ok())
    for (const auto& c : *known) r.checkpoints.insert(c.step);
  if (auto run = reg_.run_for_job(j.id); run.is_ok())
    if (auto keys = reg_.metric_keys(run->id); keys.is_ok() && !keys->empty())
      if (auto hist = reg_.metric_history(run->id, keys->front()); hist.is_ok() && !hist->empty()) r.max_step = hist->back().step;
  running_.emplace(j.id, std::move(r));
  mirror_start(j);
  if (resume)
    event(j.id, "info", fmt::format("Fine-tuning job resumed from checkpoint step {} on device {} (attempt {})", ckpts.back().step,
                                    a.device_id, j.attempts));
  else
    event(j.id, "info", fmt::format("Fine-tuning job started on device {}", a.device_id));
}

void JobService::ingest(JobRecord& j, Running& r) {
  int64_t bad = 0, before = j.metrics_offset;
  auto lines = read_metrics(j.output_dir + "/metrics.jsonl", &j.metrics_offset, &bad, &r.metrics_file_id);
  if (r.total_steps == 0) r.total_steps = trainer_total_steps(job_dir(j.id) + "/stderr.log");
  bool changed = j.metrics_offset != before;
  auto run = reg_.run_for_job(j.id);
  if (lines.is_ok() && run.is_ok() && !lines->empty()) {
    std::vector<registry::MetricPoint> points;
    int64_t now = unix_now();
    for (const MetricsLine& m : *lines) {
      json data = {{"step", m.step}};
      for (const auto& [k, v] : m.values) {
        points.push_back({k, m.step, v, now});
        data[k == "loss" ? "train_loss" : k] = v;
        if (k == "total_steps") r.total_steps = static_cast<int64_t>(v);
      }
      r.recent[m.step] = m.values;
      if (m.step <= r.max_step) continue;  // metrics are idempotent per step; events must not repeat
      r.max_step = m.step;
      std::string msg = r.total_steps > 0 ? fmt::format("Step {}/{}", m.step, r.total_steps) : fmt::format("Step {}", m.step);
      if (m.values.count("loss")) msg += fmt::format(": training loss={:.4f}", m.values.at("loss"));
      event(j.id, "info", msg, data.dump());
    }
    (void)reg_.log_metrics(run->id, points);
    if (mlflow_) {
      std::vector<MlflowMetric> mp;
      const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      for (const auto& p : points) mp.push_back({p.key, p.value, p.step, ms});
      mlflow_->log_metrics(j.id, std::move(mp));
    }
    while (r.recent.size() > 256) r.recent.erase(r.recent.begin());
  }
  for (const CheckpointDir& c : scan_checkpoints(j.output_dir)) {
    if (r.checkpoints.count(c.step)) continue;
    json metrics = json::object();
    auto it = r.recent.upper_bound(c.step);
    if (it != r.recent.begin()) {
      --it;
      for (const auto& [k, v] : it->second) metrics[k == "loss" ? "train_loss" : k] = v;
      metrics["step"] = it->first;
    }
    if (reg_.add_checkpoint({"", j.id, c.step, c.path, metrics.dump(), 0}).is_ok()) {
      r.checkpoints.insert(c.step);
      event(j.id, "info", fmt::format("Checkpoint created at step {}", c.step));
    }
  }
  int64_t now = unix_now();
  if (changed || now - r.last_heartbeat >= 2) {  // updated_at is the heartbeat a crash is charged up to
    r.last_heartbeat = now;
    (void)reg_.update_job(j);
  }
}

void JobService::charge(const JobRecord& j, int64_t until) {
  if (j.attempt_started_at <= 0) return;
  double hours = static_cast<double>(std::max<int64_t>(until - j.attempt_started_at, 1)) / 3600.0;
  Status st = reg_.charge_usage(j.tenant_id, j.id, j.attempts, registry::month_key(j.attempt_started_at), hours);
  if (!st.is_ok()) std::fprintf(stderr, "tuneloop server: usage for %s not charged: %s\n", j.id.c_str(), st.message().c_str());
}

void JobService::finish(JobRecord& j, Running& r, const ExitStatus& ex) {
  ingest(j, r);  // whatever the trainer wrote last
  int64_t now = unix_now();
  charge(j, now);
  j.pid = 0;
  j.finished_at = now;
  if (ex.exited && ex.code == 0) {
    // The finished adapter is the final checkpoint (OpenAI lists the end-of-training model among a
    // job's checkpoints), unless the trainer already saved one at that step.
    if (r.max_step > 0 && !r.checkpoints.count(r.max_step)) {
      json metrics = json::object();
      if (auto it = r.recent.find(r.max_step); it != r.recent.end())
        for (const auto& [k, v] : it->second) metrics[k == "loss" ? "train_loss" : k] = v;
      metrics["step"] = r.max_step;
      if (reg_.add_checkpoint({"", j.id, r.max_step, j.output_dir, metrics.dump(), 0}).is_ok()) r.checkpoints.insert(r.max_step);
    }
    std::string suffix = j.suffix.empty() ? "tuneloop" : j.suffix;
    j.fine_tuned_model = fmt::format("ft:{}:{}:{}", j.model, suffix, j.id.substr(j.id.find('-') + 1));
    registry::AdapterRecord a;
    a.tenant_id = j.tenant_id;
    a.name = j.fine_tuned_model;
    a.domain = j.suffix.empty() ? "default" : j.suffix;
    a.base_model = j.model;
    a.job_id = j.id;
    a.path = j.output_dir;
    // The weights go into the content-addressed store; the adapter keeps its PEFT directory too.
    for (const char* name : {"adapter_config.json", "adapter_model.safetensors"}) {
      std::string p = j.output_dir + "/" + name;
      if (!file_exists(p)) continue;
      auto h = store_.put_file(p);
      if (h.is_ok() && std::string(name) == "adapter_model.safetensors") a.sha256 = *h;
    }
    Status st = reg_.add_adapter(a);
    if (!st.is_ok()) event(j.id, "warn", "Adapter not registered: " + st.message());
    j.status = "succeeded";
    j.attempt_started_at = 0;
    (void)reg_.update_job(j);
    event(j.id, "info", "New fine-tuned model created: " + j.fine_tuned_model);
    event(j.id, "info", "The job has successfully completed");
    if (mlflow_) mlflow_->end_run(j.id, "FINISHED", job_dir(j.id) + "/mlflow.json");
    return;
  }
  std::string tail = tail_lines(job_dir(j.id) + "/stderr.log", 5);
  std::string msg = "the trainer " + ex.describe() + (tail.empty() ? "" : ":\n" + tail);
  j.status = "failed";
  j.error = error_json("trainer_failed", msg);
  j.attempt_started_at = 0;
  (void)reg_.update_job(j);
  event(j.id, "error", "Fine-tuning job failed: " + msg);
  if (mlflow_) mlflow_->end_run(j.id, "FAILED", job_dir(j.id) + "/mlflow.json");
}

}  // namespace tl::jobs
