// SqlConnection over libpq: text-format parameters and results (so decoding matches SQLite's), `?`
// placeholders rewritten to `$n` once per distinct statement, and SQLSTATE classes mapped to Status
// codes (23505 unique_violation → kAlreadyExists, 23503 foreign_key_violation → kFailedPrecondition).
// A dropped connection is reset once per statement before giving up.
#include <libpq-fe.h>

#include <string>
#include <unordered_map>

#include "registry/detail/sql.h"

namespace tl::registry::detail {
namespace {

class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(PGconn* conn) : conn_(conn) {}
  ~PostgresConnection() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::kPostgres; }

  Result<int64_t> exec(const std::string& sql, const SqlParams& params) override {
    TL_ASSIGN_OR_RETURN(Res res, run(sql, params));
    const char* n = PQcmdTuples(res.get());
    return static_cast<int64_t>(n && *n ? std::stoll(n) : 0);
  }

  Result<std::vector<SqlRow>> query(const std::string& sql, const SqlParams& params) override {
    TL_ASSIGN_OR_RETURN(Res res, run(sql, params));
    std::vector<SqlRow> rows;
    int nrow = PQntuples(res.get()), ncol = PQnfields(res.get());
    rows.reserve(static_cast<size_t>(nrow));
    for (int r = 0; r < nrow; ++r) {
      SqlRow row;
      row.cols.resize(static_cast<size_t>(ncol));
      for (int c = 0; c < ncol; ++c) {
        if (PQgetisnull(res.get(), r, c)) continue;
        row.cols[static_cast<size_t>(c)] =
            std::string(PQgetvalue(res.get(), r, c), static_cast<size_t>(PQgetlength(res.get(), r, c)));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  Status exec_script(const std::string& sql) override {
    Res res(PQexec(conn_, sql.c_str()), &PQclear);
    return check(res, sql);
  }

 private:
  using Res = std::unique_ptr<PGresult, void (*)(PGresult*)>;

  Result<Res> run(const std::string& sql, const SqlParams& params) {
    auto it = rewritten_.find(sql);
    if (it == rewritten_.end()) it = rewritten_.emplace(sql, number_placeholders(sql)).first;
    std::vector<std::string> text(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      const SqlParam& p = params[i];
      if (std::holds_alternative<std::nullptr_t>(p)) continue;
      if (auto* v = std::get_if<int64_t>(&p)) text[i] = std::to_string(*v);
      else if (auto* d = std::get_if<double>(&p)) text[i] = fmt::format("{:.17g}", *d);
      else text[i] = std::get<std::string>(p);
      values[i] = text[i].c_str();
    }
    for (int attempt = 0;; ++attempt) {
      Res res(PQexecParams(conn_, it->second.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                           nullptr, nullptr, 0),
              &PQclear);
      if (PQstatus(conn_) == CONNECTION_BAD && attempt == 0) {
        PQreset(conn_);  // server restarted or the socket dropped: one reconnect, then report
        continue;
      }
      TL_TRY(check(res, sql));
      return res;
    }
  }

  Status check(const Res& res, const std::string& sql) {
    ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::ok();
    const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::string code = state ? state : "";
    if (code == "23505") return already_exists("postgresql: {}", msg);
    if (code == "23503") return failed_precondition("postgresql: {}", msg);
    return internal_error("postgresql: `{}`: {}", sql.substr(0, 200), msg);
  }

  PGconn* conn_;
  std::unordered_map<std::string, std::string> rewritten_;
};

}  // namespace

Result<std::unique_ptr<SqlConnection>> open_postgres(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    std::string msg = conn ? PQerrorMessage(conn) : "out of memory";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    PQfinish(conn);
    return io_error("{}: cannot connect to PostgreSQL: {}", url, msg);
  }
  auto c = std::make_unique<PostgresConnection>(conn);
  // Registry statements never depend on notices; keep them off stderr (CREATE IF NOT EXISTS chatter).
  TL_TRY(c->exec_script("SET client_min_messages TO WARNING"));
  return std::unique_ptr<SqlConnection>(std::move(c));
}

}  // namespace tl::registry::detail
