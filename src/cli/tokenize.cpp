// `tuneloop tokenize MODEL_DIR (--text T | --chat FILE.json [--add-generation-prompt]) [--render]`:
// token ids as a JSON array, or with --render the rendered chat text exactly, adding nothing. Works on
// a directory that holds only tokenizer files. --text encodes with the tokenizer's special tokens
// (BOS/EOS per its post-processor), as HF's tokenizer(text) does; a rendered chat is encoded without
// them, as apply_chat_template(tokenize=True) does, since the template writes them itself.
#include <cstdio>

#include "cli/args.h"
#include "cli/chat_input.h"
#include "cli/commands.h"

namespace tl::cli {

Status cmd_tokenize(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--text", "--chat"}, {"--add-generation-prompt", "--render"}));
  if (args.positionals().size() != 1) return invalid_argument("tokenize: expected one MODEL_DIR");
  if (args.has("--text") == args.has("--chat")) return invalid_argument("tokenize: give exactly one of --text or --chat");
  if (args.has("--text") && (args.has("--render") || args.has("--add-generation-prompt"))) {
    return invalid_argument("tokenize: --render and --add-generation-prompt go with --chat");
  }
  const std::string dir = args.positionals()[0];
  TL_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(dir));
  std::vector<int32_t> ids;
  if (auto text = args.get("--text")) {
    TL_ASSIGN_OR_RETURN(ids, tok.encode(*text, true));
  } else {
    TL_ASSIGN_OR_RETURN(nlohmann::ordered_json chat, read_chat_file(*args.get("--chat")));
    TL_ASSIGN_OR_RETURN(std::string rendered, render_chat(tok, chat, args.has("--add-generation-prompt"), dir));
    if (args.has("--render")) {
      std::fwrite(rendered.data(), 1, rendered.size(), stdout);
      return Status::ok();
    }
    TL_ASSIGN_OR_RETURN(ids, tok.encode(rendered, false));
  }
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  std::printf("%s]\n", out.c_str());
  return Status::ok();
}

}  // namespace tl::cli
