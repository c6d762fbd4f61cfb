// `tuneloop harvest REPO --out DIR [--config FILE]`: code graph → anonymised, deduplicated training
// examples. Writes DIR/graph.sqlite, DIR/examples.jsonl (+ train/validation.jsonl) and DIR/report.json,
// and prints a short human summary with a progress line on stderr.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "harvest/harvest.h"

namespace tl::cli {

Status cmd_harvest(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--out", "--config", "--format"}, {"--quiet"}));
  if (args.positionals().size() != 1) return invalid_argument("harvest: expected one REPO argument");
  TL_ASSIGN_OR_RETURN(std::string out, args.require("--out"));
  harvest::HarvestOptions options;
  if (auto cfg = args.get("--config")) {
    TL_ASSIGN_OR_RETURN(options, harvest::load_harvest_config(*cfg));
  }
  if (auto fmt_flag = args.get("--format")) {
    if (*fmt_flag != "openai" && *fmt_flag != "sharegpt")
      return invalid_argument("harvest: --format must be openai or sharegpt, got '{}'", *fmt_flag);
    options.format = *fmt_flag;
  }
  bool quiet = args.has("--quiet");
  harvest::ProgressFn progress = [quiet](const char* stage, int64_t done, int64_t total) {
    if (quiet || total <= 0) return;
    int width = 30;
    int filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r%-9s [%s%s] %lld/%lld", stage, std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done >= total) std::fprintf(stderr, "\n");
  };
  TL_ASSIGN_OR_RETURN(harvest::HarvestSummary s, harvest::harvest(args.positionals()[0], out, options, progress));
  std::printf("harvested %s → %s\n", args.positionals()[0].c_str(), out.c_str());
  std::printf("  files: %lld parsed, %lld skipped (reasons in report.json)\n", static_cast<long long>(s.files_parsed),
              static_cast<long long>(s.files_skipped));
  std::printf("  code:  %lld lines, %lld functions, %lld passed the quality gate\n", static_cast<long long>(s.loc),
              static_cast<long long>(s.functions), static_cast<long long>(s.functions_passed_gate));
  std::printf("  examples: %lld (train %lld, validation %lld); dedup removed %lld functions; %lld redactions\n",
              static_cast<long long>(s.examples), static_cast<long long>(s.examples_train),
              static_cast<long long>(s.examples_validation), static_cast<long long>(s.dedup_removed),
              static_cast<long long>(s.redactions));
  for (const auto& [kind, n] : s.examples_by_kind) std::printf("    %-10s %lld\n", kind.c_str(), static_cast<long long>(n));
  double secs = s.parse_graph_ms / 1000.0;
  std::printf("  time: %.2fs parse+graph (%.0f LOC/s), %.2fs total\n", secs,
              secs > 0 ? static_cast<double>(s.loc) / secs : 0.0, s.total_ms / 1000.0);
  return Status::ok();
}

}  // namespace tl::cli
