// `tuneloop demo [--dir DIR]`: the main job — the whole loop as far as tuneloop has grown. Today:
// make a small Qwen2-shaped model on the spot (random weights, real HF layout), describe it, and generate
// from it with the KV cache. Later stages (tokenizer, training, evaluation, serving) join as they land.
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "model/generate.h"
#include "model/random_model.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"

namespace tl::cli {

namespace {

ModelConfig demo_config() {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 512;
  c.hidden_size = 128;
  c.intermediate_size = 352;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.max_position_embeddings = 2048;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

}  // namespace

Status cmd_demo(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--dir"}, {}));
  const std::string dir = args.get("--dir").value_or("demo-model");
  std::printf("== tuneloop demo ==\n");
  std::printf("[1/3] model: ");
  if (file_exists(dir + "/config.json") && file_exists(dir + "/model.safetensors")) {
    std::printf("reusing %s\n", dir.c_str());
  } else {
    TL_TRY(write_random_model(dir, demo_config(), 42));
    std::printf("wrote a random-weight Qwen2-shaped model to %s (config.json + model.safetensors)\n", dir.c_str());
  }
  std::printf("[2/3] info:\n");
  TL_TRY(cmd_info({dir}));
  TL_ASSIGN_OR_RETURN(Model model, Model::load(dir));
  const BlasInfo& blas = blas_info();
  std::printf("[3/3] generate (greedy, 32 tokens; kernels %s, BLAS %s core %s, %d threads):\n  prompt ids: [1, 17, 42, 99]\n  output ids: [",
              isa_name(active_isa()), blas.library.c_str(), blas.core.c_str(), blas.threads);
  GenerateOptions opt;
  opt.max_tokens = 32;
  std::vector<int32_t> prompt = {1, 17, 42, 99};
  bool first = true;
  auto r = generate(model, prompt, opt, [&](int32_t id) {
    std::printf(first ? "%d" : ", %d", id);
    std::fflush(stdout);
    first = false;
    return true;
  });
  std::printf("]\n");
  if (!r.is_ok()) return r.status();
  std::printf("  decode: %.1f tokens/s\n", r->tokens.size() > 1
                                             ? static_cast<double>(r->tokens.size() - 1) / r->decode_seconds
                                             : 0.0);
  std::printf("The random weights make the ids meaningless; the tokenizer, trainer and evaluator join this loop "
              "as they land.\n");
  return Status::ok();
}

}  // namespace tl::cli
