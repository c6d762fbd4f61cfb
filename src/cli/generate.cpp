// `tuneloop generate MODEL_DIR (--ids 1,2,3 | --prompt T | --chat FILE.json) [--max-tokens N]
// [--temperature X] [--top-k K] [--top-p P] [--seed S]`: prefill + KV-cache decoding.
// With --prompt/--chat the completion streams to stdout as text while it is generated (partial UTF-8
// held back); with --ids the generated ids print as a JSON array. Timings go to stderr.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/args.h"
#include "cli/chat_input.h"
#include "cli/commands.h"
#include "model/generate.h"

namespace tl::cli {

Status cmd_generate(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--ids", "--prompt", "--chat", "--adapter", "--max-tokens", "--temperature",
                                                    "--top-k", "--top-p", "--seed"},
                                             {}));
  if (args.positionals().size() != 1) return invalid_argument("generate: expected one MODEL_DIR");
  const int inputs = args.has("--ids") + args.has("--prompt") + args.has("--chat");
  if (inputs != 1) return invalid_argument("generate: give exactly one of --ids, --prompt or --chat");
  const std::string dir = args.positionals()[0];
  GenerateOptions opt;
  TL_ASSIGN_OR_RETURN(long long max_tokens, args.get_int("--max-tokens", 64, 0, 1 << 20));
  TL_ASSIGN_OR_RETURN(double temperature, args.get_double("--temperature", 0.0, 0.0, 100.0));
  TL_ASSIGN_OR_RETURN(long long top_k, args.get_int("--top-k", 0, 0, 1 << 30));
  TL_ASSIGN_OR_RETURN(double top_p, args.get_double("--top-p", 1.0, 1e-6, 1.0));
  TL_ASSIGN_OR_RETURN(long long seed, args.get_int("--seed", 0, 0, INT64_MAX));
  opt.max_tokens = static_cast<int32_t>(max_tokens);
  opt.sampling = {static_cast<float>(temperature), static_cast<int32_t>(top_k), static_cast<float>(top_p),
                  static_cast<uint64_t>(seed)};

  std::vector<int32_t> prompt;
  std::optional<Tokenizer> tok;
  if (auto ids_text = args.get("--ids")) {
    TL_ASSIGN_OR_RETURN(std::vector<int> ids, parse_id_list("--ids", *ids_text));
    prompt.assign(ids.begin(), ids.end());
  } else {
    TL_ASSIGN_OR_RETURN(tok, Tokenizer::load(dir));
    if (auto text = args.get("--prompt")) {
      TL_ASSIGN_OR_RETURN(prompt, tok->encode(*text, true));
    } else {
      TL_ASSIGN_OR_RETURN(nlohmann::ordered_json chat, read_chat_file(*args.get("--chat")));
      TL_ASSIGN_OR_RETURN(std::string rendered, render_chat(*tok, chat, true, dir));
      TL_ASSIGN_OR_RETURN(prompt, tok->encode(rendered, false));
    }
  }
  TL_ASSIGN_OR_RETURN(Model model, load_model_for_inference(dir, args.get("--adapter")));
  if (tok) {
    // Stop at the model's EOS ids and at the tokenizer's (chat models end turns with their own token).
    opt.stop_ids = model.config().eos_token_ids;
    if (auto eos = tok->eos_token_id(); eos && std::find(opt.stop_ids.begin(), opt.stop_ids.end(), *eos) == opt.stop_ids.end())
      opt.stop_ids.push_back(*eos);
  }

  // Tokens stream as they come; nothing reaches stdout before the first one, so a prompt the model
  // rejects leaves only the error line.
  bool first = true;
  std::optional<StreamDecoder> stream;
  if (tok) stream.emplace(*tok, /*skip_special_tokens=*/true);
  auto r = generate(model, prompt, opt, [&](int32_t id) {
    if (stream) {
      std::string piece = stream->push(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else {
      std::printf(first ? "[%d" : ", %d", id);
    }
    std::fflush(stdout);
    first = false;
    return true;
  });
  if (stream) {
    std::string rest = stream->finish();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    if (r.is_ok() || !first || !rest.empty()) std::printf("\n");
  } else if (!first) {
    std::printf("]\n");
  } else if (r.is_ok()) {
    std::printf("[]\n");
  }
  std::fflush(stdout);  // the timing line on stderr must come after the output, also through pipes
  if (!r.is_ok()) return r.status().with_context("prompt");
  const double decode_n = r->tokens.size() > 1 ? static_cast<double>(r->tokens.size() - 1) : 0.0;
  std::fprintf(stderr, "prefill %zu tokens in %.3fs; decoded %zu tokens at %.1f tokens/s%s\n", prompt.size(),
               r->prefill_seconds, r->tokens.size(), decode_n > 0 ? decode_n / r->decode_seconds : 0.0,
               r->stopped_on_eos ? " (stopped at EOS)" : "");
  return Status::ok();
}

}  // namespace tl::cli
