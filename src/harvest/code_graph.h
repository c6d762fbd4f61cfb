// The code graph: what harvest knows about a repository before it writes a single example.
//
// Nodes are files, functions (methods included), classes, tests, config keys and Markdown doc sections;
// edges are calls, defines, imports, tests, reads_config and documents. Cross-file and cross-domain edges
// are heuristics (names, imports, string literals), so every edge carries a confidence in [0,1] and an
// evidence string saying why it exists. Node ids are dense and 1-based (node(id) is nodes()[id-1]) and
// deterministic for a given repository and options: files are visited in sorted path order.
//
// Usage:
//   tl::harvest::Redactor redactor;
//   TL_ASSIGN_OR_RETURN(tl::harvest::CodeGraph g, tl::harvest::CodeGraph::build("repo", {}, redactor));
//   for (const auto& n : g.nodes()) if (n.kind == tl::harvest::NodeKind::kFunction) ...
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "harvest/language.h"
#include "harvest/redact.h"
#include "harvest/script_docs.h"

namespace tl::harvest {

enum class NodeKind { kFile, kFunction, kClass, kTest, kConfigKey, kDocSection };
enum class EdgeKind { kCalls, kDefines, kImports, kTests, kReadsConfig, kDocuments };
const char* node_kind_name(NodeKind kind);
const char* edge_kind_name(EdgeKind kind);

struct Node {
  int64_t id = 0;
  NodeKind kind = NodeKind::kFile;
  std::string name;            // function/class name; file path; config key leaf; heading text
  std::string qualified_name;  // Class.method; dotted config path; "H1 > H2" heading path
  std::string file;            // repo-relative path, '/'-separated
  Language language = Language::kUnknown;
  int start_line = 0;  // 1-based, inclusive
  int end_line = 0;
  std::string signature;  // functions: the text before the body, whitespace collapsed
  std::string docstring;  // docstring or leading comment, markers stripped
  std::string body;       // full source of the function/class/section (redacted); config: the value
  // Byte range [doc_begin, doc_end) of a docstring statement inside `body` (Python), -1 when none.
  int doc_begin = -1, doc_end = -1;
  std::vector<std::string> params;
  std::vector<std::string> bases;  // classes
  int complexity = 0;              // cyclomatic: 1 + decision points (functions and tests)
  int error_handlers = 0;          // except/catch clauses, Rust `?`, Go `if err != nil`
  bool parse_error = false;        // the node's source contains a tree-sitter ERROR/MISSING node
  int64_t parent = 0;              // defining node: file, or class for methods (0 for files)
  int fan_in = 0;   // distinct functions calling this one (call edges with confidence >= 0.5)
  int fan_out = 0;  // distinct callee names this function calls (resolved or not)
  int loc() const { return end_line >= start_line ? end_line - start_line + 1 : 0; }
};

struct Edge {
  int64_t src = 0;
  int64_t dst = 0;
  EdgeKind kind = EdgeKind::kCalls;
  double confidence = 1.0;
  std::string evidence;
};

struct SkippedFile {
  std::string path;
  std::string reason;  // "binary", "invalid_utf8", "huge", "generated", "symlink_loop", ...
  std::string detail;
};

struct GraphOptions {
  uint64_t max_file_bytes = 1u << 20;  // larger files are skipped as "huge"
  int threads = 0;                     // 0: hardware concurrency
  // Directory names skipped wherever they occur.
  std::vector<std::string> exclude_dirs = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv",
                                           ".tox", ".mypy_cache", "dist", "target", "build"};
  // A file is skipped as parse_error when ERROR nodes cover more than this fraction of its bytes.
  double max_error_fraction = 0.25;
};

struct GraphStats {
  int64_t files_seen = 0;     // files with a known language
  int64_t files_ignored = 0;  // files with an unknown extension (not an error)
  int64_t files_parsed = 0;   // code files parsed
  int64_t files_with_parse_errors = 0;
  int64_t loc = 0;  // lines in parsed code files
  int64_t bytes = 0;
  int64_t calls_total = 0;
  int64_t calls_resolved = 0;
  std::map<std::string, int64_t> loc_by_language;
  double walk_ms = 0, parse_ms = 0, link_ms = 0;
};

// Called as files finish parsing (from worker threads, serialised): files done, files in total.
using FileProgressFn = std::function<void(int64_t done, int64_t total)>;

// A script doc header found while parsing, with the graph node of its file.
struct FileScriptDoc {
  int64_t file_node = 0;
  ScriptDoc doc;
};

class CodeGraph {
 public:
  // Redaction runs per file, then once more for files that mention a username found in another file's
  // home directory (the repo-wide username pass), so "jdoe" is replaced everywhere once /home/jdoe
  // appears anywhere.
  static Result<CodeGraph> build(const std::string& repo, const GraphOptions& options, const Redactor& redactor,
                                 const FileProgressFn& progress = {});

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const std::vector<SkippedFile>& skipped() const { return skipped_; }
  const GraphStats& stats() const { return stats_; }
  const RedactionCounts& redactions() const { return redactions_; }
  const std::string& repo() const { return repo_; }
  const std::vector<FileScriptDoc>& script_docs() const { return script_docs_; }
  // Usernames learned from home directories across the repository (after the repo-wide pass), sorted.
  const std::vector<std::string>& repo_usernames() const { return repo_usernames_; }
  // The function/test node named `qualified_name` in `file`, or 0.
  int64_t find_in_file(const std::string& file, const std::string& qualified_name) const;

  const Node& node(int64_t id) const { return nodes_[static_cast<size_t>(id - 1)]; }
  // Indices into edges() leaving / entering a node.
  const std::vector<size_t>& out_edges(int64_t id) const { return out_[static_cast<size_t>(id - 1)]; }
  const std::vector<size_t>& in_edges(int64_t id) const { return in_[static_cast<size_t>(id - 1)]; }
  // Functions/tests/classes named `name` (unqualified), for tests and tools.
  std::vector<int64_t> find(const std::string& name) const;
  // Number of distinct functions that reach `id` through call edges (confidence >= 0.5), transitively.
  int blast_radius(int64_t id) const;

 private:
  friend class GraphBuilder;
  std::string repo_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<SkippedFile> skipped_;
  std::vector<FileScriptDoc> script_docs_;
  std::vector<std::string> repo_usernames_;
  std::vector<std::vector<size_t>> out_, in_;
  GraphStats stats_;
  RedactionCounts redactions_;
};

}  // namespace tl::harvest
