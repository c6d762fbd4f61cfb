// SqlConnection over SQLite: one connection with a prepared-statement cache (the registry issues the
// same few dozen statements over and over), WAL journaling so readers never block the writer, foreign
// keys enforced, and a busy timeout so a CLI command (`tuneloop tenant add`) can write while the server
// holds the database open.
#include <sqlite3.h>

#include <string>
#include <unordered_map>

#include "registry/detail/sql.h"

namespace tl::registry::detail {
namespace {

class SqliteConnection final : public SqlConnection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Result<int64_t> exec(const std::string& sql, const SqlParams& params) override {
    TL_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, prepare(sql, params));
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) continue;
      if (rc == SQLITE_DONE) break;
      Status st = error(rc, sql);
      sqlite3_reset(stmt);
      return st;
    }
    sqlite3_reset(stmt);
    return static_cast<int64_t>(sqlite3_changes(db_));
  }

  Result<std::vector<SqlRow>> query(const std::string& sql, const SqlParams& params) override {
    TL_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, prepare(sql, params));
    std::vector<SqlRow> rows;
    int ncol = sqlite3_column_count(stmt);
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        Status st = error(rc, sql);
        sqlite3_reset(stmt);
        return st;
      }
      SqlRow row;
      row.cols.resize(static_cast<size_t>(ncol));
      for (int i = 0; i < ncol; ++i) {
        if (sqlite3_column_type(stmt, i) == SQLITE_NULL) continue;
        const unsigned char* t = sqlite3_column_text(stmt, i);
        row.cols[static_cast<size_t>(i)] =
            std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(stmt, i)));
      }
      rows.push_back(std::move(row));
    }
    sqlite3_reset(stmt);
    return rows;
  }

  Status exec_script(const std::string& sql) override {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      std::string m = msg ? msg : sqlite3_errstr(rc);
      sqlite3_free(msg);
      return internal_error("sqlite: {}", m);
    }
    return Status::ok();
  }

 private:
  Result<sqlite3_stmt*> prepare(const std::string& sql, const SqlParams& params) {
    sqlite3_stmt* stmt = nullptr;
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      stmt = it->second;
      sqlite3_clear_bindings(stmt);
    } else {
      int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
      if (rc != SQLITE_OK) return internal_error("sqlite: preparing `{}`: {}", sql, sqlite3_errmsg(db_));
      cache_.emplace(sql, stmt);
    }
    for (size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      const SqlParam& p = params[i];
      int rc = SQLITE_OK;
      if (std::holds_alternative<std::nullptr_t>(p)) rc = sqlite3_bind_null(stmt, idx);
      else if (auto* v = std::get_if<int64_t>(&p)) rc = sqlite3_bind_int64(stmt, idx, *v);
      else if (auto* d = std::get_if<double>(&p)) rc = sqlite3_bind_double(stmt, idx, *d);
      else {
        const auto& s = std::get<std::string>(p);
        rc = sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return internal_error("sqlite: binding parameter {} of `{}`: {}", idx, sql, sqlite3_errmsg(db_));
    }
    return stmt;
  }

  Status error(int rc, const std::string& sql) {
    int ext = sqlite3_extended_errcode(db_);
    std::string msg = sqlite3_errmsg(db_);
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
      return already_exists("sqlite: {}", msg);
    if (ext == SQLITE_CONSTRAINT_FOREIGNKEY) return failed_precondition("sqlite: {}", msg);
    if (rc == SQLITE_BUSY) return internal_error("sqlite: database is busy (another process holds a write lock)");
    return internal_error("sqlite: `{}`: {}", sql, msg);
  }

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> open_sqlite(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return io_error("{}: cannot open SQLite database: {}", path, msg);
  }
  auto conn = std::make_unique<SqliteConnection>(db);
  sqlite3_busy_timeout(db, 5000);
  // WAL: readers and one writer proceed concurrently; NORMAL sync is durable across process crashes
  // (kill -9), which is the failure the control plane promises to survive.
  TL_TRY(conn->exec_script("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
             .with_context(path));
  return std::unique_ptr<SqlConnection>(std::move(conn));
}

}  // namespace tl::registry::detail
