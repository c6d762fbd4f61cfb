// `tuneloop harvest REPO --out DIR [--config FILE] [--records FILE.jsonl ...] [--format F] [--model DIR]
// [--quiet]`: code graph + git history + script doc headers + operational records → anonymised,
// deduplicated training examples. With --model, dedup adds a semantic pass whose embeddings are our
// engine's final hidden states mean-pooled over each function's tokens (the harvest library only sees an
// embedding callback, so it stays independent of model and tokenizer). Writes DIR/graph.sqlite,
// DIR/examples.jsonl (+ train/validation.jsonl), DIR/report.json and, with records, DIR/dpo.jsonl and
// DIR/routing_calibration.json; prints a short human summary on stdout and progress on stderr — a
// redrawn bar on a terminal, a few plain lines otherwise (logs and CI should not fill up with carriage
// returns).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/args.h"
#include "cli/commands.h"
#include "harvest/harvest.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

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

// The embedder behind --model: tokens without special tokens (the pooled vector should describe the
// code, not BOS/EOS), truncated to the first `max_tokens` (a function's head — signature, docstring,
// first statements — is its most distinctive part, and the cost of a forward grows with length), one
// forward through the final norm, the mean over tokens. Text that tokenizes to nothing gets a zero
// vector, which semantic_dedup keeps and never matches. One KV cache is reused across calls; calls are
// sequential (semantic_dedup makes them one at a time).
Result<harvest::EmbedFn> make_model_embedder(const std::string& dir, int max_tokens, bool quiet) {
  TL_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(dir));
  TL_ASSIGN_OR_RETURN(Model model, Model::load(dir));
  const ModelConfig& c = model.config();
  int64_t limit = max_tokens;
  if (c.max_position_embeddings > 0) limit = std::min(limit, c.max_position_embeddings);
  if (!quiet)
    std::fprintf(stderr, "semantic dedup: %s (hidden %lld, %lld layers), first %lld tokens of each function\n",
                 dir.c_str(), static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_layers),
                 static_cast<long long>(limit));
  struct State {
    Tokenizer tok;
    Model model;
    KvCache cache;
    int64_t limit;
    std::vector<float> hidden;
  };
  auto st = std::make_shared<State>(State{std::move(tok), std::move(model), KvCache(c, limit), limit, {}});
  return harvest::EmbedFn([st](const std::string& text) -> Result<std::vector<float>> {
    const int64_t C = st->model.config().hidden_size;
    TL_ASSIGN_OR_RETURN(std::vector<int32_t> ids, st->tok.encode(text, /*add_special_tokens=*/false));
    if (static_cast<int64_t>(ids.size()) > st->limit) ids.resize(static_cast<size_t>(st->limit));
    std::vector<float> pooled(static_cast<size_t>(C), 0.0f);
    if (ids.empty()) return pooled;
    st->cache.clear();
    TL_TRY(st->model.hidden_states(ids, st->cache, st->hidden));
    const int64_t T = static_cast<int64_t>(ids.size());
    std::vector<double> sum(static_cast<size_t>(C), 0.0);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < C; ++i) sum[static_cast<size_t>(i)] += st->hidden[static_cast<size_t>(t * C + i)];
    for (int64_t i = 0; i < C; ++i)
      pooled[static_cast<size_t>(i)] = static_cast<float>(sum[static_cast<size_t>(i)] / static_cast<double>(T));
    return pooled;
  });
}

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
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(rest, {"--out", "--config", "--format", "--model"}, {"--quiet"}));
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
  if (auto model_dir = args.get("--model")) {
    // Loaded before the harvest starts, so a bad directory fails in a second, not after the parse.
    TL_ASSIGN_OR_RETURN(options.dedup.embed,
                        make_model_embedder(*model_dir, options.dedup.embed_max_tokens, args.has("--quiet")));
    options.dedup.embed_model = *model_dir;
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
  std::printf("  examples: %lld (train %lld, validation %lld); %lld redactions\n", static_cast<long long>(s.examples),
              static_cast<long long>(s.examples_train), static_cast<long long>(s.examples_validation),
              static_cast<long long>(s.redactions));
  std::printf("  dedup: removed %lld functions (%lld exact, %lld near", static_cast<long long>(s.dedup_removed),
              static_cast<long long>(s.dedup_exact), static_cast<long long>(s.dedup_near));
  if (s.semantic_enabled) std::printf(", %lld semantic", static_cast<long long>(s.dedup_semantic));
  std::printf(")%s\n", s.semantic_enabled ? "" : "; semantic off (--model DIR)");
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
