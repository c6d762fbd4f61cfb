// Registry over SqlConnection: statements in the SQLite/PostgreSQL common subset, one mutex, explicit
// transactions where several rows must change together (adapter transitions, active pointers).
#include "registry/registry.h"

#include <ctime>

#include "registry/detail/sql.h"
#include "registry/hashing.h"

namespace tl::registry {

using detail::SqlParams;
using detail::SqlRow;

const char* tier_name(Tier t) {
  switch (t) {
    case Tier::kEnterprise: return "enterprise";
    case Tier::kPro: return "pro";
    case Tier::kFree: return "free";
  }
  return "free";
}

std::optional<Tier> parse_tier(std::string_view s) {
  if (s == "enterprise") return Tier::kEnterprise;
  if (s == "pro") return Tier::kPro;
  if (s == "free") return Tier::kFree;
  return std::nullopt;
}

double default_quota_hours(Tier t) {
  switch (t) {
    case Tier::kEnterprise: return 1000;
    case Tier::kPro: return 100;
    case Tier::kFree: return 10;
  }
  return 10;
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string month_key(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04d}-{:02d}", tm.tm_year + 1900, tm.tm_mon + 1);
}

namespace {

using Lock = std::lock_guard<std::mutex>;

detail::SqlParam opt_text(const std::string& s) {
  if (s.empty()) return nullptr;
  return s;
}

const char* kTenantCols = "id, name, tier, quota_device_hours, created_at";
Tenant tenant_from(const SqlRow& r) {
  Tenant t;
  t.id = r.text(0);
  t.name = r.text(1);
  t.tier = parse_tier(r.text(2)).value_or(Tier::kFree);
  t.quota_device_hours = r.f64(3);
  t.created_at = r.i64(4);
  return t;
}

const char* kModelCols = "name, dir, parameter_count, config_sha256, created_at";
ModelRecord model_from(const SqlRow& r) {
  return {r.text(0), r.text(1), r.i64(2), r.text(3), r.i64(4)};
}

const char* kFileCols = "id, tenant_id, filename, purpose, bytes, sha256, line_count, format, token_estimate, path, created_at";
FileRecord file_from(const SqlRow& r) {
  FileRecord f;
  f.id = r.text(0);
  f.tenant_id = r.text(1);
  f.filename = r.text(2);
  f.purpose = r.text(3);
  f.bytes = r.i64(4);
  f.sha256 = r.text(5);
  f.line_count = r.i64(6);
  f.format = r.text(7);
  f.token_estimate = r.i64(8);
  f.path = r.text(9);
  f.created_at = r.i64(10);
  return f;
}

const char* kJobCols =
    "id, tenant_id, model, training_file, validation_file, suffix, seed, method, hyperparameters, spec_yaml, "
    "status, tier, error, fine_tuned_model, output_dir, estimated_device_hours, estimated_cost, estimated_finish, "
    "memory_mb, trained_tokens, device_id, pid, metrics_offset, attempts, attempt_started_at, cancel_requested, created_at, "
    "started_at, finished_at, updated_at, seq";
JobRecord job_from(const SqlRow& r) {
  JobRecord j;
  size_t i = 0;
  j.id = r.text(i++);
  j.tenant_id = r.text(i++);
  j.model = r.text(i++);
  j.training_file = r.text(i++);
  j.validation_file = r.text(i++);
  j.suffix = r.text(i++);
  j.seed = r.i64(i++);
  j.method = r.text(i++);
  j.hyperparameters = r.text(i++);
  j.spec_yaml = r.text(i++);
  j.status = r.text(i++);
  j.tier = parse_tier(r.text(i++)).value_or(Tier::kFree);
  j.error = r.text(i++);
  j.fine_tuned_model = r.text(i++);
  j.output_dir = r.text(i++);
  j.estimated_device_hours = r.f64(i++);
  j.estimated_cost = r.f64(i++);
  j.estimated_finish = r.i64(i++);
  j.memory_mb = r.i64(i++);
  j.trained_tokens = r.i64(i++);
  j.device_id = r.text(i++);
  j.pid = r.i64(i++);
  j.metrics_offset = r.i64(i++);
  j.attempts = r.i64(i++);
  j.attempt_started_at = r.i64(i++);
  j.cancel_requested = r.i64(i++) != 0;
  j.created_at = r.i64(i++);
  j.started_at = r.i64(i++);
  j.finished_at = r.i64(i++);
  j.updated_at = r.i64(i++);
  j.seq = r.i64(i++);
  return j;
}

const char* kEventCols = "seq, id, job_id, created_at, level, type, message, data";
EventRecord event_from(const SqlRow& r) {
  return {r.i64(0), r.text(1), r.text(2), r.i64(3), r.text(4), r.text(5), r.text(6), r.text(7)};
}

const char* kCheckpointCols = "id, job_id, step, path, metrics, created_at";
CheckpointRecord checkpoint_from(const SqlRow& r) {
  return {r.text(0), r.text(1), r.i64(2), r.text(3), r.text(4), r.i64(5)};
}

// Adapters are selected with their active flag computed from active_adapters.
const char* kAdapterSelect =
    "SELECT a.id, a.tenant_id, a.name, a.domain, a.base_model, a.job_id, a.path, a.sha256, a.state, a.created_at, "
    "a.updated_at, CASE WHEN x.adapter_id IS NULL THEN 0 ELSE 1 END FROM adapters a LEFT JOIN active_adapters x "
    "ON x.tenant_id = a.tenant_id AND x.domain = a.domain AND x.adapter_id = a.id ";
AdapterRecord adapter_from(const SqlRow& r) {
  AdapterRecord a;
  a.id = r.text(0);
  a.tenant_id = r.text(1);
  a.name = r.text(2);
  a.domain = r.text(3);
  a.base_model = r.text(4);
  a.job_id = r.text(5);
  a.path = r.text(6);
  a.sha256 = r.text(7);
  a.state = parse_adapter_state(r.text(8)).value_or(AdapterState::kDraft);
  a.created_at = r.i64(9);
  a.updated_at = r.i64(10);
  a.active = r.i64(11) != 0;
  return a;
}

}  // namespace

Registry::Registry(std::string url, std::unique_ptr<detail::SqlConnection> db) : url_(std::move(url)), db_(std::move(db)) {}
Registry::~Registry() = default;

Result<std::unique_ptr<Registry>> Registry::open(const std::string& url) {
  std::unique_ptr<detail::SqlConnection> db;
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    TL_ASSIGN_OR_RETURN(db, detail::open_postgres(url));
  } else {
    std::string path = url.empty() ? "tuneloop.db" : url;
    if (path.rfind("sqlite:", 0) == 0) path = path.substr(7);
    TL_ASSIGN_OR_RETURN(db, detail::open_sqlite(path));
  }
  TL_TRY(detail::migrate(*db).with_context(url.empty() ? "tuneloop.db" : url));
  return std::unique_ptr<Registry>(new Registry(url, std::move(db)));
}

bool Registry::is_postgres() const { return db_->dialect() == detail::Dialect::kPostgres; }

Result<int> Registry::schema_version() {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT MAX(version) FROM schema_migrations"));
  return static_cast<int>(rows.at(0).i64(0));
}

// ---- tenants ----

Result<CreatedTenant> Registry::create_tenant(const std::string& name, Tier tier, double quota_hours) {
  if (name.empty() || name.size() > 64) return invalid_argument("tenant name must be 1..64 characters, got '{}'", name);
  CreatedTenant c;
  c.tenant = {random_token("tenant-", 8), name, tier, quota_hours, unix_now()};
  c.api_key = random_token("tl-", 24);
  Lock l(mu_);
  auto r = db_->exec("INSERT INTO tenants (id, name, tier, api_key_sha256, quota_device_hours, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                     {c.tenant.id, name, std::string(tier_name(tier)), sha256_hex(c.api_key), quota_hours, c.tenant.created_at});
  if (r.status().code() == StatusCode::kAlreadyExists) return already_exists("tenant '{}' already exists", name);
  TL_TRY(r);
  return c;
}

Result<Tenant> Registry::tenant_by_api_key(const std::string& api_key) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM tenants WHERE api_key_sha256 = ?", kTenantCols),
                                            {sha256_hex(api_key)}));
  if (rows.empty()) return unauthenticated("invalid API key");
  return tenant_from(rows[0]);
}

Result<Tenant> Registry::tenant(const std::string& id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM tenants WHERE id = ?", kTenantCols), {id}));
  if (rows.empty()) return not_found("no tenant with id '{}'", id);
  return tenant_from(rows[0]);
}

Result<Tenant> Registry::tenant_by_name(const std::string& name) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM tenants WHERE name = ?", kTenantCols), {name}));
  if (rows.empty()) return not_found("no tenant named '{}'", name);
  return tenant_from(rows[0]);
}

// ---- models ----

Status Registry::add_model(const ModelRecord& m) {
  Lock l(mu_);
  auto r = db_->exec("INSERT INTO models (name, dir, parameter_count, config_sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                     {m.name, m.dir, m.parameter_count, m.config_sha256, m.created_at ? m.created_at : unix_now()});
  if (r.status().code() == StatusCode::kAlreadyExists) return already_exists("model '{}' is already registered", m.name);
  return r.status();
}

Result<ModelRecord> Registry::model(const std::string& name) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM models WHERE name = ?", kModelCols), {name}));
  if (rows.empty()) return not_found("model '{}' is not registered (tuneloop model add NAME MODEL_DIR)", name);
  return model_from(rows[0]);
}

Result<std::vector<ModelRecord>> Registry::models() {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM models ORDER BY name", kModelCols)));
  std::vector<ModelRecord> out;
  for (const auto& r : rows) out.push_back(model_from(r));
  return out;
}

// ---- files ----

Status Registry::add_file(const FileRecord& f) {
  Lock l(mu_);
  return db_
      ->exec(fmt::format("INSERT INTO files ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", kFileCols),
             {f.id, f.tenant_id, f.filename, f.purpose, f.bytes, f.sha256, f.line_count, f.format, f.token_estimate, f.path,
              f.created_at ? f.created_at : unix_now()})
      .status();
}

Result<FileRecord> Registry::file(const std::string& tenant_id, const std::string& id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM files WHERE id = ? AND tenant_id = ?", kFileCols),
                                            {id, tenant_id}));
  if (rows.empty()) return not_found("no file with id '{}'", id);
  return file_from(rows[0]);
}

Result<std::vector<FileRecord>> Registry::files(const std::string& tenant_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM files WHERE tenant_id = ? ORDER BY seq DESC", kFileCols),
                                            {tenant_id}));
  std::vector<FileRecord> out;
  for (const auto& r : rows) out.push_back(file_from(r));
  return out;
}

// ---- jobs ----

Status Registry::create_job(const JobRecord& j) {
  Lock l(mu_);
  TL_TRY(db_->exec_script("BEGIN"));
  auto r = db_->exec(
      "INSERT INTO jobs (id, tenant_id, model, training_file, validation_file, suffix, seed, method, hyperparameters, "
      "spec_yaml, status, tier, error, fine_tuned_model, output_dir, estimated_device_hours, estimated_cost, "
      "estimated_finish, memory_mb, trained_tokens, device_id, pid, metrics_offset, attempts, attempt_started_at, "
      "cancel_requested, created_at, started_at, finished_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
      "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {j.id, j.tenant_id, j.model, j.training_file, opt_text(j.validation_file), opt_text(j.suffix), j.seed, j.method,
       j.hyperparameters, j.spec_yaml, j.status, std::string(tier_name(j.tier)), opt_text(j.error),
       opt_text(j.fine_tuned_model), j.output_dir, j.estimated_device_hours, j.estimated_cost, j.estimated_finish,
       j.memory_mb, j.trained_tokens, opt_text(j.device_id), j.pid, j.metrics_offset, j.attempts,
       j.attempt_started_at, int64_t{j.cancel_requested}, j.created_at, j.started_at ? detail::SqlParam(j.started_at) : nullptr,
       j.finished_at ? detail::SqlParam(j.finished_at) : nullptr, j.updated_at ? j.updated_at : j.created_at});
  Status st = r.status();
  if (st.is_ok()) {
    std::string run_id = "run-" + j.id.substr(j.id.find('-') + 1);
    st = db_->exec("INSERT INTO runs (id, job_id, tenant_id, created_at) VALUES (?, ?, ?, ?)",
                   {run_id, j.id, j.tenant_id, j.created_at})
             .status();
  }
  if (!st.is_ok()) {
    (void)db_->exec_script("ROLLBACK");
    if (st.code() == StatusCode::kFailedPrecondition)
      return failed_precondition("job {}: model or file does not exist ({})", j.id, st.message());
    return st;
  }
  return db_->exec_script("COMMIT");
}

Result<JobRecord> Registry::job(const std::string& tenant_id, const std::string& id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM jobs WHERE id = ? AND tenant_id = ?", kJobCols),
                                            {id, tenant_id}));
  if (rows.empty()) return not_found("no fine-tuning job with id '{}'", id);
  return job_from(rows[0]);
}

Result<JobRecord> Registry::job_any_tenant(const std::string& id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM jobs WHERE id = ?", kJobCols), {id}));
  if (rows.empty()) return not_found("no fine-tuning job with id '{}'", id);
  return job_from(rows[0]);
}

Result<std::vector<JobRecord>> Registry::jobs(const std::string& tenant_id, const Page& page) {
  Lock l(mu_);
  std::vector<SqlRow> rows;
  if (page.after.empty()) {
    TL_ASSIGN_OR_RETURN(rows, db_->query(fmt::format("SELECT {} FROM jobs WHERE tenant_id = ? ORDER BY seq DESC LIMIT ?", kJobCols),
                                         {tenant_id, page.limit + 1}));
  } else {
    TL_ASSIGN_OR_RETURN(auto cursor, db_->query("SELECT seq FROM jobs WHERE id = ? AND tenant_id = ?", {page.after, tenant_id}));
    if (cursor.empty()) return not_found("after: no fine-tuning job with id '{}'", page.after);
    TL_ASSIGN_OR_RETURN(rows, db_->query(fmt::format("SELECT {} FROM jobs WHERE tenant_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                                                     kJobCols),
                                         {tenant_id, cursor[0].i64(0), page.limit + 1}));
  }
  std::vector<JobRecord> out;
  for (const auto& r : rows) out.push_back(job_from(r));
  return out;
}

Result<std::vector<JobRecord>> Registry::jobs_with_status(const std::string& status) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM jobs WHERE status = ? ORDER BY seq", kJobCols), {status}));
  std::vector<JobRecord> out;
  for (const auto& r : rows) out.push_back(job_from(r));
  return out;
}

Status Registry::update_job(const JobRecord& j) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(int64_t n,
                      db_->exec("UPDATE jobs SET status = ?, error = ?, fine_tuned_model = ?, estimated_device_hours = ?, "
                                "estimated_cost = ?, estimated_finish = ?, trained_tokens = ?, device_id = ?, pid = ?, "
                                "metrics_offset = ?, attempts = ?, attempt_started_at = ?, cancel_requested = ?, started_at = ?, "
                                "finished_at = ?, "
                                "updated_at = ? WHERE id = ?",
                                {j.status, opt_text(j.error), opt_text(j.fine_tuned_model), j.estimated_device_hours,
                                 j.estimated_cost, j.estimated_finish, j.trained_tokens, opt_text(j.device_id), j.pid,
                                 j.metrics_offset, j.attempts, j.attempt_started_at, int64_t{j.cancel_requested},
                                 j.started_at ? detail::SqlParam(j.started_at) : nullptr,
                                 j.finished_at ? detail::SqlParam(j.finished_at) : nullptr, unix_now(), j.id}));
  if (n == 0) return not_found("no fine-tuning job with id '{}'", j.id);
  return Status::ok();
}

Result<double> Registry::unfinished_estimated_hours(const std::string& tenant_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT COALESCE(SUM(estimated_device_hours), 0) FROM jobs WHERE tenant_id = ? AND "
                                            "status IN ('validating_files', 'queued', 'running')",
                                            {tenant_id}));
  return rows.empty() ? 0.0 : rows[0].f64(0);
}

// ---- events ----

Status Registry::add_event(const std::string& job_id, const std::string& level, const std::string& type,
                           const std::string& message, const std::string& data_json) {
  Lock l(mu_);
  return db_
      ->exec("INSERT INTO events (id, job_id, created_at, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
             {random_token("ftevent-", 12), job_id, unix_now(), level, type, message, opt_text(data_json)})
      .status();
}

Result<std::vector<EventRecord>> Registry::events(const std::string& job_id, const Page& page) {
  Lock l(mu_);
  std::vector<SqlRow> rows;
  if (page.after.empty()) {
    TL_ASSIGN_OR_RETURN(rows, db_->query(fmt::format("SELECT {} FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT ?", kEventCols),
                                         {job_id, page.limit + 1}));
  } else {
    TL_ASSIGN_OR_RETURN(auto cursor, db_->query("SELECT seq FROM events WHERE id = ? AND job_id = ?", {page.after, job_id}));
    if (cursor.empty()) return not_found("after: no event with id '{}' in job {}", page.after, job_id);
    TL_ASSIGN_OR_RETURN(rows, db_->query(fmt::format("SELECT {} FROM events WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                                                     kEventCols),
                                         {job_id, cursor[0].i64(0), page.limit + 1}));
  }
  std::vector<EventRecord> out;
  for (const auto& r : rows) out.push_back(event_from(r));
  return out;
}

// ---- runs and metrics ----

Result<RunRecord> Registry::run_for_job(const std::string& job_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT id, job_id, tenant_id, created_at FROM runs WHERE job_id = ?", {job_id}));
  if (rows.empty()) return not_found("no run for job '{}'", job_id);
  RunRecord run{rows[0].text(0), rows[0].text(1), rows[0].text(2), rows[0].i64(3), {}};
  TL_ASSIGN_OR_RETURN(auto params, db_->query("SELECT key, value FROM run_params WHERE run_id = ? ORDER BY key", {run.id}));
  for (const auto& p : params) run.params.emplace_back(p.text(0), p.text(1));
  return run;
}

Status Registry::set_run_param(const std::string& run_id, const std::string& key, const std::string& value) {
  Lock l(mu_);
  return db_
      ->exec("INSERT INTO run_params (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
             {run_id, key, value})
      .status();
}

Status Registry::log_metrics(const std::string& run_id, const std::vector<MetricPoint>& points) {
  if (points.empty()) return Status::ok();
  Lock l(mu_);
  TL_TRY(db_->exec_script("BEGIN"));
  for (const auto& p : points) {
    auto r = db_->exec(
        "INSERT INTO run_metrics (run_id, key, step, value, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, key, step) DO NOTHING",
        {run_id, p.key, p.step, p.value, p.created_at ? p.created_at : unix_now()});
    if (!r.is_ok()) {
      (void)db_->exec_script("ROLLBACK");
      return r.status();
    }
  }
  return db_->exec_script("COMMIT");
}

Result<std::vector<MetricPoint>> Registry::metric_history(const std::string& run_id, const std::string& key) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT key, step, value, created_at FROM run_metrics WHERE run_id = ? AND key = ? ORDER BY step",
                                            {run_id, key}));
  std::vector<MetricPoint> out;
  for (const auto& r : rows) out.push_back({r.text(0), r.i64(1), r.f64(2), r.i64(3)});
  return out;
}

Result<std::vector<std::string>> Registry::metric_keys(const std::string& run_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT DISTINCT key FROM run_metrics WHERE run_id = ? ORDER BY key", {run_id}));
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.text(0));
  return out;
}

// ---- checkpoints ----

Status Registry::add_checkpoint(const CheckpointRecord& c) {
  Lock l(mu_);
  return db_
      ->exec("INSERT INTO checkpoints (id, job_id, step, path, metrics, created_at) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (job_id, step) DO NOTHING",
             {c.id.empty() ? random_token("ftckpt-", 12) : c.id, c.job_id, c.step, c.path,
              c.metrics.empty() ? std::string("{}") : c.metrics, c.created_at ? c.created_at : unix_now()})
      .status();
}

Result<std::vector<CheckpointRecord>> Registry::checkpoints(const std::string& job_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(fmt::format("SELECT {} FROM checkpoints WHERE job_id = ? ORDER BY step DESC", kCheckpointCols),
                                            {job_id}));
  std::vector<CheckpointRecord> out;
  for (const auto& r : rows) out.push_back(checkpoint_from(r));
  return out;
}

// ---- adapters ----

Status Registry::add_adapter(const AdapterRecord& a) {
  Lock l(mu_);
  int64_t now = unix_now();
  auto r = db_->exec(
      "INSERT INTO adapters (id, tenant_id, name, domain, base_model, job_id, path, sha256, state, created_at, updated_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {a.id.empty() ? random_token("adapter-", 8) : a.id, a.tenant_id, a.name, a.domain, a.base_model, opt_text(a.job_id),
       a.path, a.sha256, std::string("draft"), now, now});
  if (r.status().code() == StatusCode::kAlreadyExists) return already_exists("adapter '{}' already exists", a.name);
  return r.status();
}

Result<AdapterRecord> Registry::adapter_locked(const std::string& tenant_id, const std::string& id_or_name) {
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(std::string(kAdapterSelect) + "WHERE (a.id = ? OR a.name = ?) AND a.tenant_id = ?",
                                            {id_or_name, id_or_name, tenant_id}));
  if (rows.empty()) return not_found("no adapter '{}'", id_or_name);
  return adapter_from(rows[0]);
}

Result<AdapterRecord> Registry::adapter(const std::string& tenant_id, const std::string& id_or_name) {
  Lock l(mu_);
  return adapter_locked(tenant_id, id_or_name);
}

Result<AdapterRecord> Registry::adapter_any_tenant(const std::string& id_or_name) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(std::string(kAdapterSelect) + "WHERE a.id = ? OR a.name = ?", {id_or_name, id_or_name}));
  if (rows.empty()) return not_found("no adapter '{}'", id_or_name);
  if (rows.size() > 1) return invalid_argument("adapter name '{}' is used by several tenants; give the adapter id", id_or_name);
  return adapter_from(rows[0]);
}

Result<std::vector<AdapterRecord>> Registry::adapters(const std::string& tenant_id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query(std::string(kAdapterSelect) + "WHERE a.tenant_id = ? ORDER BY a.created_at DESC, a.id",
                                            {tenant_id}));
  std::vector<AdapterRecord> out;
  for (const auto& r : rows) out.push_back(adapter_from(r));
  return out;
}

Result<AdapterRecord> Registry::transition_locked(const std::string& tenant_id, const std::string& id, AdapterState to) {
  TL_ASSIGN_OR_RETURN(AdapterRecord a, adapter_locked(tenant_id, id));
  TL_TRY(check_adapter_transition(a.name, a.state, to));
  int64_t now = unix_now();
  TL_TRY(db_->exec_script("BEGIN"));
  auto fail = [&](Status st) {
    (void)db_->exec_script("ROLLBACK");
    return st;
  };
  // Guarded by the old state so a concurrent transition from another process cannot be overwritten.
  auto r = db_->exec("UPDATE adapters SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                     {std::string(adapter_state_name(to)), now, a.id, std::string(adapter_state_name(a.state))});
  if (!r.is_ok()) return fail(r.status());
  if (*r != 1) return fail(failed_precondition("adapter {}: changed state concurrently; retry", a.name));
  r = db_->exec("INSERT INTO adapter_transitions (adapter_id, from_state, to_state, at) VALUES (?, ?, ?, ?)",
                {a.id, std::string(adapter_state_name(a.state)), std::string(adapter_state_name(to)), now});
  if (!r.is_ok()) return fail(r.status());
  if (to == AdapterState::kDeprecated) {
    r = db_->exec("DELETE FROM active_adapters WHERE adapter_id = ?", {a.id});
    if (!r.is_ok()) return fail(r.status());
  }
  TL_TRY(db_->exec_script("COMMIT"));
  return adapter_locked(tenant_id, a.id);
}

Result<AdapterRecord> Registry::approve_adapter(const std::string& tenant_id, const std::string& id) {
  Lock l(mu_);
  return transition_locked(tenant_id, id, AdapterState::kApproved);
}

Result<AdapterRecord> Registry::deprecate_adapter(const std::string& tenant_id, const std::string& id) {
  Lock l(mu_);
  return transition_locked(tenant_id, id, AdapterState::kDeprecated);
}

Result<AdapterRecord> Registry::set_active_adapter(const std::string& tenant_id, const std::string& id) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(AdapterRecord a, adapter_locked(tenant_id, id));
  if (a.state != AdapterState::kApproved)
    return failed_precondition("adapter {}: only an approved adapter can be active (it is {}; approve it first)", a.name,
                               adapter_state_name(a.state));
  TL_TRY(db_->exec("INSERT INTO active_adapters (tenant_id, domain, adapter_id, updated_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (tenant_id, domain) DO UPDATE SET adapter_id = excluded.adapter_id, updated_at = excluded.updated_at",
                   {tenant_id, a.domain, a.id, unix_now()}));
  return adapter_locked(tenant_id, a.id);
}

Result<std::optional<AdapterRecord>> Registry::active_adapter(const std::string& tenant_id, const std::string& domain) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT adapter_id FROM active_adapters WHERE tenant_id = ? AND domain = ?",
                                            {tenant_id, domain}));
  if (rows.empty()) return std::optional<AdapterRecord>();
  TL_ASSIGN_OR_RETURN(AdapterRecord a, adapter_locked(tenant_id, rows[0].text(0)));
  return std::optional<AdapterRecord>(a);
}

Result<Lineage> Registry::lineage(const std::string& id_or_name) {
  Lineage out;
  TL_ASSIGN_OR_RETURN(out.adapter, adapter_any_tenant(id_or_name));
  if (auto m = model(out.adapter.base_model); m.is_ok()) out.base_model = *m;
  if (out.adapter.job_id.empty()) return out;
  TL_ASSIGN_OR_RETURN(JobRecord j, job_any_tenant(out.adapter.job_id));
  out.job = j;
  if (auto f = file(j.tenant_id, j.training_file); f.is_ok()) out.training_file = *f;
  if (!j.validation_file.empty())
    if (auto f = file(j.tenant_id, j.validation_file); f.is_ok()) out.validation_file = *f;
  TL_ASSIGN_OR_RETURN(out.checkpoints, checkpoints(j.id));
  return out;
}

// ---- usage ----

Status Registry::charge_usage(const std::string& tenant_id, const std::string& job_id, int64_t attempt,
                              const std::string& month, double device_hours) {
  Lock l(mu_);
  return db_
      ->exec("INSERT INTO usage (tenant_id, job_id, attempt, month, device_hours, created_at) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (job_id, attempt) DO NOTHING",
             {tenant_id, job_id, attempt, month, device_hours, unix_now()})
      .status();
}

Result<double> Registry::usage_hours(const std::string& tenant_id, const std::string& month) {
  Lock l(mu_);
  TL_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT COALESCE(SUM(device_hours), 0) FROM usage WHERE tenant_id = ? AND month = ?",
                                            {tenant_id, month}));
  return rows.empty() ? 0.0 : rows[0].f64(0);
}

}  // namespace tl::registry
