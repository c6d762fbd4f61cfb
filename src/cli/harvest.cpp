// `tuneloop harvest REPO --out DIR [--config FILE] [--records FILE.jsonl ...] [--format F] [--quiet]`:
// code graph + git history + script doc headers + operational records → anonymised, deduplicated
// training examples. Writes DIR/graph.sqlite, DIR/examples.jsonl (+ train/validation.jsonl),
// DIR/report.json and, with records, DIR/dpo.jsonl and DIR/routing_calibration.json; prints a short
// human summary on stdout and progress on stderr — a redrawn bar on a terminal, a few plain lines
// otherwise (logs and CI should not fill up with carriage returns).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/commands.h"
#include "harvest/harvest.h"

namespace tl::cli {

namespace {

// Per-stage progress. On a TTY: one line redrawn in place. Otherwise: a line at every 10% step of a
// stage with many items, and one when a stage finishes.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stderr)) == 1) {}

  void update(const char* stage, int64_t done, int64_t total) {
    if (quiet_ || total <= 0) return;
    if (stage_ != stage) {
      if (tty_ && !stage_.empty() && !finished_) std::fprintf(stderr, "\n");
      stage_ = stage;
      last_decile_ = -1;
      finished_ = false;
    }
    if (finished_) return;
    int decile = static_cast<int>(10 * done / total);
    if (tty_) {
      const int width = 30;
      int filled = static_cast<int>(width * done / total);
      std::fprintf(stderr, "\r%-9s [%s%s] %lld/%lld", stage, std::string(static_cast<size_t>(filled), '#').c_str(),
                   std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done >= total) std::fprintf(stderr, "\n");
    } else if (done >= total || (total >= 20 && decile > last_decile_)) {
      std::fprintf(stderr, "%s: %lld/%lld\n", stage, static_cast<long long>(done), static_cast<long long>(total));
      last_decile_ = decile;
    }
    finished_ = done >= total;
  }

 private:
  bool quiet_;
  bool tty_;
  std::string stage_;
  int last_decile_ = -1;
  bool finished_ = false;
};

}  // namespace

Status cmd_harvest(const Argv& argv) {
  // --records takes one or more files (up to the next flag) and may repeat; Args keeps one value per
  // flag, so the records are taken out first.
  Argv rest;
  std::vector<std::string> records;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] != "--records") {
      rest.push_back(argv[i]);
      continue;
    }
    size_t before = records.size();
    while (i + 1 < argv.size() && !argv[i + 1].starts_with("--")) records.push_back(argv[++i]);
    if (records.size() == before) return invalid_argument("harvest: --records needs at least one FILE.jsonl");
  }
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(rest, {"--out", "--config", "--format"}, {"--quiet"}));
  std::vector<std::string> positionals = args.positionals();
  // `harvest --records r.jsonl REPO --out D`: the repository directory was read as a records file.
  if (positionals.empty() && !records.empty() && std::filesystem::is_directory(records.back())) {
    positionals.push_back(records.back());
    records.pop_back();
  }
  if (positionals.size() != 1) return invalid_argument("harvest: expected one REPO argument");
  TL_ASSIGN_OR_RETURN(std::string out, args.require("--out"));
  harvest::HarvestOptions options;
  if (auto cfg = args.get("--config")) {
    TL_ASSIGN_OR_RETURN(options, harvest::load_harvest_config(*cfg));
  }
  for (auto& r : records) options.records.push_back(std::move(r));
  if (auto fmt_flag = args.get("--format")) {
    if (*fmt_flag != "openai" && *fmt_flag != "sharegpt")
      return invalid_argument("harvest: --format must be openai or sharegpt, got '{}'", *fmt_flag);
    options.format = *fmt_flag;
  }
  Progress bar(args.has("--quiet"));
  harvest::ProgressFn progress = [&bar](const char* stage, int64_t done, int64_t total) {
    bar.update(stage, done, total);
  };
  TL_ASSIGN_OR_RETURN(harvest::HarvestSummary s, harvest::harvest(positionals[0], out, options, progress));
  std::printf("harvested %s → %s\n", positionals[0].c_str(), out.c_str());
  std::printf("  files: %lld parsed, %lld skipped (reasons in report.json)\n", static_cast<long long>(s.files_parsed),
              static_cast<long long>(s.files_skipped));
  std::printf("  code:  %lld lines, %lld functions, %lld passed the quality gate; %lld commits read\n",
              static_cast<long long>(s.loc), static_cast<long long>(s.functions),
              static_cast<long long>(s.functions_passed_gate), static_cast<long long>(s.commits));
  std::printf("  examples: %lld (train %lld, validation %lld); dedup removed %lld functions; %lld redactions\n",
              static_cast<long long>(s.examples), static_cast<long long>(s.examples_train),
              static_cast<long long>(s.examples_validation), static_cast<long long>(s.dedup_removed),
              static_cast<long long>(s.redactions));
  for (const auto& [kind, n] : s.examples_by_kind) std::printf("    %-13s %lld\n", kind.c_str(), static_cast<long long>(n));
  if (!options.records.empty())
    std::printf("  records: %lld DPO pairs; %lld bad line(s) skipped (file, line and reason in report.json)\n",
                static_cast<long long>(s.dpo_pairs), static_cast<long long>(s.record_lines_skipped));
  if (options.teacher.enabled())
    std::printf("  teacher: %lld rewritten (%lld from cache), %lld fell back, %lld over budget, %lld tokens\n",
                static_cast<long long>(s.teacher.rewritten), static_cast<long long>(s.teacher.cache_hits),
                static_cast<long long>(s.teacher.failures), static_cast<long long>(s.teacher.budget_skipped),
                static_cast<long long>(s.teacher.tokens_used));
  double secs = s.parse_graph_ms / 1000.0;
  std::printf("  time: %.2fs parse+graph (%.0f LOC/s), %.2fs total\n", secs,
              secs > 0 ? static_cast<double>(s.loc) / secs : 0.0, s.total_ms / 1000.0);
  return Status::ok();
}

}  // namespace tl::cli
