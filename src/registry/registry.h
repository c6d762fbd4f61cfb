// Registry: the control plane's system of record — tenants, base models, uploaded files, fine-tuning
// jobs and their events, runs with params and metric history, checkpoints, adapters with their
// lifecycle (adapter_lifecycle.h) and an active pointer per tenant × domain, and device-hour usage.
//
// One interface over two stores with the same schema and numbered migrations (detail/migrations.cpp):
//   Registry::open("")                               ./tuneloop.db (SQLite, WAL, foreign keys)
//   Registry::open("path/to/file.db")                SQLite at that path ("sqlite:" prefix optional)
//   Registry::open("postgresql://u@127.0.0.1:5432/db")  PostgreSQL through libpq
//
// Thread-safe: every call takes one mutex around one connection, which is what a single control-plane
// server needs (measured in bench/control_plane_bench.cpp). Every lookup that a tenant can trigger takes
// the tenant id and answers kNotFound for another tenant's object, so the API can never leak existence.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(auto reg, tl::registry::Registry::open(url));
//   TL_ASSIGN_OR_RETURN(auto created, reg->create_tenant("acme", Tier::kPro, 100.0));
//   std::cout << created.api_key;                    // shown once; only its sha256 is stored
//   TL_ASSIGN_OR_RETURN(Tenant t, reg->tenant_by_api_key(created.api_key));
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "registry/adapter_lifecycle.h"

namespace tl::registry {

namespace detail {
class SqlConnection;
}

enum class Tier { kEnterprise = 0, kPro = 1, kFree = 2 };  // lower value = higher priority
const char* tier_name(Tier t);
std::optional<Tier> parse_tier(std::string_view s);
// Monthly device-hour quota a tenant gets when `tenant add` is not given one.
double default_quota_hours(Tier t);

struct Tenant {
  std::string id;  // "tenant-…"
  std::string name;
  Tier tier = Tier::kFree;
  double quota_device_hours = 0;  // per calendar month (UTC); negative = unlimited
  int64_t created_at = 0;
};

struct CreatedTenant {
  Tenant tenant;
  std::string api_key;  // the only time the plain key exists
};

struct ModelRecord {
  std::string name;
  std::string dir;
  int64_t parameter_count = 0;
  std::string config_sha256;
  int64_t created_at = 0;
};

struct FileRecord {
  std::string id;  // "file-…"
  std::string tenant_id;
  std::string filename;
  std::string purpose;
  int64_t bytes = 0;
  std::string sha256;
  int64_t line_count = 0;
  std::string format;  // openai_chat | sharegpt | alpaca | input_output | dpo
  int64_t token_estimate = 0;
  std::string path;  // in the artifact store
  int64_t created_at = 0;
};

// Job status strings are OpenAI's: validating_files, queued, running, succeeded, failed, cancelled
// (the state machine is drawn in jobs/job_service.h).
struct JobRecord {
  std::string id;  // "ftjob-…"
  std::string tenant_id;
  std::string model;
  std::string training_file;
  std::string validation_file;  // empty = none
  std::string suffix;
  int64_t seed = 0;
  std::string method;           // supervised | dpo (OpenAI's names); the spec says lora/qlora/full/dpo
  std::string hyperparameters;  // JSON object as returned by the API (resolved values)
  std::string spec_yaml;        // the unified tuneloop spec the runner executes
  std::string status;
  Tier tier = Tier::kFree;
  std::string error;  // JSON {"code","message","param"} or empty
  std::string fine_tuned_model;
  std::string output_dir;
  double estimated_device_hours = 0;
  double estimated_cost = 0;
  int64_t estimated_finish = 0;
  int64_t memory_mb = 0;
  int64_t trained_tokens = 0;
  std::string device_id;
  int64_t pid = 0;  // process group of the running trainer, 0 when none
  int64_t metrics_offset = 0;  // bytes of metrics.jsonl already ingested
  int64_t attempts = 0;        // launches so far (a resume after restart is another attempt)
  int64_t attempt_started_at = 0;  // start of the current launch; usage is charged per launch
  bool cancel_requested = false;
  int64_t created_at = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  int64_t updated_at = 0;
  int64_t seq = 0;  // insertion order, for pagination and FIFO
};

struct EventRecord {
  int64_t seq = 0;
  std::string id;  // "ftevent-…"
  std::string job_id;
  int64_t created_at = 0;
  std::string level;  // info | warn | error
  std::string type;   // message | metrics
  std::string message;
  std::string data;  // JSON object or empty
};

struct MetricPoint {
  std::string key;
  int64_t step = 0;
  double value = 0;
  int64_t created_at = 0;
};

struct RunRecord {
  std::string id;  // "run-…"
  std::string job_id;
  std::string tenant_id;
  int64_t created_at = 0;
  std::vector<std::pair<std::string, std::string>> params;
};

struct CheckpointRecord {
  std::string id;  // "ftckpt-…"
  std::string job_id;
  int64_t step = 0;
  std::string path;
  std::string metrics;  // JSON object
  int64_t created_at = 0;
};

struct AdapterRecord {
  std::string id;  // "adapter-…"
  std::string tenant_id;
  std::string name;  // the fine_tuned_model name, ft:BASE:SUFFIX:JOB
  std::string domain;
  std::string base_model;
  std::string job_id;
  std::string path;
  std::string sha256;
  AdapterState state = AdapterState::kDraft;
  bool active = false;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct Lineage {
  AdapterRecord adapter;
  std::optional<JobRecord> job;
  std::optional<FileRecord> training_file;
  std::optional<FileRecord> validation_file;
  std::optional<ModelRecord> base_model;
  std::vector<CheckpointRecord> checkpoints;
};

struct Page {
  std::string after;  // exclusive cursor: an object id; empty = from the newest
  int64_t limit = 20;
};

class Registry {
 public:
  static Result<std::unique_ptr<Registry>> open(const std::string& url);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& url() const { return url_; }
  bool is_postgres() const;
  Result<int> schema_version();

  // Tenants. quota_hours < 0 = unlimited.
  Result<CreatedTenant> create_tenant(const std::string& name, Tier tier, double quota_hours);
  Result<Tenant> tenant_by_api_key(const std::string& api_key);
  Result<Tenant> tenant(const std::string& id);
  Result<Tenant> tenant_by_name(const std::string& name);

  // Base models.
  Status add_model(const ModelRecord& m);
  Result<ModelRecord> model(const std::string& name);
  Result<std::vector<ModelRecord>> models();

  // Files (tenant-scoped).
  Status add_file(const FileRecord& f);
  Result<FileRecord> file(const std::string& tenant_id, const std::string& id);
  Result<std::vector<FileRecord>> files(const std::string& tenant_id);

  // Jobs. create_job also creates the job's run (id "run-" + job id without its prefix).
  Status create_job(const JobRecord& j);
  Result<JobRecord> job(const std::string& tenant_id, const std::string& id);
  Result<JobRecord> job_any_tenant(const std::string& id);  // for the scheduler, never the API
  // Newest first; returns limit+1 rows at most so the caller can say has_more.
  Result<std::vector<JobRecord>> jobs(const std::string& tenant_id, const Page& page);
  Result<std::vector<JobRecord>> jobs_with_status(const std::string& status);  // oldest first
  Status update_job(const JobRecord& j);
  // Estimated device-hours of the tenant's jobs that have not finished yet (quota reservations).
  Result<double> unfinished_estimated_hours(const std::string& tenant_id);

  // Events, newest first with `after` an event id (OpenAI's order); limit+1 rows at most.
  Status add_event(const std::string& job_id, const std::string& level, const std::string& type,
                   const std::string& message, const std::string& data_json);
  Result<std::vector<EventRecord>> events(const std::string& job_id, const Page& page);

  // Runs, params and metric history. log_metric is idempotent per (run, key, step).
  Result<RunRecord> run_for_job(const std::string& job_id);
  Status set_run_param(const std::string& run_id, const std::string& key, const std::string& value);
  Status log_metrics(const std::string& run_id, const std::vector<MetricPoint>& points);
  Result<std::vector<MetricPoint>> metric_history(const std::string& run_id, const std::string& key);
  Result<std::vector<std::string>> metric_keys(const std::string& run_id);

  // Checkpoints, idempotent per (job, step); listed newest step first.
  Status add_checkpoint(const CheckpointRecord& c);
  Result<std::vector<CheckpointRecord>> checkpoints(const std::string& job_id);

  // Adapters and their lifecycle.
  Status add_adapter(const AdapterRecord& a);
  Result<AdapterRecord> adapter(const std::string& tenant_id, const std::string& id_or_name);
  Result<AdapterRecord> adapter_any_tenant(const std::string& id_or_name);
  Result<std::vector<AdapterRecord>> adapters(const std::string& tenant_id);
  Result<AdapterRecord> approve_adapter(const std::string& tenant_id, const std::string& id);
  Result<AdapterRecord> deprecate_adapter(const std::string& tenant_id, const std::string& id);
  Result<AdapterRecord> set_active_adapter(const std::string& tenant_id, const std::string& id);
  Result<std::optional<AdapterRecord>> active_adapter(const std::string& tenant_id, const std::string& domain);
  Result<Lineage> lineage(const std::string& id_or_name);

  // Usage: one row per job attempt (idempotent), summed per tenant per UTC month ("2025-01").
  Status charge_usage(const std::string& tenant_id, const std::string& job_id, int64_t attempt, const std::string& month,
                      double device_hours);
  Result<double> usage_hours(const std::string& tenant_id, const std::string& month);

 private:
  Registry(std::string url, std::unique_ptr<detail::SqlConnection> db);
  Result<AdapterRecord> transition_locked(const std::string& tenant_id, const std::string& id, AdapterState to);
  Result<AdapterRecord> adapter_locked(const std::string& tenant_id, const std::string& id_or_name);

  std::string url_;
  std::mutex mu_;
  std::unique_ptr<detail::SqlConnection> db_;
};

// Unix seconds now, and the UTC month key ("2025-01") of a Unix time.
int64_t unix_now();
std::string month_key(int64_t unix_seconds);

}  // namespace tl::registry
