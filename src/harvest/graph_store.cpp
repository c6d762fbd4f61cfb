// SQLite writer for the code graph. Prepared statements inside one transaction keep a 100k-node graph
// to well under a second; sqlite handles are wrapped in RAII holders so every error path closes them.
#include "harvest/graph_store.h"

#include <sqlite3.h>

#include <cstdio>
#include <map>
#include <memory>

namespace tl::harvest {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,              -- file | function | class | test | config_key | doc_section
  name TEXT NOT NULL,
  qualified_name TEXT NOT NULL,
  file TEXT NOT NULL,
  language TEXT NOT NULL,
  start_line INTEGER NOT NULL,
  end_line INTEGER NOT NULL,
  signature TEXT NOT NULL DEFAULT '',
  docstring TEXT NOT NULL DEFAULT '',
  body TEXT NOT NULL DEFAULT '',
  params TEXT NOT NULL DEFAULT '[]',   -- JSON array of names
  bases TEXT NOT NULL DEFAULT '[]',    -- JSON array of names
  complexity INTEGER NOT NULL DEFAULT 0,
  error_handlers INTEGER NOT NULL DEFAULT 0,
  parse_error INTEGER NOT NULL DEFAULT 0,
  parent_id INTEGER,
  fan_in INTEGER NOT NULL DEFAULT 0,
  fan_out INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE edges (
  src INTEGER NOT NULL REFERENCES nodes(id),
  dst INTEGER NOT NULL REFERENCES nodes(id),
  kind TEXT NOT NULL,              -- calls | defines | imports | tests | reads_config | documents
  confidence REAL NOT NULL,
  evidence TEXT NOT NULL
);
CREATE TABLE skipped_files (path TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE history (
  commit_id TEXT NOT NULL,          -- the commit that changed the function
  parent_id TEXT NOT NULL,          -- the commit it was diffed against
  time INTEGER NOT NULL,            -- committer time, seconds since the epoch
  message TEXT NOT NULL,            -- full commit message (redacted)
  is_fix INTEGER NOT NULL,          -- the message looks like a fix
  file TEXT NOT NULL,
  qualified_name TEXT NOT NULL,
  node_id INTEGER REFERENCES nodes(id),  -- the function in the HEAD graph, NULL if gone
  before_start INTEGER NOT NULL, before_end INTEGER NOT NULL,
  after_start INTEGER NOT NULL, after_end INTEGER NOT NULL,
  before TEXT NOT NULL,             -- the function's source at the parent (redacted)
  after TEXT NOT NULL               -- and at the commit
);
)sql";

constexpr const char* kIndexes = R"sql(
CREATE INDEX nodes_kind_name ON nodes(kind, name);
CREATE INDEX nodes_file ON nodes(file);
CREATE INDEX edges_src ON edges(src, kind);
CREATE INDEX edges_dst ON edges(dst, kind);
CREATE INDEX history_node ON history(node_id);
)sql";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

Status exec(sqlite3* db, const char* sql, const std::string& path) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return io_error("{}: sqlite: {}", path, msg);
  }
  return Status::ok();
}

Result<Stmt> prepare(sqlite3* db, const char* sql, const std::string& path) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    return io_error("{}: sqlite prepare: {}", path, sqlite3_errmsg(db));
  }
  return Stmt(s);
}

std::string json_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : v[i]) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      out += c;
    }
    out += '"';
  }
  return out + "]";
}

void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

}  // namespace

Status write_graph_sqlite(const CodeGraph& graph, const std::string& path, const std::vector<FunctionChange>& history) {
  std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());
  sqlite3* raw = nullptr;
  if (sqlite3_open(tmp.c_str(), &raw) != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close(raw);
    return io_error("{}: cannot create sqlite database: {}", tmp, msg);
  }
  Db db(raw);
  TL_TRY(exec(db.get(), "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;", tmp));
  TL_TRY(exec(db.get(), kSchema, tmp));
  TL_TRY(exec(db.get(), "BEGIN", tmp));
  {
    TL_ASSIGN_OR_RETURN(Stmt meta, prepare(db.get(), "INSERT INTO meta VALUES (?, ?)", tmp));
    for (auto [k, v] : {std::pair<std::string, std::string>{"schema_version", std::to_string(kGraphSchemaVersion)},
                        {"repo", graph.repo()},
                        {"generator", "tuneloop harvest"}}) {
      bind_text(meta.get(), 1, k);
      bind_text(meta.get(), 2, v);
      if (sqlite3_step(meta.get()) != SQLITE_DONE) return io_error("{}: insert meta: {}", tmp, sqlite3_errmsg(db.get()));
      sqlite3_reset(meta.get());
    }
    TL_ASSIGN_OR_RETURN(Stmt ins, prepare(db.get(),
                                          "INSERT INTO nodes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", tmp));
    for (const auto& n : graph.nodes()) {
      sqlite3_stmt* s = ins.get();
      sqlite3_bind_int64(s, 1, n.id);
      bind_text(s, 2, node_kind_name(n.kind));
      bind_text(s, 3, n.name);
      bind_text(s, 4, n.qualified_name);
      bind_text(s, 5, n.file);
      bind_text(s, 6, language_name(n.language));
      sqlite3_bind_int(s, 7, n.start_line);
      sqlite3_bind_int(s, 8, n.end_line);
      bind_text(s, 9, n.signature);
      bind_text(s, 10, n.docstring);
      bind_text(s, 11, n.body);
      bind_text(s, 12, json_array(n.params));
      bind_text(s, 13, json_array(n.bases));
      sqlite3_bind_int(s, 14, n.complexity);
      sqlite3_bind_int(s, 15, n.error_handlers);
      sqlite3_bind_int(s, 16, n.parse_error ? 1 : 0);
      if (n.parent) sqlite3_bind_int64(s, 17, n.parent);
      else sqlite3_bind_null(s, 17);
      sqlite3_bind_int(s, 18, n.fan_in);
      sqlite3_bind_int(s, 19, n.fan_out);
      if (sqlite3_step(s) != SQLITE_DONE) return io_error("{}: insert node {}: {}", tmp, n.id, sqlite3_errmsg(db.get()));
      sqlite3_reset(s);
    }
    TL_ASSIGN_OR_RETURN(Stmt ie, prepare(db.get(), "INSERT INTO edges VALUES (?,?,?,?,?)", tmp));
    for (const auto& e : graph.edges()) {
      sqlite3_stmt* s = ie.get();
      sqlite3_bind_int64(s, 1, e.src);
      sqlite3_bind_int64(s, 2, e.dst);
      bind_text(s, 3, edge_kind_name(e.kind));
      sqlite3_bind_double(s, 4, e.confidence);
      bind_text(s, 5, e.evidence);
      if (sqlite3_step(s) != SQLITE_DONE) return io_error("{}: insert edge: {}", tmp, sqlite3_errmsg(db.get()));
      sqlite3_reset(s);
    }
    TL_ASSIGN_OR_RETURN(Stmt is, prepare(db.get(), "INSERT INTO skipped_files VALUES (?,?,?)", tmp));
    for (const auto& f : graph.skipped()) {
      bind_text(is.get(), 1, f.path);
      bind_text(is.get(), 2, f.reason);
      bind_text(is.get(), 3, f.detail);
      if (sqlite3_step(is.get()) != SQLITE_DONE) return io_error("{}: insert skipped: {}", tmp, sqlite3_errmsg(db.get()));
      sqlite3_reset(is.get());
    }
  }
  {
    std::map<std::pair<std::string, std::string>, int64_t> by_name;
    for (const auto& n : graph.nodes()) {
      if (n.kind == NodeKind::kFunction || n.kind == NodeKind::kTest) by_name.emplace(std::pair{n.file, n.qualified_name}, n.id);
    }
    TL_ASSIGN_OR_RETURN(Stmt ih, prepare(db.get(), "INSERT INTO history VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", tmp));
    for (const auto& c : history) {
      sqlite3_stmt* s = ih.get();
      bind_text(s, 1, c.commit);
      bind_text(s, 2, c.parent);
      sqlite3_bind_int64(s, 3, c.time);
      bind_text(s, 4, c.message);
      sqlite3_bind_int(s, 5, c.is_fix ? 1 : 0);
      bind_text(s, 6, c.file);
      bind_text(s, 7, c.qualified_name);
      auto it = by_name.find({c.file, c.qualified_name});
      if (it != by_name.end()) sqlite3_bind_int64(s, 8, it->second);
      else sqlite3_bind_null(s, 8);
      sqlite3_bind_int(s, 9, c.before_start);
      sqlite3_bind_int(s, 10, c.before_end);
      sqlite3_bind_int(s, 11, c.after_start);
      sqlite3_bind_int(s, 12, c.after_end);
      bind_text(s, 13, c.before);
      bind_text(s, 14, c.after);
      if (sqlite3_step(s) != SQLITE_DONE) return io_error("{}: insert history: {}", tmp, sqlite3_errmsg(db.get()));
      sqlite3_reset(s);
    }
  }
  TL_TRY(exec(db.get(), kIndexes, tmp));
  TL_TRY(exec(db.get(), "COMMIT", tmp));
  db.reset();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return io_error("{}: cannot rename to {}", tmp, path);
  }
  return Status::ok();
}

}  // namespace tl::harvest
