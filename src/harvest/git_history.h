// Git history through libgit2: which functions each commit changed, as before/after pairs with the
// commit message — the raw material of `fix` examples (pre-fix → post-fix) and of graph.sqlite's
// `history` table.
//
// Walk: from HEAD, newest first (topological + time order), at most `max_commits` commits. Merge
// commits are skipped (their diff against one parent mixes two histories) and so is the root commit
// (no before). Each remaining commit is diffed against its parent with zero context lines; for every
// modified code file both blobs are redacted and parsed with the same tree-sitter extractor as the
// graph, and a function whose line span overlaps a changed hunk (old side or new side) and exists on
// both sides under the same qualified name with a different body becomes one FunctionChange. Added or
// deleted functions have no pair and are not reported; renames are not followed.
//
// A commit is a fix when its message has a fix word (fix, fixes, fixed, bug, bugfix, hotfix, patch,
// regression, crash, …) as a whole word, case-insensitive ("prefix" and "debugger" are not fixes).
//
// Usage:
//   tl::harvest::HistoryOptions opt;  // max_commits = 500
//   TL_ASSIGN_OR_RETURN(tl::harvest::History h, tl::harvest::read_history("repo", opt, redactor));
//   for (const auto& c : h.changes) if (c.is_fix) ...
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "harvest/language.h"
#include "harvest/redact.h"

namespace tl::harvest {

struct HistoryOptions {
  bool enabled = true;
  int max_commits = 500;               // commits walked from HEAD (merges and the root included)
  uint64_t max_file_bytes = 1u << 20;  // larger blobs are not parsed
};

struct FunctionChange {
  std::string commit;   // 40 hex digits
  std::string parent;   // the commit it was diffed against
  std::string message;  // full message (redacted), trailing whitespace removed
  int64_t time = 0;     // committer time, seconds since the epoch
  bool is_fix = false;
  std::string file;  // repo-relative path at that commit
  Language language = Language::kUnknown;
  std::string name, qualified_name;
  std::string before, after;  // the function's full source at the parent and at the commit (redacted)
  int before_start = 0, before_end = 0;  // 1-based inclusive lines in the parent's file
  int after_start = 0, after_end = 0;    // in the commit's file
};

struct HistoryStats {
  bool is_git_repo = false;
  int64_t commits_walked = 0;
  int64_t merges_skipped = 0;
  int64_t root_commits = 0;
  int64_t fix_commits = 0;
  int64_t files_diffed = 0;       // modified code files whose blobs were parsed
  int64_t files_unparsed = 0;     // binary, too large, invalid UTF-8 or not parseable
  int64_t changes = 0;
  int64_t fix_changes = 0;
  bool truncated = false;  // stopped at max_commits with history left
  double ms = 0;
};

struct History {
  std::vector<FunctionChange> changes;  // newest commit first; within a commit by file, then line
  HistoryStats stats;
};

// Not a git repository (no `.git` at `repo`) → empty history with is_git_repo false; a repository that
// libgit2 cannot read (corrupt objects, unborn HEAD is fine) → an error naming the repository.
Result<History> read_history(const std::string& repo, const HistoryOptions& options, const Redactor& redactor);

bool looks_like_fix(std::string_view message);

}  // namespace tl::harvest
