// read_history (see git_history.h): libgit2 revwalk → tree-to-tree diff per commit → tree-sitter on
// both blobs of each modified code file → functions whose span overlaps a hunk, paired by name.
//
// libgit2 handles are C resources: each is held by a unique_ptr with its free function, so every
// early return (a blob that is binary, a lookup that fails) releases what it took. A failure on one
// commit or one file is counted and skipped — only failing to open or walk the repository is an error.
#include "harvest/git_history.h"

#include <git2.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "harvest/detail/extract.h"

#include "core/utf8.h"

namespace tl::harvest {

namespace {

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitFree<T, Free>>;
using RepoPtr = GitPtr<git_repository, git_repository_free>;
using WalkPtr = GitPtr<git_revwalk, git_revwalk_free>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;
using DiffPtr = GitPtr<git_diff, git_diff_free>;
using PatchPtr = GitPtr<git_patch, git_patch_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;

std::string git_message() {
  const git_error* e = git_error_last();
  return e && e->message ? e->message : "unknown libgit2 error";
}

std::string oid_hex(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

void ensure_libgit2() {
  // Initialised once per process and never shut down: harvest may run several times in one process.
  static std::once_flag once;
  std::call_once(once, [] { git_libgit2_init(); });
}

struct Range {
  int begin = 0, end = 0;  // inclusive lines; begin > end means "between end and begin" (a pure insert/delete point)
};

// A hunk side touches a function when it overlaps its lines, or — for a pure insertion/deletion
// point after line p — when p lies inside the function (between its first and last line).
bool touches(const Range& r, int start, int end) {
  if (r.begin <= r.end) return r.begin <= end && r.end >= start;
  int p = r.end;  // change sits between line p and p + 1
  return start <= p && p < end;
}

// Reads and parses one blob; false when it cannot be used (binary, big, invalid UTF-8, no tree).
bool parse_blob(git_repository* repo, const git_oid* id, const std::string& path, Language lang,
                const HistoryOptions& opt, const Redactor& redactor, detail::FileFacts& facts) {
  git_blob* raw = nullptr;
  if (git_blob_lookup(&raw, repo, id) != 0) return false;
  BlobPtr blob(raw);
  if (git_blob_is_binary(blob.get()) || static_cast<uint64_t>(git_blob_rawsize(blob.get())) > opt.max_file_bytes)
    return false;
  std::string_view text(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                        static_cast<size_t>(git_blob_rawsize(blob.get())));
  if (utf8_invalid_at(text) != std::string_view::npos) return false;
  std::string clean = redactor.redact(text, nullptr);
  facts.path = path;
  facts.language = lang;
  facts.is_test_file = detail::is_test_path(path);
  std::string why;
  return detail::extract_code(clean, facts, why);
}

// qualified name → function index, for names defined exactly once (overloads and redefinitions are
// ambiguous and cannot be paired).
std::map<std::string, size_t> unique_functions(const detail::FileFacts& f) {
  std::map<std::string, size_t> out;
  std::set<std::string> dup;
  for (size_t i = 0; i < f.functions.size(); ++i) {
    const auto& fn = f.functions[i];
    if (!out.emplace(fn.qualified_name, i).second) dup.insert(fn.qualified_name);
  }
  for (const auto& d : dup) out.erase(d);
  return out;
}

std::string rstrip(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

}  // namespace

bool looks_like_fix(std::string_view message) {
  static const std::set<std::string> kWords = {"fix",     "fixes",  "fixed",      "fixing",  "fixup",   "bug",
                                               "bugs",    "bugfix", "hotfix",     "patch",   "patched", "regression",
                                               "crash",   "crashes", "segfault",  "broken",  "typo"};
  std::string lower;
  for (char c : message) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("off-by-one") != std::string::npos) return true;
  size_t i = 0;
  while (i < lower.size()) {
    if (!std::isalnum(static_cast<unsigned char>(lower[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < lower.size() && std::isalnum(static_cast<unsigned char>(lower[j]))) ++j;
    if (kWords.count(lower.substr(i, j - i))) return true;
    i = j;
  }
  return false;
}

Result<History> read_history(const std::string& repo_path, const HistoryOptions& opt, const Redactor& redactor) {
  auto t0 = std::chrono::steady_clock::now();
  History h;
  if (!opt.enabled || !std::filesystem::exists(std::filesystem::path(repo_path) / ".git")) return h;
  ensure_libgit2();
  git_repository* raw_repo = nullptr;
  // NO_SEARCH: harvest the directory given, never a repository above it.
  if (git_repository_open_ext(&raw_repo, repo_path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0)
    return io_error("history: cannot open git repository '{}': {}", repo_path, git_message());
  RepoPtr repo(raw_repo);
  h.stats.is_git_repo = true;
  git_revwalk* raw_walk = nullptr;
  if (git_revwalk_new(&raw_walk, repo.get()) != 0)
    return io_error("history: '{}': cannot walk commits: {}", repo_path, git_message());
  WalkPtr walk(raw_walk);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
  int rc = git_revwalk_push_head(walk.get());
  if (rc == GIT_EUNBORNBRANCH || rc == GIT_ENOTFOUND) return h;  // no commits yet
  if (rc != 0) return io_error("history: '{}': cannot read HEAD: {}", repo_path, git_message());

  git_oid oid;
  while (git_revwalk_next(&oid, walk.get()) == 0) {
    if (h.stats.commits_walked >= opt.max_commits) {
      h.stats.truncated = true;
      break;
    }
    ++h.stats.commits_walked;
    git_commit* raw_commit = nullptr;
    if (git_commit_lookup(&raw_commit, repo.get(), &oid) != 0) continue;
    CommitPtr commit(raw_commit);
    unsigned parents = git_commit_parentcount(commit.get());
    if (parents == 0) {
      ++h.stats.root_commits;
      continue;
    }
    if (parents > 1) {
      ++h.stats.merges_skipped;
      continue;
    }
    git_commit* raw_parent = nullptr;
    git_tree *raw_tree = nullptr, *raw_ptree = nullptr;
    if (git_commit_parent(&raw_parent, commit.get(), 0) != 0) continue;
    CommitPtr parent(raw_parent);
    if (git_commit_tree(&raw_tree, commit.get()) != 0) continue;
    TreePtr tree(raw_tree);
    if (git_commit_tree(&raw_ptree, parent.get()) != 0) continue;
    TreePtr ptree(raw_ptree);
    git_diff_options dopt = GIT_DIFF_OPTIONS_INIT;
    dopt.context_lines = 0;
    git_diff* raw_diff = nullptr;
    if (git_diff_tree_to_tree(&raw_diff, repo.get(), ptree.get(), tree.get(), &dopt) != 0) continue;
    DiffPtr diff(raw_diff);

    const char* msg = git_commit_message(commit.get());
    std::string message = rstrip(redactor.redact(msg ? msg : "", nullptr));
    bool is_fix = looks_like_fix(message);
    if (is_fix) ++h.stats.fix_commits;
    std::string commit_id = oid_hex(git_commit_id(commit.get()));
    std::string parent_id = oid_hex(git_commit_id(parent.get()));
    int64_t when = static_cast<int64_t>(git_commit_time(commit.get()));

    size_t n_deltas = git_diff_num_deltas(diff.get());
    for (size_t d = 0; d < n_deltas; ++d) {
      const git_diff_delta* delta = git_diff_get_delta(diff.get(), d);
      if (delta->status != GIT_DELTA_MODIFIED || !delta->new_file.path) continue;
      std::string path = delta->new_file.path;
      Language lang = detect_language(path);
      if (!is_code(lang)) continue;
      git_patch* raw_patch = nullptr;
      if (git_patch_from_diff(&raw_patch, diff.get(), d) != 0 || !raw_patch) continue;
      PatchPtr patch(raw_patch);
      std::vector<Range> old_ranges, new_ranges;
      for (size_t k = 0; k < git_patch_num_hunks(patch.get()); ++k) {
        const git_diff_hunk* hunk = nullptr;
        size_t lines = 0;
        if (git_patch_get_hunk(&hunk, &lines, patch.get(), k) != 0) continue;
        // A side with no lines is a point: git gives the line after which the other side's lines go.
        auto side = [](int start, int count) { return count > 0 ? Range{start, start + count - 1} : Range{start + 1, start}; };
        old_ranges.push_back(side(hunk->old_start, hunk->old_lines));
        new_ranges.push_back(side(hunk->new_start, hunk->new_lines));
      }
      if (old_ranges.empty()) continue;
      detail::FileFacts before, after;
      if (!parse_blob(repo.get(), &delta->old_file.id, path, lang, opt, redactor, before) ||
          !parse_blob(repo.get(), &delta->new_file.id, path, lang, opt, redactor, after)) {
        ++h.stats.files_unparsed;
        continue;
      }
      ++h.stats.files_diffed;
      auto old_fns = unique_functions(before), new_fns = unique_functions(after);
      std::set<std::string> touched;
      for (const auto& [name, i] : old_fns) {
        const auto& fn = before.functions[i];
        for (const auto& r : old_ranges) {
          if (touches(r, fn.start_line, fn.end_line)) touched.insert(name);
        }
      }
      for (const auto& [name, i] : new_fns) {
        const auto& fn = after.functions[i];
        for (const auto& r : new_ranges) {
          if (touches(r, fn.start_line, fn.end_line)) touched.insert(name);
        }
      }
      std::vector<FunctionChange> found;
      for (const auto& name : touched) {
        auto o = old_fns.find(name), n = new_fns.find(name);
        if (o == old_fns.end() || n == new_fns.end()) continue;  // added or deleted: no pair
        const auto& fb = before.functions[o->second];
        const auto& fa = after.functions[n->second];
        if (fa.is_test || fb.body == fa.body) continue;
        FunctionChange c;
        c.commit = commit_id;
        c.parent = parent_id;
        c.message = message;
        c.time = when;
        c.is_fix = is_fix;
        c.file = path;
        c.language = lang;
        c.name = fa.name;
        c.qualified_name = fa.qualified_name;
        c.before = fb.body;
        c.after = fa.body;
        c.before_start = fb.start_line;
        c.before_end = fb.end_line;
        c.after_start = fa.start_line;
        c.after_end = fa.end_line;
        found.push_back(std::move(c));
      }
      std::sort(found.begin(), found.end(),
                [](const FunctionChange& a, const FunctionChange& b) { return a.after_start < b.after_start; });
      for (auto& c : found) {
        ++h.stats.changes;
        if (c.is_fix) ++h.stats.fix_changes;
        h.changes.push_back(std::move(c));
      }
    }
  }
  h.stats.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return h;
}

}  // namespace tl::harvest
