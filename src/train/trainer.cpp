#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include "core/env.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "model/peft.h"
#include "model/random_model.h"
#include "model/save.h"
#include "model/train_step.h"
#include "tokenizer/tokenizer.h"
#include "train/dataset.h"
#include "train/dpo.h"
#include "train/optimizer.h"

namespace tl {

namespace {

namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

// One trainable tensor with its gradient and AdamW moments.
struct Param {
  std::string name;
  Tensor* value;
  Tensor* grad;
  Tensor m, v;
  bool decay;
};

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string step_dir_name(int64_t step) { return fmt::format("step-{:08d}", step); }

// Checkpoints: output_dir/checkpoints/step-N/{params.safetensors, optimizer.safetensors, state.json}.
Status save_checkpoint(const std::string& root, int64_t step, const std::vector<Param>& params,
                       const nlohmann::json& state, int64_t keep) {
  const fs::path dir = fs::path(root) / step_dir_name(step);
  const fs::path tmp = fs::path(root) / (step_dir_name(step) + ".tmp");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return io_error("{}: cannot create checkpoint directory: {}", tmp.string(), ec.message());
  std::vector<std::pair<std::string, const Tensor*>> values, moments;
  for (const Param& p : params) {
    values.emplace_back(p.name, p.value);
    moments.emplace_back("m." + p.name, &p.m);
    moments.emplace_back("v." + p.name, &p.v);
  }
  TL_TRY(safetensors::write((tmp / "params.safetensors").string(), values, {}));
  TL_TRY(safetensors::write((tmp / "optimizer.safetensors").string(), moments, {}));
  TL_TRY(write_file_atomic((tmp / "state.json").string(), state.dump(2)));
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) return io_error("{}: cannot rename checkpoint into place: {}", dir.string(), ec.message());
  // Keep the newest `keep` complete checkpoints.
  std::vector<std::string> all;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0 &&
        e.path().extension().string() != ".tmp")
      all.push_back(e.path().string());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove_all(all[i], ec);
  return Status::ok();
}

Result<std::string> latest_checkpoint(const std::string& root) {
  std::error_code ec;
  std::string best;
  if (!fs::is_directory(root, ec)) return std::string();
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step-", 0) == 0 && name.find(".tmp") == std::string::npos &&
        file_exists((e.path() / "state.json").string()))
      best = std::max(best, e.path().string());
  }
  return best;
}

Status load_checkpoint(const std::string& dir, std::vector<Param>& params, nlohmann::json* state) {
  TL_ASSIGN_OR_RETURN(safetensors::File values, safetensors::File::open(dir + "/params.safetensors"));
  TL_ASSIGN_OR_RETURN(safetensors::File moments, safetensors::File::open(dir + "/optimizer.safetensors"));
  for (Param& p : params) {
    TL_ASSIGN_OR_RETURN(Tensor v, values.tensor(p.name));
    TL_ASSIGN_OR_RETURN(Tensor m1, moments.tensor("m." + p.name));
    TL_ASSIGN_OR_RETURN(Tensor m2, moments.tensor("v." + p.name));
    if (v.shape() != p.value->shape())
      return data_loss("{}: checkpoint tensor '{}' has shape {}, expected {}", dir, p.name, v.shape_string(),
                       p.value->shape_string());
    std::memcpy(p.value->f32(), v.data(), v.nbytes());
    std::memcpy(p.m.f32(), m1.data(), m1.nbytes());
    std::memcpy(p.v.f32(), m2.data(), m2.nbytes());
  }
  TL_ASSIGN_OR_RETURN(std::string text, read_file(dir + "/state.json"));
  *state = nlohmann::json::parse(text, nullptr, false);
  if (state->is_discarded()) return data_loss("{}/state.json: not valid JSON", dir);
  return Status::ok();
}

// A progress line: a bar on a terminal (redrawn in place), plain lines otherwise.
class Progress {
 public:
  Progress(int64_t total) : total_(total), tty_(isatty(STDERR_FILENO)), start_(clk::now()) {}
  void update(int64_t step, double loss, double lr, double tps) {
    const double elapsed = std::chrono::duration<double>(clk::now() - start_).count();
    const double per_step = elapsed / static_cast<double>(std::max<int64_t>(1, step - first_ + 1));
    const int64_t eta = static_cast<int64_t>(per_step * static_cast<double>(total_ - step));
    if (tty_) {
      const int width = 30;
      const int filled = static_cast<int>(width * step / std::max<int64_t>(1, total_));
      std::string bar(static_cast<size_t>(filled), '=');
      if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
      std::fprintf(stderr, "\r[%s] %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %lldm%02llds ", bar.c_str(),
                   static_cast<long long>(step), static_cast<long long>(total_), loss, lr, tps,
                   static_cast<long long>(eta / 60), static_cast<long long>(eta % 60));
      if (step == total_) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "step %lld/%lld loss %.4f lr %.3e tokens/s %.0f eta %llds\n", static_cast<long long>(step),
                   static_cast<long long>(total_), loss, lr, tps, static_cast<long long>(eta));
    }
    std::fflush(stderr);
  }
  void set_first(int64_t step) { first_ = step; }

 private:
  int64_t total_;
  bool tty_;
  clk::time_point start_;
  int64_t first_ = 1;
};

double mean_loss(const Model& model, LoraRef lora, const std::vector<TrainSequence>& seqs) {
  double sum = 0;
  int64_t n = 0;
  for (const auto& s : seqs) {
    auto r = sequence_loss(model, lora, s);
    if (!r.is_ok()) continue;
    sum += r->loss_sum;
    n += r->tokens;
  }
  return n ? sum / static_cast<double>(n) : 0.0;
}

// The directories a run creates for its output_dir (the missing ones from the top down), removed again,
// deepest first, if the run leaves them empty: a run that fails before writing anything leaves no trace.
class CreatedDirs {
 public:
  explicit CreatedDirs(const std::string& dir) {
    for (fs::path p = fs::absolute(dir); !p.empty() && !fs::exists(p); p = p.parent_path()) {
      created_.push_back(p);
      if (p == p.parent_path()) break;
    }
  }
  ~CreatedDirs() {
    std::error_code ec;
    for (const fs::path& p : created_)
      if (!fs::is_empty(p, ec) || ec || !fs::remove(p, ec)) break;
  }
  CreatedDirs(const CreatedDirs&) = delete;
  CreatedDirs& operator=(const CreatedDirs&) = delete;

 private:
  std::vector<fs::path> created_;  // deepest first
};

void write_dpo_metrics(const DpoTotals& t, nlohmann::ordered_json& line) {
  line["rewards_chosen"] = t.mean(t.reward_chosen);
  line["rewards_rejected"] = t.mean(t.reward_rejected);
  line["reward_margin"] = t.mean(t.reward_chosen - t.reward_rejected);
  line["reward_accuracy"] = t.mean(t.reward_correct);
}

bool is_no_decay(const std::string& name) {
  return name.find("norm") != std::string::npos || name.find("bias") != std::string::npos;
}

}  // namespace

Result<TrainResult> run_training(const TrainSpec& spec, bool resume) {
  const bool is_dpo = spec.method == TrainMethod::kDpo;
  TL_ASSIGN_OR_RETURN(const DpoLossType dpo_type, dpo_loss_from_name(spec.dpo_loss));
  if (spec.init_random && spec.method != TrainMethod::kFull) return invalid_argument("init: random needs method: full");
  std::error_code ec;
  const CreatedDirs created(spec.output_dir);
  fs::create_directories(spec.output_dir, ec);
  if (ec) return io_error("{}: cannot create output_dir: {}", spec.output_dir, ec.message());
  // Created by the first checkpoint, so a run that fails before one leaves no empty checkpoints/.
  const std::string ckpt_root = spec.output_dir + "/checkpoints";

  // Model and tokenizer.
  TL_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(spec.base_model));
  std::string model_dir = spec.base_model;
  if (spec.init_random) {
    TL_ASSIGN_OR_RETURN(ModelConfig cfg, ModelConfig::load(spec.base_model));
    model_dir = spec.output_dir + "/init";
    if (!file_exists(model_dir + "/model.safetensors")) TL_TRY(write_random_model(model_dir, cfg, spec.seed));
    TL_TRY(copy_model_metadata(spec.base_model, model_dir));
  }
  // Data.
  DataOptions dopt{spec.format, spec.train_on_all, spec.max_seq_len};
  DatasetStats train_stats, val_stats;
  // dpo: each pair's chosen then rejected example, several pairs to a sequence with packing (validation
  // one pair to a sequence, as `tuneloop loss` runs it), with the reference's summed token losses of each
  // and their trained-token counts.
  DpoSet train_dpo, val_dpo;
  std::vector<TrainSequence> sft_train, sft_val;  // the other methods' packed sequences
  if (is_dpo) {
    TL_ASSIGN_OR_RETURN(std::vector<PreferencePair> pairs, load_preference_pairs(spec.train_path, tok, dopt, &train_stats));
    train_dpo = dpo_set(pairs, spec.packing, spec.max_seq_len);
    if (!spec.validation_path.empty()) {
      TL_ASSIGN_OR_RETURN(std::vector<PreferencePair> vpairs, load_preference_pairs(spec.validation_path, tok, dopt, &val_stats));
      val_dpo = dpo_set(vpairs);
    }
  } else {
    TL_ASSIGN_OR_RETURN(std::vector<Example> train_ex, load_examples(spec.train_path, tok, dopt, &train_stats));
    sft_train = pack_examples(train_ex, spec.max_seq_len, spec.packing);
    if (!spec.validation_path.empty()) {
      TL_ASSIGN_OR_RETURN(std::vector<Example> val_ex, load_examples(spec.validation_path, tok, dopt, &val_stats));
      sft_val = pack_examples(val_ex, spec.max_seq_len, false);
    }
  }
  const std::vector<TrainSequence>& train_seqs = is_dpo ? train_dpo.seqs : sft_train;
  const std::vector<TrainSequence>& val_seqs = is_dpo ? val_dpo.seqs : sft_val;
  const int64_t per_step = spec.micro_batch_size * spec.gradient_accumulation;
  const int64_t n_seq = static_cast<int64_t>(train_seqs.size());
  const int64_t steps_per_epoch = (n_seq + per_step - 1) / per_step;
  int64_t total_steps = steps_per_epoch * spec.epochs;
  if (spec.max_steps > 0) total_steps = std::min(total_steps, spec.max_steps);
  const int64_t warmup = static_cast<int64_t>(std::ceil(spec.warmup_ratio * static_cast<double>(total_steps)));
  std::fprintf(stderr,
               "data: %lld %s (%s) -> %lld sequences, %lld tokens (%lld trained), %lld truncated to %lld; "
               "%lld steps\n",
               static_cast<long long>(train_stats.examples), is_dpo ? "pairs" : "examples", train_stats.format.c_str(),
               static_cast<long long>(n_seq),
               static_cast<long long>(train_stats.tokens), static_cast<long long>(train_stats.trained_tokens),
               static_cast<long long>(train_stats.truncated), static_cast<long long>(spec.max_seq_len),
               static_cast<long long>(total_steps));

  // The weights are read (and, for an NF4 base, quantised) only once the data and the adapter are known
  // to be good: a bad dataset, an unknown target module or a rank larger than a layer fails in a moment,
  // not after minutes of loading.
  const bool is_lora = !spec.trains_all_weights();
  LoraWeights lora;
  if (is_lora) {
    TL_ASSIGN_OR_RETURN(const ModelConfig cfg, ModelConfig::load(model_dir));
    TL_ASSIGN_OR_RETURN(lora, lora_init(cfg, spec.lora, spec.seed));
  }
  // qlora: the frozen base lives as NF4 from the moment it is read; each layer is dequantised only while
  // the layer runs.
  // lora and dpo (a LoRA adapter whose reference is the base without it): the frozen f32 matrices held
  // once, packed (tensor/packed.h), from the moment they are read.
  // dpo with adapter: qlora holds the base as qlora does; the reference is that same NF4 base.
  // dpo with adapter: full trains the weights themselves, as full does; the reference's log-probabilities
  // are scored on them as loaded, before any step (and, on resume, before a checkpoint's weights replace
  // them), so no second copy of the model is held.
  const bool nf4_base = spec.nf4_base();
  if (spec.precision == "bf16" && !bf16_tiles_available())
    return failed_precondition("training.precision: bf16 needs AVX512-BF16 or AMX-BF16, and {}; use precision: fp32",
                               bf16_tiles_unavailable_reason());
  TL_ASSIGN_OR_RETURN(Model model, nf4_base  ? Model::load_nf4(model_dir, spec.double_quant)
                                   : is_lora ? (spec.precision == "bf16" ? Model::load_bf16(model_dir)
                                                                         : Model::load_packed(model_dir))
                                             : Model::load(model_dir));
  // From here on the step's buffers are the same every step: keep them in the heap (after loading, whose
  // freed per-layer f32 copies should go back to the kernel).
  keep_freed_memory();
  const ModelConfig& mc = model.config();
  if (spec.precision == "bf16") {
    // Loaded as tiles, or (NF4) switched to multiplying its blocks on AMX: the reference of DPO is
    // scored on them too, so policy and reference share one precision. For tiles, this counts their bytes.
    const int64_t bytes = model.hold_matrices_bf16();
    if (nf4_base)
      std::fprintf(stderr, "bf16: NF4 blocks dequantised into bf16 tiles per GEMM (the bf16 head too), %s, f32 sums\n",
                   bf16_tiles_unit());
    else
      std::fprintf(stderr, "bf16: frozen matrices held as bf16 tiles (%.1f MB), %s, f32 sums\n", bytes / 1e6,
                   bf16_tiles_unit());
  }
  if (nf4_base) {
    std::fprintf(stderr, "qlora: layer projections held as NF4%s\n", spec.double_quant ? " with double quantisation" : "");
  }

  if (is_dpo) {
    // The reference is the frozen base: its log-probabilities are computed once (and again, to the same
    // bits, on resume).
    const auto r0 = clk::now();
    TL_TRY(score_reference(model, &train_dpo));
    TL_TRY(score_reference(model, &val_dpo));
    std::fprintf(stderr, "dpo: reference log-probabilities of %zu pairs in %.1fs (%s loss, beta %g)\n",
                 train_dpo.inputs.size() + val_dpo.inputs.size(), std::chrono::duration<double>(clk::now() - r0).count(),
                 spec.dpo_loss.c_str(), spec.dpo_beta);
  }

  // Trainable parameters.
  LoraWeights lora_grads;
  ModelWeights full_grads;
  std::vector<Param> params;
  if (is_lora) {
    lora_grads = lora.zeros_like();
    for (size_t l = 0; l < lora.layers.size(); ++l)
      for (int t = 0; t < kLoraTargetCount; ++t) {
        LoraModule& m = lora.layers[l][static_cast<size_t>(t)];
        if (m.a.empty()) continue;
        LoraModule& g = lora_grads.layers[l][static_cast<size_t>(t)];
        for (bool is_a : {true, false}) {
          Tensor* v = is_a ? &m.a : &m.b;
          params.push_back({peft::tensor_name(static_cast<int64_t>(l), static_cast<LoraTarget>(t), is_a), v,
                            is_a ? &g.a : &g.b, Tensor::zeros(DType::kF32, v->shape()),
                            Tensor::zeros(DType::kF32, v->shape()), true});
        }
      }
  } else {
    ModelWeights& w = model.mutable_weights();
    full_grads = model_zeros_like(w, mc.tie_word_embeddings);
    auto add = [&](const std::string& name, Tensor* v, Tensor* g) {
      if (v->empty()) return;
      params.push_back({name, v, g, Tensor::zeros(DType::kF32, v->shape()), Tensor::zeros(DType::kF32, v->shape()),
                        !is_no_decay(name)});
    };
    add("embed", &w.embed, &full_grads.embed);
    add("final_norm", &w.final_norm, &full_grads.final_norm);
    if (!mc.tie_word_embeddings) add("lm_head", &w.lm_head, &full_grads.lm_head);
    for (size_t l = 0; l < w.layers.size(); ++l) {
      LayerWeights& L = w.layers[l];
      LayerWeights& G = full_grads.layers[l];
      const std::string p = "layers." + std::to_string(l) + ".";
      add(p + "attn_norm", &L.attn_norm, &G.attn_norm);
      add(p + "wqkv", &L.wqkv, &G.wqkv);
      add(p + "bqkv.bias", &L.bqkv, &G.bqkv);
      add(p + "wo", &L.wo, &G.wo);
      add(p + "bo.bias", &L.bo, &G.bo);
      add(p + "q_norm", &L.q_norm, &G.q_norm);
      add(p + "k_norm", &L.k_norm, &G.k_norm);
      add(p + "mlp_norm", &L.mlp_norm, &G.mlp_norm);
      add(p + "w_gate_up", &L.w_gate_up, &G.w_gate_up);
      add(p + "b_gate_up.bias", &L.b_gate_up, &G.b_gate_up);
      add(p + "w_down", &L.w_down, &G.w_down);
      add(p + "b_down.bias", &L.b_down, &G.b_down);
    }
  }
  LoraRef lref = is_lora ? LoraRef{&lora, &spec.lora} : LoraRef{};

  // Resume.
  int64_t start_step = 0;
  const std::string metrics_path = spec.output_dir + "/metrics.jsonl";
  std::vector<std::string> kept_metrics;
  if (resume) {
    TL_ASSIGN_OR_RETURN(std::string ckpt, latest_checkpoint(ckpt_root));
    if (!ckpt.empty()) {
      nlohmann::json state;
      TL_TRY(load_checkpoint(ckpt, params, &state));
      start_step = state.value("step", 0);
      std::fprintf(stderr, "resuming from %s (step %lld)\n", ckpt.c_str(), static_cast<long long>(start_step));
    } else {
      std::fprintf(stderr, "no checkpoint in %s: starting from step 0\n", ckpt_root.c_str());
    }
    // Keep the metrics of the steps the checkpoint covers; later lines are redone.
    if (auto text = read_file(metrics_path); text.is_ok()) {
      std::istringstream in(*text);
      std::string line;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= start_step) kept_metrics.push_back(line);
      }
    }
  }
  std::string metrics_text;
  for (const auto& l : kept_metrics) metrics_text += l + "\n";
  TL_TRY(write_file_atomic(metrics_path, metrics_text));
  FILE* metrics = std::fopen(metrics_path.c_str(), "a");
  if (!metrics) return io_error("{}: cannot open for append", metrics_path);

  AdamWOptions aopt;
  aopt.lr = spec.learning_rate;
  aopt.weight_decay = spec.weight_decay;
  TL_ASSIGN_OR_RETURN(LrSchedule schedule, lr_schedule_from_name(spec.lr_scheduler));
  Progress progress(total_steps);
  progress.set_first(start_step + 1);
  TrainResult result;
  result.output_dir = spec.output_dir;
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  auto fail = [&](const Status& s) {
    std::fclose(metrics);
    return s;
  };

  for (int64_t step = start_step; step < total_steps; ++step) {
    const int64_t epoch = step / steps_per_epoch;
    if (epoch != order_epoch) {
      order.resize(static_cast<size_t>(n_seq));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(mix(spec.seed ^ mix(static_cast<uint64_t>(epoch))));
      std::shuffle(order.begin(), order.end(), rng);
      order_epoch = epoch;
    }
    const int64_t first = (step % steps_per_epoch) * per_step;
    const int64_t last = std::min(n_seq, first + per_step);
    int64_t n_tokens = 0, n_trained = 0, n_pairs = 0;
    for (int64_t i = first; i < last; ++i) {
      const auto seq = static_cast<size_t>(order[static_cast<size_t>(i)]);
      const TrainSequence& s = train_seqs[seq];
      n_tokens += s.size();
      for (int32_t t : s.targets) n_trained += t >= 0;
      if (is_dpo) n_pairs += static_cast<int64_t>(train_dpo.seq_pairs[seq].size());
    }
    const auto t0 = clk::now();
    double loss_sum = 0;
    DpoTotals dpo;
    for (int64_t i = first; i < last; ++i) {
      TrainOptions topt;
      topt.gradient_checkpointing = spec.gradient_checkpointing;
      topt.dropout_seed = mix(spec.seed ^ mix(static_cast<uint64_t>(step) * 1000003ull + static_cast<uint64_t>(i)));
      const int64_t seq_index = order[static_cast<size_t>(i)];
      const TrainSequence& seq = train_seqs[static_cast<size_t>(seq_index)];
      LoraWeights* lg = is_lora ? &lora_grads : nullptr;
      ModelWeights* fg = is_lora ? nullptr : &full_grads;
      Result<StepStats> r = StepStats();
      if (is_dpo) {
        // Each pair's loss, averaged over the step's pairs, scales its two examples' token losses.
        const ExampleScales scales = [&](const std::vector<double>& losses) {
          return pair_scales(train_dpo, static_cast<size_t>(seq_index), losses, dpo_type, spec.dpo_beta,
                             static_cast<double>(n_pairs), &dpo);
        };
        r = forward_backward(model, lref, lg, fg, seq, scales, topt);
      } else {
        r = forward_backward(model, lref, lg, fg, seq, 1.0f / static_cast<float>(std::max<int64_t>(1, n_trained)), topt);
      }
      if (!r.is_ok()) return fail(r.status().with_context(fmt::format("step {}", step + 1)));
      loss_sum += r->loss_sum;
    }
    const double loss = is_dpo ? dpo.mean(dpo.loss) : loss_sum / static_cast<double>(std::max<int64_t>(1, n_trained));
    double sq = 0;
    for (const Param& p : params) {
      const float* g = p.grad->f32();
      for (int64_t i = 0; i < p.grad->numel(); ++i) sq += static_cast<double>(g[i]) * g[i];
    }
    const double grad_norm = std::sqrt(sq);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      auto ckpt = latest_checkpoint(ckpt_root);
      return fail(failed_precondition("step {}: {} is not finite; stopped. Last good checkpoint: {}", step + 1,
                                      std::isfinite(loss) ? "the gradient norm" : "the loss",
                                      ckpt.is_ok() && !ckpt->empty() ? *ckpt : "none"));
    }
    const double clip = spec.max_grad_norm > 0 && grad_norm > spec.max_grad_norm ? spec.max_grad_norm / (grad_norm + 1e-6) : 1.0;
    const double lr = lr_at(schedule, spec.learning_rate, step, total_steps, warmup);
    for (Param& p : params) {
      if (clip != 1.0) {
        float* g = p.grad->f32();
        for (int64_t i = 0; i < p.grad->numel(); ++i) g[i] = static_cast<float>(g[i] * clip);
      }
      adamw_update(*p.value, *p.grad, p.m, p.v, step + 1, lr, aopt, p.decay);
      std::fill(p.grad->f32(), p.grad->f32() + p.grad->numel(), 0.0f);
    }
    if (!is_lora && mc.tie_word_embeddings) model.mutable_weights().lm_head = model.mutable_weights().embed;
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    const double tps = static_cast<double>(n_tokens) / secs;
    if (step == start_step) result.first_loss = loss;
    result.last_loss = loss;
    result.steps = step + 1;
    nlohmann::ordered_json line = {{"step", step + 1}, {"total_steps", total_steps}, {"epoch", static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch)},
                                   {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens", n_tokens},
                                   {"trained_tokens", n_trained}, {"tokens_per_s", tps}};
    if (is_dpo) write_dpo_metrics(dpo, line);
    std::fprintf(metrics, "%s\n", line.dump().c_str());
    std::fflush(metrics);
    progress.update(step + 1, loss, lr, tps);
    if ((step + 1) % spec.checkpoint_every == 0 && step + 1 < total_steps) {
      nlohmann::json state = {{"step", step + 1}, {"total_steps", total_steps}, {"loss", loss}};
      Status s = save_checkpoint(ckpt_root, step + 1, params, state, spec.checkpoint_keep);
      if (!s.is_ok()) return fail(s);
    }
  }
  std::fclose(metrics);

  // Outputs.
  if (is_lora) {
    TL_TRY(peft::save(spec.output_dir, lora, spec.lora, spec.base_model));
  } else {
    TL_TRY(copy_model_metadata(model_dir, spec.output_dir));
    TL_TRY(save_hf_weights(spec.output_dir + "/model.safetensors", model.weights(), mc));
  }
  if (!val_seqs.empty() && is_dpo) {
    TL_ASSIGN_OR_RETURN(DpoTotals val, evaluate_pairs(model, lref, val_dpo, dpo_type, spec.dpo_beta));
    result.validation_loss = val.mean(val.loss);
    result.validation_reward_accuracy = val.mean(val.reward_correct);
  } else if (!val_seqs.empty()) {
    result.validation_loss = mean_loss(model, lref, val_seqs);
  }
  nlohmann::ordered_json summary = {{"steps", result.steps}, {"first_loss", result.first_loss},
                                    {"last_loss", result.last_loss}, {"validation_loss", nullptr},
                                    {"method", train_method_name(spec.method)}, {"train_examples", train_stats.examples},
                                    {"truncated", train_stats.truncated}, {"trained_tokens", train_stats.trained_tokens}};
  // null without a validation set: a number there would be plotted as a loss.
  if (!val_seqs.empty()) summary["validation_loss"] = result.validation_loss;
  if (is_dpo && !val_seqs.empty()) summary["validation_reward_accuracy"] = result.validation_reward_accuracy;
  TL_TRY(write_file_atomic(spec.output_dir + "/train_results.json", summary.dump(2) + "\n"));
  return result;
}

}  // namespace tl
