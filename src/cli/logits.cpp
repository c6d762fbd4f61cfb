// `tuneloop logits MODEL_DIR --ids 1,2,3 --out FILE.safetensors`: the full-sequence logits of one
// sequence, as tensor `logits` (f32, [T, vocab]), written atomically.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace tl::cli {

Status cmd_logits(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--ids", "--out", "--adapter"}, {}));
  if (args.positionals().size() != 1) return invalid_argument("logits: expected one MODEL_DIR");
  TL_ASSIGN_OR_RETURN(std::string ids_text, args.require("--ids"));
  TL_ASSIGN_OR_RETURN(std::string out, args.require("--out"));
  TL_ASSIGN_OR_RETURN(std::vector<int> ids, parse_id_list("--ids", ids_text));
  TL_ASSIGN_OR_RETURN(Model model, load_model_for_inference(args.positionals()[0], args.get("--adapter")));
  KvCache cache(model.config(), static_cast<int64_t>(ids.size()));
  std::vector<float> logits;
  TL_TRY(model.forward(std::vector<int32_t>(ids.begin(), ids.end()), cache, logits, true).with_context("--ids"));
  Tensor t = Tensor::zeros(DType::kF32, {static_cast<int64_t>(ids.size()), model.config().vocab_size});
  std::copy(logits.begin(), logits.end(), t.f32());
  TL_TRY(safetensors::write(out, {{"logits", &t}}, {}));
  std::fprintf(stderr, "wrote logits %s to %s\n", t.shape_string().c_str(), out.c_str());
  return Status::ok();
}

}  // namespace tl::cli
