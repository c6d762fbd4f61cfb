// `tuneloop calibrate [--devices FILE] [--model DIR] [--out FILE] [--kind K] [--steps N] [--seq-len N]`:
// measures this machine's training throughput and writes it into the calibration table the preflight
// estimate reads (format in jobs/devices.h and docs/control_plane.md).
//
// It times N LoRA training steps (forward + backward with gradient checkpointing, all seven projections
// adapted, r 16) of one sequence of --seq-len tokens through tl::forward_backward — the trainer's own
// step — after one untimed warm-up step, and converts tokens/s to sustained FLOP/s with the estimator's
// FLOPs-per-token formula for that model, so the figure applies to other model sizes too. Without
// --model it measures a random Qwen2-shaped model (~5 M parameters) written to a temp directory.
// The kind is --kind, else the first device's kind in --devices, else `cpu`; the table is --out, else
// tuneloop-data/calibration.yaml (what `tuneloop server` reads by default). Other kinds in it are kept.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

#include "cli/args.h"
#include "cli/commands.h"
#include "jobs/devices.h"
#include "jobs/estimate.h"
#include "model/lora.h"
#include "model/random_model.h"
#include "model/train_step.h"

namespace tl::cli {
namespace fs = std::filesystem;

Status cmd_calibrate(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--devices", "--model", "--out", "--kind", "--steps", "--seq-len"}, {}));
  if (!args.positionals().empty()) return invalid_argument("calibrate: unexpected argument '{}'", args.positionals()[0]);
  TL_ASSIGN_OR_RETURN(long long steps, args.get_int("--steps", 3, 1, 1000));
  TL_ASSIGN_OR_RETURN(long long seq_len, args.get_int("--seq-len", 256, 8, 1 << 16));
  std::string kind = args.get("--kind").value_or("");
  if (kind.empty() && args.get("--devices")) {
    TL_ASSIGN_OR_RETURN(jobs::DevicePool pool, jobs::load_device_pool(*args.get("--devices")));
    kind = pool.devices.front().kind;  // load_device_pool refuses a file without devices
  }
  if (kind.empty()) kind = "cpu";
  const std::string out = args.get("--out").value_or("tuneloop-data/calibration.yaml");

  // The model: the given one, or a random one in a temp directory removed afterwards.
  std::string model_dir = args.get("--model").value_or("");
  std::string temp;
  if (model_dir.empty()) {
    temp = (fs::temp_directory_path() / ("tl_calibrate_" + std::to_string(getpid()))).string();
    ModelConfig c;
    c.model_type = "qwen2";
    c.vocab_size = 8192;
    c.hidden_size = 256;
    c.intermediate_size = 768;
    c.num_layers = 4;
    c.num_heads = 8;
    c.num_kv_heads = 4;
    c.head_dim = 32;
    c.max_position_embeddings = 4096;
    c.tie_word_embeddings = true;
    c.qkv_bias = true;
    TL_TRY(write_random_model(temp, c, 1));
    model_dir = temp;
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } cleanup{temp};
  TL_ASSIGN_OR_RETURN(jobs::ModelShape shape, jobs::read_model_shape(model_dir));
  TL_ASSIGN_OR_RETURN(Model model, Model::load(model_dir));
  const ModelConfig& mc = model.config();
  const int64_t t_len = std::min<int64_t>(seq_len, mc.max_position_embeddings > 0 ? mc.max_position_embeddings : seq_len);

  LoraConfig lcfg;
  lcfg.r = 16;
  lcfg.alpha = 32;
  for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    TL_ASSIGN_OR_RETURN(LoraTarget t, lora_target_from_name(name));
    lcfg.targets.push_back(t);
  }
  TL_ASSIGN_OR_RETURN(LoraWeights lora, lora_init(mc, lcfg, 1));
  LoraWeights grads = lora.zeros_like();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(mc.vocab_size - 1));
  std::vector<int32_t> ids(static_cast<size_t>(t_len)), targets(static_cast<size_t>(t_len));
  for (auto& v : ids) v = tok(rng);
  for (size_t i = 0; i < ids.size(); ++i) targets[i] = i + 1 < ids.size() ? ids[i + 1] : -1;
  const TrainSequence seq = TrainSequence::single(ids, targets);
  TrainOptions topt;
  topt.gradient_checkpointing = true;
  const float scale = 1.0f / static_cast<float>(t_len);

  using clk = std::chrono::steady_clock;
  TL_ASSIGN_OR_RETURN(StepStats warm, forward_backward(model, {&lora, &lcfg}, &grads, nullptr, seq, scale, topt));
  (void)warm;
  const auto t0 = clk::now();
  for (long long s = 0; s < steps; ++s) {
    TL_ASSIGN_OR_RETURN(StepStats st, forward_backward(model, {&lora, &lcfg}, &grads, nullptr, seq, scale, topt));
    (void)st;
  }
  const double secs = std::max(1e-9, std::chrono::duration<double>(clk::now() - t0).count());
  const double tokens_per_s = static_cast<double>(t_len * steps) / secs;

  jobs::JobSpec spec;  // what was measured, in the estimator's terms
  spec.method = "lora";
  spec.training.gradient_checkpointing = true;
  jobs::CalibrationEntry e;
  e.tokens_per_second = tokens_per_s;
  e.flops_per_second = tokens_per_s * jobs::flops_per_token(shape, spec);
  e.model = temp.empty() ? fs::absolute(model_dir).string() : "random:qwen2-h256-l4-v8192";
  e.parameters = shape.parameters;
  e.method = "lora";
  e.gradient_checkpointing = true;
  e.seq_len = t_len;
  e.steps = steps;
  char when[32];
  std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  e.measured_at = when;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) e.host = host;
  TL_TRY(jobs::write_calibration_entry(out, kind, e));
  std::printf("calibrated %s: %.1f tokens/s, %.3g FLOP/s (lora, %lld steps of %lld tokens on %lld parameters) -> %s\n", kind.c_str(),
              tokens_per_s, e.flops_per_second, steps, static_cast<long long>(t_len), static_cast<long long>(shape.parameters),
              out.c_str());
  return Status::ok();
}

}  // namespace tl::cli
