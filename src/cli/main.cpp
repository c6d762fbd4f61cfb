// tuneloop: the one binary. Dispatches to a subcommand; every failure ends as one `error: …` line on
// stderr and a non-zero exit code derived from the Status code.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "core/env.h"

namespace {

struct CommandEntry {
  const char* name;
  const char* usage;
  tl::Status (*run)(const tl::cli::Argv&);
};

const CommandEntry kCommands[] = {
    {"info", "info MODEL_DIR [--json]", tl::cli::cmd_info},
    {"tokenize", "tokenize MODEL_DIR (--text T | --chat FILE.json [--add-generation-prompt]) [--render]",
     tl::cli::cmd_tokenize},
    {"logits", "logits MODEL_DIR --ids 1,2,3 [--adapter DIR] --out FILE.safetensors", tl::cli::cmd_logits},
    {"generate",
     "generate MODEL_DIR [--adapter DIR] (--ids 1,2,3 | --prompt T | --chat FILE.json) [--max-tokens N] [--temperature X] "
     "[--top-k K] [--top-p P] [--seed S]",
     tl::cli::cmd_generate},
    {"train", "train SPEC.yaml [--resume]", tl::cli::cmd_train},
    {"loss", "loss MODEL_DIR [--adapter DIR] --data FILE.jsonl [--format F] [--max-seq-len N] [--beta B] [--dpo-loss L] [--reference DIR] [--json]",
     tl::cli::cmd_loss},
    {"merge", "merge MODEL_DIR --adapter DIR --out DIR", tl::cli::cmd_merge},
    {"quantize", "quantize MODEL_DIR --type nf4 [--no-double-quant] --out DIR", tl::cli::cmd_quantize},
    {"demo", "demo [--dir DIR]", tl::cli::cmd_demo},
    {"harvest", "harvest REPO --out DIR [--config FILE] [--records FILE.jsonl ...] [--model DIR] [--format openai|sharegpt] [--quiet]", tl::cli::cmd_harvest},
    {"server", "server [--db URL] [--port N] [--host H] [--devices FILE] [--data-dir DIR] [--trainer PATH] [--threads N]",
     tl::cli::cmd_server},
    {"tenant", "tenant add NAME --tier enterprise|pro|free [--quota-hours H] [--db URL]", tl::cli::cmd_tenant},
    {"model", "model add NAME MODEL_DIR [--db URL]", tl::cli::cmd_model},
    {"lineage", "lineage ADAPTER [--db URL] [--json]", tl::cli::cmd_lineage},
    {"calibrate", "calibrate [--devices FILE] [--model DIR] [--out FILE] [--kind K] [--steps N] [--seq-len N]", tl::cli::cmd_calibrate},
};

void print_usage(FILE* out) {
  std::fprintf(out, "usage: tuneloop COMMAND [ARGS]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  tuneloop %s\n", c.usage);
}

}  // namespace

int main(int argc, char** argv) {
  tl::ensure_openmp_defaults(argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    tl::cli::Argv rest(argv + 2, argv + argc);
    for (const auto& a : rest) {
      if (a == "--help" || a == "-h") {
        std::printf("usage: tuneloop %s\n", c.usage);
        return 0;
      }
    }
    tl::Status st = c.run(rest);
    if (!st.is_ok()) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return st.exit_code();
    }
    return 0;
  }
  std::fprintf(stderr, "error: unknown command '%s' (run `tuneloop --help`)\n", argv[1]);
  return 2;
}
