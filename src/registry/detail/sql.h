// The one SQL interface the registry speaks, with a SQLite and a PostgreSQL implementation.
//
// Statements are written once, in the common subset of both dialects, with `?` placeholders; the
// PostgreSQL connection rewrites them to `$1, $2, …`. Values come back as text (what libpq returns
// anyway), so row decoding is the same code for both backends. Constraint violations map to Status
// codes the registry can turn into clear messages: UNIQUE → kAlreadyExists, FOREIGN KEY →
// kFailedPrecondition.
//
// Internal to the registry module: other modules use registry/registry.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace tl::registry::detail {

using SqlParam = std::variant<std::nullptr_t, int64_t, double, std::string>;
using SqlParams = std::vector<SqlParam>;

struct SqlRow {
  std::vector<std::optional<std::string>> cols;

  bool is_null(size_t i) const { return !cols.at(i).has_value(); }
  std::string text(size_t i) const { return cols.at(i).value_or(""); }
  int64_t i64(size_t i) const;
  double f64(size_t i) const;
};

enum class Dialect { kSqlite, kPostgres };

class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  virtual Dialect dialect() const = 0;
  // Runs one statement; returns the number of rows changed.
  virtual Result<int64_t> exec(const std::string& sql, const SqlParams& params = {}) = 0;
  virtual Result<std::vector<SqlRow>> query(const std::string& sql, const SqlParams& params = {}) = 0;
  // Runs several `;`-separated statements without parameters (migrations).
  virtual Status exec_script(const std::string& sql) = 0;
};

// path: a file name (":memory:" allowed). WAL, foreign keys on, 5 s busy timeout.
Result<std::unique_ptr<SqlConnection>> open_sqlite(const std::string& path);
// url: a libpq connection URI, postgresql://user@host:port/db.
Result<std::unique_ptr<SqlConnection>> open_postgres(const std::string& url);

// `?` → `$n` outside of string literals (PostgreSQL placeholders).
std::string number_placeholders(const std::string& sql);

// Applies the numbered migrations in migrations.cpp that the database has not seen yet, each in its
// own transaction, recording them in schema_migrations.
Status migrate(SqlConnection& db);
// The newest migration number (what a fully migrated database reports).
int latest_migration();

}  // namespace tl::registry::detail
