// The registry schema as numbered migrations, applied in order, each once, each in a transaction.
//
// Rules for adding one: append to kMigrations with the next number; never edit a migration that has
// shipped (databases in the field have already applied it); write SQL in the common subset of SQLite
// and PostgreSQL. `{{SERIAL_PK}}` expands to an auto-incrementing integer primary key in each dialect
// (used where listing order matters: files, jobs, events, usage); every other key is a text id that
// tuneloop generates. Times are Unix seconds (BIGINT), booleans are 0/1 integers.
#include <string>
#include <vector>

#include "registry/detail/sql.h"

namespace tl::registry::detail {
namespace {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

const Migration kMigrations[] = {
    {1, "core schema", R"SQL(
CREATE TABLE tenants (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  tier TEXT NOT NULL CHECK (tier IN ('enterprise', 'pro', 'free')),
  api_key_sha256 TEXT NOT NULL UNIQUE,
  quota_device_hours DOUBLE PRECISION NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE models (
  name TEXT PRIMARY KEY,
  dir TEXT NOT NULL,
  parameter_count BIGINT NOT NULL,
  config_sha256 TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE files (
  seq {{SERIAL_PK}},
  id TEXT NOT NULL UNIQUE,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  filename TEXT NOT NULL,
  purpose TEXT NOT NULL,
  bytes BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  line_count BIGINT NOT NULL,
  format TEXT NOT NULL,
  token_estimate BIGINT NOT NULL,
  path TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE jobs (
  seq {{SERIAL_PK}},
  id TEXT NOT NULL UNIQUE,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  model TEXT NOT NULL REFERENCES models(name),
  training_file TEXT NOT NULL REFERENCES files(id),
  validation_file TEXT REFERENCES files(id),
  suffix TEXT,
  seed BIGINT NOT NULL,
  method TEXT NOT NULL,
  hyperparameters TEXT NOT NULL,
  spec_yaml TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
  tier TEXT NOT NULL,
  error TEXT,
  fine_tuned_model TEXT,
  output_dir TEXT NOT NULL,
  estimated_device_hours DOUBLE PRECISION NOT NULL,
  estimated_cost DOUBLE PRECISION NOT NULL,
  estimated_finish BIGINT NOT NULL,
  memory_mb BIGINT NOT NULL,
  trained_tokens BIGINT,
  device_id TEXT,
  pid BIGINT,
  metrics_offset BIGINT NOT NULL DEFAULT 0,
  attempts BIGINT NOT NULL DEFAULT 0,
  attempt_started_at BIGINT,
  cancel_requested BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  started_at BIGINT,
  finished_at BIGINT,
  updated_at BIGINT NOT NULL
);
CREATE TABLE events (
  seq {{SERIAL_PK}},
  id TEXT NOT NULL UNIQUE,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  created_at BIGINT NOT NULL,
  level TEXT NOT NULL,
  type TEXT NOT NULL,
  message TEXT NOT NULL,
  data TEXT
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL UNIQUE REFERENCES jobs(id),
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  created_at BIGINT NOT NULL
);
CREATE TABLE run_params (
  run_id TEXT NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
  run_id TEXT NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  step BIGINT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, key, step)
);
CREATE TABLE checkpoints (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  step BIGINT NOT NULL,
  path TEXT NOT NULL,
  metrics TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (job_id, step)
);
CREATE TABLE adapters (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  domain TEXT NOT NULL,
  base_model TEXT NOT NULL,
  job_id TEXT REFERENCES jobs(id),
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('draft', 'approved', 'deprecated')),
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE active_adapters (
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  domain TEXT NOT NULL,
  adapter_id TEXT NOT NULL REFERENCES adapters(id),
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, domain)
);
CREATE TABLE adapter_transitions (
  seq {{SERIAL_PK}},
  adapter_id TEXT NOT NULL REFERENCES adapters(id),
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE TABLE usage (
  seq {{SERIAL_PK}},
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  job_id TEXT NOT NULL REFERENCES jobs(id),
  attempt BIGINT NOT NULL,
  month TEXT NOT NULL,
  device_hours DOUBLE PRECISION NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (job_id, attempt)
);
)SQL"},
    {2, "listing indexes", R"SQL(
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, seq);
CREATE INDEX jobs_by_status ON jobs (status);
CREATE INDEX files_by_tenant ON files (tenant_id, seq);
CREATE INDEX events_by_job ON events (job_id, seq);
CREATE INDEX usage_by_tenant_month ON usage (tenant_id, month);
CREATE INDEX adapters_by_tenant ON adapters (tenant_id, created_at);
)SQL"},
};

std::string expand(const std::string& sql, Dialect d) {
  const std::string token = "{{SERIAL_PK}}";
  const std::string repl = d == Dialect::kSqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
  std::string out = sql;
  for (size_t pos; (pos = out.find(token)) != std::string::npos;) out.replace(pos, token.size(), repl);
  return out;
}

}  // namespace

int latest_migration() { return kMigrations[std::size(kMigrations) - 1].version; }

Status migrate(SqlConnection& db) {
  TL_TRY(db.exec_script(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at BIGINT NOT NULL)"));
  TL_ASSIGN_OR_RETURN(auto rows, db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  int64_t current = rows.empty() ? 0 : rows[0].i64(0);
  if (current > latest_migration())
    return failed_precondition("database schema is at migration {}, newer than this tuneloop ({}); upgrade tuneloop",
                               current, latest_migration());
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    TL_TRY(db.exec_script("BEGIN"));
    Status st = db.exec_script(expand(m.sql, db.dialect()));
    if (st.is_ok()) {
      auto r = db.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                       {int64_t{m.version}, std::string(m.name), static_cast<int64_t>(time(nullptr))});
      st = r.status();
    }
    if (!st.is_ok()) {
      (void)db.exec_script("ROLLBACK");
      return st.with_context(fmt::format("migration {} ({})", m.version, m.name));
    }
    TL_TRY(db.exec_script("COMMIT"));
  }
  return Status::ok();
}

}  // namespace tl::registry::detail
