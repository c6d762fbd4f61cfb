// `tuneloop generate MODEL_DIR --ids 1,2,3 [--max-tokens N] [--temperature X] [--top-k K] [--top-p P]
// [--seed S]`: prefill + KV-cache decoding. Prints the generated ids as a JSON array on stdout (text
// prompts and streamed text arrive with the tokenizer); timings go to stderr.
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "model/generate.h"

namespace tl::cli {

Status cmd_generate(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--ids", "--prompt", "--chat", "--max-tokens", "--temperature",
                                                    "--top-k", "--top-p", "--seed"},
                                             {}));
  if (args.positionals().size() != 1) return invalid_argument("generate: expected one MODEL_DIR");
  if (args.has("--prompt") || args.has("--chat")) {
    return unimplemented("generate: --prompt/--chat need the tokenizer, which this build does not have yet; use --ids");
  }
  TL_ASSIGN_OR_RETURN(std::string ids_text, args.require("--ids"));
  TL_ASSIGN_OR_RETURN(std::vector<int> ids, parse_id_list("--ids", ids_text));
  GenerateOptions opt;
  TL_ASSIGN_OR_RETURN(long long max_tokens, args.get_int("--max-tokens", 64, 0, 1 << 20));
  TL_ASSIGN_OR_RETURN(double temperature, args.get_double("--temperature", 0.0, 0.0, 100.0));
  TL_ASSIGN_OR_RETURN(long long top_k, args.get_int("--top-k", 0, 0, 1 << 30));
  TL_ASSIGN_OR_RETURN(double top_p, args.get_double("--top-p", 1.0, 1e-6, 1.0));
  TL_ASSIGN_OR_RETURN(long long seed, args.get_int("--seed", 0, 0, INT64_MAX));
  opt.max_tokens = static_cast<int32_t>(max_tokens);
  opt.sampling = {static_cast<float>(temperature), static_cast<int32_t>(top_k), static_cast<float>(top_p),
                  static_cast<uint64_t>(seed)};
  TL_ASSIGN_OR_RETURN(Model model, Model::load(args.positionals()[0]));
  std::vector<int32_t> prompt(ids.begin(), ids.end());
  std::printf("[");
  bool first = true;
  auto r = generate(model, prompt, opt, [&](int32_t id) {
    std::printf(first ? "%d" : ", %d", id);
    std::fflush(stdout);
    first = false;
    return true;
  });
  std::printf("]\n");
  std::fflush(stdout);  // the timing line on stderr must come after the ids, also through pipes
  if (!r.is_ok()) return r.status().with_context("--ids");
  const double decode_n = r->tokens.size() > 1 ? static_cast<double>(r->tokens.size() - 1) : 0.0;
  std::fprintf(stderr, "prefill %zu tokens in %.3fs; decoded %zu tokens at %.1f tokens/s%s\n", prompt.size(),
               r->prefill_seconds, r->tokens.size(), decode_n > 0 ? decode_n / r->decode_seconds : 0.0,
               r->stopped_on_eos ? " (stopped at EOS)" : "");
  return Status::ok();
}

}  // namespace tl::cli
