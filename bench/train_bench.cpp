// Training benchmark: tokens/s, peak RSS and MFU for lora, qlora and full fine-tuning of the
// 52.6M-parameter Qwen2-shaped bench model (the engine_bench model), one sequence of 512 tokens,
// r=16 on all 7 projections, against a PyTorch eager training loop on the same weights in the same run
// (bench/reference/train_reference_bench.py, OpenBLAS on its AVX-512 or AVX2 kernels, same threads). Each method runs
// in its own process so peak RSS is its own. MFU counts 2 FLOPs per weight per token forward and 2 for
// the input-gradient pass (+2 more for weight gradients in full fine-tuning), plus attention, against the
// faster of the two sgemm figures (ours, PyTorch's) measured in the same run. PyTorch has no QLoRA here
// (no bitsandbytes): qlora compares to our lora. dpo: the same LoRA trained with the sigmoid DPO loss on
// one pair of 256-token completions (ours packed into one sequence, PyTorch's a batch of two, TRL's
// concatenated forward), both against reference log-probabilities computed once before the first step.
// lora-bf16 (on a CPU with AMX or AVX512-BF16): our training.precision: bf16 against PyTorch's
// autocast(bfloat16) at its best (frozen weights cast to bf16 once), its MFU against the larger bf16 2048^3
// GEMM (ours on AMX or AVX512-BF16, PyTorch's oneDNN) measured in the run, as the f32 rows' is against sgemm.
//
// lora and full run step by step in turns with the reference (both processes up at once), and the
// ratio is the median of the pairs' ratios: on this shared machine, runs a minute apart compare the
// machine's moods.
//
//   build/bench/train_bench [--steps 5] [--dir /tmp/tuneloop-bench-qwen2-50m] [--big] [--lora-only] [--seq 512]
//                           [--profile lora|lora-bf16|qlora|qlora-bf16|full|dpo [--rank 16] [--prompt 0.5]]
//
// --profile runs only our side of one method, in this process (for perf). --prompt P makes the first
// P of every 64-token example a prompt without targets, as chat data trained on its assistant turns is
// (the comparison runs train on every token).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/env.h"
#include "core/file.h"
#include "model/random_model.h"
#include "model/train_step.h"
#include "tensor/amx.h"
#include "tensor/blas.h"
#include "train/dpo.h"
#include "train/optimizer.h"
#include "reference_process.h"

using namespace tl;
using clk = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Measured {
  double step_s = 0, peak_rss_mb = 0;
};

double g_prompt_fraction = 0;  // --prompt (profile runs only)

// Runs in a child (or, for --profile, in this process): load, set up the method, time `steps` optimizer
// steps after three warm-up steps.
// With cmd_fd >= 0 (interleaved runs) it writes one byte when warm, then times one step per 's' read from
// cmd_fd, writing each step's seconds (a double) to out_fd, until anything else arrives.
Measured run_ours(const std::string& dir, const std::string& method, int64_t T, int64_t r, int steps, bool ckpt,
                  int cmd_fd = -1, int out_fd = -1) {
  const bool dpo = method == "dpo", bf16 = method == "lora-bf16";
  auto model = method == "qlora" || method == "qlora-bf16" ? Model::load_nf4(dir, true)
               : bf16                     ? Model::load_bf16(dir)  // the trainer's training.precision: bf16
               : method == "lora" || dpo  ? Model::load_packed(dir)
                                          : Model::load(dir);
  if (!model.is_ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().message().c_str());
    _exit(1);
  }
  if (model.is_ok() && method == "qlora-bf16") model->hold_matrices_bf16();  // NF4 blocks as bf16 tiles
  keep_freed_memory();  // after loading, as the trainer does
  const ModelConfig& c = model->config();
  std::vector<int32_t> ids(static_cast<size_t>(T)), targets(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[static_cast<size_t>(t)] = static_cast<int32_t>((t * 7919 + 13) % c.vocab_size);
  for (int64_t t = 0; t < T; ++t) targets[static_cast<size_t>(t)] = ids[static_cast<size_t>((t + 1) % T)];
  for (int64_t t = 0; t < T; ++t)
    if (t % 64 < static_cast<int64_t>(64 * g_prompt_fraction)) targets[static_cast<size_t>(t)] = -1;
  TrainSequence seq = TrainSequence::single(ids, targets);
  // dpo: one pair, chosen and rejected T/2 tokens each, packed into one sequence as the trainer runs it,
  // with the reference's summed token losses computed once (the base, no adapter).
  DpoSet pair;
  if (dpo) {
    const auto half = static_cast<std::ptrdiff_t>(T / 2);
    seq = TrainSequence();
    for (int side = 0; side < 2; ++side) {
      std::vector<int32_t> e(ids.begin() + side * half, ids.begin() + (side + 1) * half);
      std::vector<int32_t> t(e.begin() + 1, e.end());
      t.push_back(ids[static_cast<size_t>(((side + 1) * half) % T)]);
      seq.append(e, t);
    }
    DpoPairInput in;
    in.chosen_tokens = in.rejected_tokens = half;
    pair = {{seq}, {in}, {{0}}};
    if (!score_reference(*model, &pair).is_ok()) _exit(2);
  }
  LoraConfig lc;
  lc.r = r;
  lc.alpha = 2.0 * static_cast<double>(r);
  for (int t = 0; t < kLoraTargetCount; ++t) lc.targets.push_back(static_cast<LoraTarget>(t));
  LoraWeights lora, lgrad, m1, m2;
  ModelWeights fgrad, fm1, fm2;
  const bool full = method == "full";
  if (full) {
    ModelWeights& w = model->mutable_weights();
    fgrad = model_zeros_like(w, c.tie_word_embeddings);
    fm1 = model_zeros_like(w, c.tie_word_embeddings);
    fm2 = model_zeros_like(w, c.tie_word_embeddings);
  } else {
    lora = *lora_init(c, lc, 1);
    lgrad = lora.zeros_like();
    m1 = lora.zeros_like();
    m2 = lora.zeros_like();
  }
  AdamWOptions ao;
  int64_t step_no = 0;
  auto one_step = [&] {
    TrainOptions to;
    to.gradient_checkpointing = ckpt;
    const ExampleScales dpo_scales = [&](const std::vector<double>& losses) {
      return pair_scales(pair, 0, losses, DpoLossType::kSigmoid, 0.1, 1.0, nullptr);
    };
    auto st = dpo ? forward_backward(*model, LoraRef{&lora, &lc}, &lgrad, nullptr, seq, dpo_scales, to)
                  : forward_backward(*model, full ? LoraRef{} : LoraRef{&lora, &lc}, full ? nullptr : &lgrad,
                                     full ? &fgrad : nullptr, seq, 1.0f / static_cast<float>(T), to);
    if (!st.is_ok()) _exit(2);
    ++step_no;
    if (full) {
      ModelWeights& w = model->mutable_weights();
      auto upd = [&](Tensor& p, Tensor& g, Tensor& a, Tensor& b) {
        if (p.empty()) return;
        adamw_update(p, g, a, b, step_no, 1e-5, ao, true);
        std::fill(g.f32(), g.f32() + g.numel(), 0.0f);
      };
      upd(w.embed, fgrad.embed, fm1.embed, fm2.embed);
      upd(w.final_norm, fgrad.final_norm, fm1.final_norm, fm2.final_norm);
      for (size_t l = 0; l < w.layers.size(); ++l) {
        LayerWeights &L = w.layers[l], &G = fgrad.layers[l], &A = fm1.layers[l], &B = fm2.layers[l];
        upd(L.wqkv, G.wqkv, A.wqkv, B.wqkv);
        upd(L.bqkv, G.bqkv, A.bqkv, B.bqkv);
        upd(L.wo, G.wo, A.wo, B.wo);
        upd(L.w_gate_up, G.w_gate_up, A.w_gate_up, B.w_gate_up);
        upd(L.w_down, G.w_down, A.w_down, B.w_down);
        upd(L.attn_norm, G.attn_norm, A.attn_norm, B.attn_norm);
        upd(L.mlp_norm, G.mlp_norm, A.mlp_norm, B.mlp_norm);
      }
      w.lm_head = w.embed;
    } else {
      std::vector<LoraModule*> g, a, b;
      lgrad.for_each([&](int64_t, LoraTarget, LoraModule& m) { g.push_back(&m); });
      m1.for_each([&](int64_t, LoraTarget, LoraModule& m) { a.push_back(&m); });
      m2.for_each([&](int64_t, LoraTarget, LoraModule& m) { b.push_back(&m); });
      size_t i = 0;
      lora.for_each([&](int64_t, LoraTarget, LoraModule& m) {
        adamw_update(m.a, g[i]->a, a[i]->a, b[i]->a, step_no, 1e-4, ao, true);
        adamw_update(m.b, g[i]->b, a[i]->b, b[i]->b, step_no, 1e-4, ao, true);
        std::fill(g[i]->a.f32(), g[i]->a.f32() + g[i]->a.numel(), 0.0f);
        std::fill(g[i]->b.f32(), g[i]->b.f32() + g[i]->b.numel(), 0.0f);
        ++i;
      });
    }
  };
  for (int w = 0; w < 3; ++w) one_step();  // three untimed steps, as the reference takes
  std::vector<double> times;
  if (cmd_fd >= 0) {
    char cmd_byte = 'r';
    if (write(out_fd, &cmd_byte, 1) != 1) _exit(3);
    while (read(cmd_fd, &cmd_byte, 1) == 1 && cmd_byte == 's') {
      auto t0 = clk::now();
      one_step();
      const double sec = std::chrono::duration<double>(clk::now() - t0).count();
      times.push_back(sec);
      if (write(out_fd, &sec, sizeof sec) != static_cast<ssize_t>(sizeof sec)) _exit(3);
    }
    steps = 0;
  }
  for (int s = 0; s < steps; ++s) {
    auto t0 = clk::now();
    one_step();
    times.push_back(std::chrono::duration<double>(clk::now() - t0).count());
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return {median(times), static_cast<double>(ru.ru_maxrss) / 1024.0};
}

// One of our methods in a forked child, stepped one timed step at a time over pipes (peak RSS stays per
// process): ready() after the warm-up steps, step() returns one step's seconds, finish() its Measured.
class SteppedChild {
 public:
  SteppedChild(const std::string& dir, const std::string& method, int64_t T, int64_t r, bool ckpt) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(to_child[1]);
      close(from_child[0]);
      Measured m = run_ours(dir, method, T, r, 0, ckpt, to_child[0], from_child[1]);
      if (write(from_child[1], &m, sizeof m) != static_cast<ssize_t>(sizeof m)) _exit(3);
      _exit(0);
    }
    close(to_child[0]);
    close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
  }
  bool ready() {
    char c = 0;
    return from_ >= 0 && read(from_, &c, 1) == 1;
  }
  // Seconds of one step, or a negative value if the child is gone.
  double step() {
    double sec = -1;
    const char c = 's';
    if (write(to_, &c, 1) != 1 || read(from_, &sec, sizeof sec) != static_cast<ssize_t>(sizeof sec)) return -1;
    return sec;
  }
  Measured finish() {
    Measured m;
    const char q = 'q';
    if (write(to_, &q, 1) != 1) {}
    close(to_);
    if (read(from_, &m, sizeof m) != static_cast<ssize_t>(sizeof m)) m = {};
    close(from_);
    int status = 0;
    waitpid(pid_, &status, 0);
    return m;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

// `steps` timed steps of one of our methods in its own child; step_s is their median.
Measured run_alone(const std::string& dir, const std::string& method, int64_t T, int64_t r, int steps) {
  SteppedChild child(dir, method, T, r, false);
  std::vector<double> times;
  if (child.ready())
    for (int s = 0; s < steps; ++s) {
      const double sec = child.step();
      if (sec < 0) break;
      times.push_back(sec);
    }
  Measured m = child.finish();
  m.step_s = median(times);
  return m;
}

// Our method (in a child) and the PyTorch reference (its own process) side by side, stepping in turns:
// each pair of steps sees the same machine. Returns our Measured and fills the reference's.
struct Paired {
  Measured ours;
  double ref_step_s = 0, ref_rss_mb = 0, ref_sgemm = 0, ratio = 0;  // ratio: median of pairs' t/s ratios
  bool ok = false;
};

// A pause before each step of a pair, so that neither side's step starts while the other's threads are
// still busy: PyTorch's OpenBLAS (pthreads) workers keep polling for work for a while after its step ends,
// and ours (OpenMP) spin briefly. Without it both sides measured slower in turns than alone; with 300 ms,
// two runs each way back to back: ours 648-654 -> 686-731 tokens/s, PyTorch's 314-347 -> 329-360.
constexpr auto kSettle = std::chrono::milliseconds(300);

Paired run_paired(const std::string& dir, const std::string& method, int64_t T, int64_t r, int steps, int threads) {
  Paired out;
  SteppedChild child(dir, method, T, r, false);
  // PyTorch at its best for each: its f32 steps (OpenBLAS) ran 2.4x faster with OMP_WAIT_POLICY=PASSIVE
  // than without (1.05 s against 2.54 s a step, measured back to back), its bf16 ones (oneDNN) 1.6x
  // faster without it (0.54 s against 0.87 s).
  const std::string policy = method == "lora-bf16" ? "" : "OMP_WAIT_POLICY=PASSIVE ";
  const std::string cmd = "env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY " + reference_coretype_env() + policy + "OMP_NUM_THREADS=" +
                          std::to_string(threads) + " /usr/bin/python3 " + std::string(TL_SOURCE_DIR) +
                          "/bench/reference/train_reference_bench.py " + dir + " " + method + " " + std::to_string(T) +
                          " " + std::to_string(r) + " " + std::to_string(steps) + " " + std::to_string(threads) +
                          " --serve";
  RefProcess ref(cmd);
  const nlohmann::json hello = nlohmann::json::parse(ref.ok() ? ref.read_line() : std::string(), nullptr, false);
  const bool ours_ready = child.ready();
  std::vector<double> ours_s, ref_s, ratios;
  if (ours_ready && !hello.is_discarded() && hello.contains("sgemm_gflops")) {
    out.ref_sgemm = hello["sgemm_gflops"].get<double>();
    for (int s = 0; s < steps; ++s) {
      std::this_thread::sleep_for(kSettle);
      const double sec = child.step();
      if (sec < 0) break;
      std::this_thread::sleep_for(kSettle);
      double rsec = 0;
      if (!ref.ask_number("step", &rsec)) break;
      ours_s.push_back(sec);
      ref_s.push_back(rsec);
      ratios.push_back(rsec / sec);
    }
  }
  out.ours = child.finish();
  const nlohmann::json bye = nlohmann::json::parse(ref.finish(), nullptr, false);
  if (ours_s.size() != static_cast<size_t>(steps) || bye.is_discarded()) return out;
  out.ours.step_s = median(ours_s);
  out.ref_step_s = median(ref_s);
  out.ref_rss_mb = bye["peak_rss_mb"].get<double>();
  out.ratio = median(ratios);
  out.ok = true;
  return out;
}

double sgemm_gflops() {
  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b = a, c = a;
  sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  std::vector<double> r;
  for (int i = 0; i < 3; ++i) {
    auto t = clk::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    r.push_back(2.0 * n * n * n / std::chrono::duration<double>(clk::now() - t).count() / 1e9);
  }
  return median(r);
}

// Our bf16 tile GEMM on 2048^3 (tensor/amx.h): lora-bf16's MFU peak, beside PyTorch's bf16 matmul.
double amx_gemm_gflops() {
  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), c = a;
  const AmxMatrix w = AmxMatrix::pack(a.data(), n, n);
  amx_gemm_xwt(c.data(), n, a.data(), n, n, w, nullptr, false);
  std::vector<double> r;
  for (int i = 0; i < 3; ++i) {
    auto t = clk::now();
    amx_gemm_xwt(c.data(), n, a.data(), n, n, w, nullptr, false);
    r.push_back(2.0 * n * n * n / std::chrono::duration<double>(clk::now() - t).count() / 1e9);
  }
  return median(r);
}

constexpr const char* kUsage =
    " [--steps 5] [--dir DIR] [--big] [--lora-only] [--seq 512]\n"
    "       [--profile lora|lora-bf16|qlora|qlora-bf16|full|dpo [--rank 16] [--prompt 0.5]]\n";

}  // namespace

int main(int argc, char** argv) {
  use_fastest_openblas_family();
  std::string dir = "/tmp/tuneloop-bench-qwen2-50m";
  int steps = 5;
  bool big = false;
  std::string profile;  // --profile METHOD: only our side of one method, in this process (for perf)
  int rank = 16;        // --rank R: the LoRA rank of --profile (the comparison runs use 16)
  bool lora_only = false;  // --lora-only: the comparison for lora and lora-bf16 alone (a quicker run)
  int64_t T = 512;         // --seq N: the sequence length of the comparison runs and --profile
  // --prompt P: untrained prompt share of each example, --profile only
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--big")) big = true;
    else if (i + 1 < argc && !std::strcmp(argv[i], "--profile")) profile = argv[++i];
    else if (i + 1 < argc && !std::strcmp(argv[i], "--dir")) dir = argv[++i];
    else if (i + 1 < argc && !std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[++i]);
    else if (i + 1 < argc && !std::strcmp(argv[i], "--rank")) rank = std::atoi(argv[++i]);
    else if (i + 1 < argc && !std::strcmp(argv[i], "--prompt")) g_prompt_fraction = std::atof(argv[++i]);
    else if (i + 1 < argc && !std::strcmp(argv[i], "--seq")) T = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--lora-only")) lora_only = true;
    else {
      std::fprintf(stderr, "error: unknown argument '%s'\nusage: %s%s", argv[i], argv[0], kUsage);
      return 2;
    }
  }
  if (steps < 1 || rank < 1 || T < 2 || T % 2) {
    std::fprintf(stderr, "error: --steps and --rank take a positive number, --seq an even one of at least 2\n");
    return 2;
  }
  if (g_prompt_fraction != 0 && (profile.empty() || !(g_prompt_fraction > 0 && g_prompt_fraction < 1))) {
    std::fprintf(stderr, "error: --prompt takes a fraction in (0, 1), with --profile\n");
    return 2;
  }
  if (!profile.empty()) {
    if (profile.find("bf16") != std::string::npos && !bf16_tiles_available()) {
      std::fprintf(stderr, "error: --profile %s: %s\n", profile.c_str(), bf16_tiles_unavailable_reason().c_str());
      return 2;
    }
    Measured m = run_ours(dir, profile, T, rank, steps, false);
    std::printf("%s: %.1f tokens/s, peak RSS %.0f MB\n", profile.c_str(), static_cast<double>(T) / m.step_s,
                m.peak_rss_mb);
    return 0;
  }
  if (big) {
    // The QLoRA memory configuration: weight-dominated (212M parameters), seq 256, micro-batch 1.
    dir = "/tmp/tuneloop-bench-qwen2-200m";
    if (!file_exists(dir + "/model.safetensors")) {
      ModelConfig b;
      b.model_type = "qwen2";
      b.vocab_size = 32000;
      b.hidden_size = 1024;
      b.intermediate_size = 2816;
      b.num_layers = 16;
      b.num_heads = 16;
      b.num_kv_heads = 4;
      b.head_dim = 64;
      b.max_position_embeddings = 4096;
      b.tie_word_embeddings = true;
      b.qkv_bias = true;
      std::fprintf(stderr, "writing the 200M benchmark model to %s ...\n", dir.c_str());
      if (!write_random_model(dir, b, 11).is_ok()) return 1;
    }
    // LoRA and QLoRA in two live children, stepping in turns, so each pair sees the same machine; then
    // the same pair under training.precision: bf16 where the CPU has AMX.
    auto cfg = ModelConfig::load(dir);
    std::printf("model %.1fM parameters, seq 256, micro-batch 1, r=16 on all 7 projections, gradient checkpointing, %d threads\n",
                static_cast<double>(cfg->parameter_count()) / 1e6, configured_thread_count());
    std::printf("steps run in turns; speed ratio = median of the %d pairs' ratios\n", steps);
    std::vector<std::pair<std::string, std::string>> pairs = {{"lora", "qlora"}};
    if (bf16_tiles_available()) pairs.emplace_back("lora-bf16", "qlora-bf16");
    for (const auto& [lm, qm] : pairs) {
      SteppedChild lc(dir, lm, 256, 16, true), qc(dir, qm, 256, 16, true);
      if (!lc.ready() || !qc.ready()) {
        std::fprintf(stderr, "error: a benchmark child failed to start\n");
        return 1;
      }
      std::vector<double> ls, qs, ratios;
      for (int s = 0; s < steps; ++s) {
        std::this_thread::sleep_for(kSettle);
        const double a = lc.step();
        std::this_thread::sleep_for(kSettle);
        const double b = qc.step();
        if (a < 0 || b < 0) break;
        ls.push_back(a);
        qs.push_back(b);
        ratios.push_back(a / b);
      }
      const Measured l = lc.finish(), q = qc.finish();
      if (ls.size() != static_cast<size_t>(steps)) {
        std::fprintf(stderr, "error: a benchmark child died\n");
        return 1;
      }
      std::printf("%-10s: %7.1f tokens/s, peak RSS %6.0f MB\n", lm.c_str(), 256 / median(ls), l.peak_rss_mb);
      std::printf("%-10s: %7.1f tokens/s, peak RSS %6.0f MB  -> %.2fx %s's tokens/s, %.2fx its peak RSS\n", qm.c_str(),
                  256 / median(qs), q.peak_rss_mb, median(ratios), lm.c_str(), q.peak_rss_mb / l.peak_rss_mb);
    }
    return 0;
  }
  if (!file_exists(dir + "/model.safetensors")) {
    std::fprintf(stderr, "error: %s has no model; run build/bench/engine_bench first (it writes it)\n", dir.c_str());
    return 1;
  }
  auto cfg = ModelConfig::load(dir);
  const ModelConfig& c = *cfg;
  const int64_t r = 16;
  const int threads = configured_thread_count();
  // Everything that touches OpenBLAS (whose OpenMP threads do not survive fork) runs in the children or
  // after them: first our three methods, each in its own process, then the references, then our sgemm.
  std::map<std::string, Paired> runs;
  // lora-bf16 (training.precision: bf16) needs AMX or AVX512-BF16 for ours; PyTorch's autocast runs anywhere.
  const bool amx = bf16_tiles_available();
  std::vector<const char*> paired = {"lora", "full", "dpo"};
  if (lora_only) paired = {"lora"};
  if (amx) paired.insert(paired.begin() + 1, "lora-bf16");
  for (const char* method : paired) {
    std::fprintf(stderr, "tuneloop and PyTorch %s, %d steps each, in turns ...\n", method, steps);
    runs[method] = run_paired(dir, method, T, r, steps, threads);
    if (!runs[method].ok) {
      std::fprintf(stderr, "error: the paired run of %s failed (is /usr/bin/python3 with torch there?)\n", method);
      return 1;
    }
  }
  if (!lora_only) {
    std::fprintf(stderr, "tuneloop qlora ...\n");
    runs["qlora"].ours = run_alone(dir, "qlora", T, r, steps);
    if (amx) runs["qlora-bf16"].ours = run_alone(dir, "qlora-bf16", T, r, steps);
  }
  const double gflops = sgemm_gflops();
  const double amx_gflops = amx ? amx_gemm_gflops() : 0;
  // FLOPs per token: every weight used in a matmul (all layers + the output head), causal attention.
  const double n_mat = static_cast<double>(c.parameter_count());
  const double attn = 4.0 * (static_cast<double>(T) / 2) * static_cast<double>(c.head_dim * c.num_heads * c.num_layers);
  std::printf("model %.1fM parameters, seq %lld, r=%lld on all 7 projections, %d threads, BLAS core %s\n",
              static_cast<double>(c.parameter_count()) / 1e6, static_cast<long long>(T), static_cast<long long>(r),
              threads, blas_info().core.c_str());
  const double ref_gflops = runs["lora"].ref_sgemm;
  std::printf("sgemm 2048^3: tuneloop %.0f GFLOP/s, PyTorch %.0f GFLOP/s (MFU below is against the larger)\n",
              gflops, ref_gflops);
  if (amx)
    std::printf("bf16 GEMM 2048^3: tuneloop (%s) %.0f GFLOP/s, PyTorch %.0f GFLOP/s (lora-bf16's MFU is against the "
                "larger)\n",
                bf16_tiles_unit(), amx_gflops, runs["lora-bf16"].ref_sgemm);
  else
    std::printf("no lora-bf16 row: %s\n", bf16_tiles_unavailable_reason().c_str());
  std::printf("steps run in turns with the reference's; ratio = median of the %d pairs' ratios\n", steps);
  std::printf("%-9s %12s %12s %8s %9s %10s %6s %6s\n", "method", "tuneloop t/s", "PyTorch t/s", "ratio", "RSS MB",
              "torch RSS", "MFU", "t.MFU");
  std::vector<const char*> rows = {"lora", "qlora", "full", "dpo"};
  if (lora_only) rows = {"lora"};
  if (amx) rows.insert(rows.begin() + 1, "lora-bf16");
  if (amx && !lora_only) rows.insert(rows.begin() + 3, "qlora-bf16");
  for (const char* method : rows) {
    const Measured& m = runs[method].ours;
    const bool full = std::string(method) == "full";
    // dpo's two sequences of T/2 attend over half as many keys; its head's second sweep (the logits
    // recomputed once the pair's loss is known) is our overhead, not counted.
    const double attn_here = std::string(method) == "dpo" ? attn / 2 : attn;
    const double flops_per_token = (full ? 6.0 : 4.0) * n_mat + 3.0 * attn_here;
    const double tps = static_cast<double>(T) / m.step_s;
    // Against the faster of the two sgemm figures measured in this run (the conservative MFU).
    const bool bf16 = std::string(method).find("bf16") != std::string::npos;
    const double peak = bf16 ? std::max(amx_gflops, runs["lora-bf16"].ref_sgemm) : std::max(gflops, ref_gflops);
    const double mfu = tps * flops_per_token / (peak * 1e9);
    if (std::string(method).rfind("qlora", 0) == 0) {
      const Measured& l = runs[bf16 ? "lora-bf16" : "lora"].ours;
      std::printf("%-9s %12.1f %12s %8s %9.0f %10s %5.0f%% %6s  (vs our %s: %.2fx tokens/s, %.2fx peak RSS)\n", method,
                  tps, "-", "-", m.peak_rss_mb, "-", 100 * mfu, "-", bf16 ? "lora-bf16" : "lora", l.step_s / m.step_s,
                  m.peak_rss_mb / l.peak_rss_mb);
      continue;
    }
    const Paired& pr = runs[method];
    const double rtps = static_cast<double>(T) / pr.ref_step_s;
    const double rmfu = rtps * flops_per_token / (peak * 1e9);
    std::printf("%-9s %12.1f %12.1f %7.2fx %9.0f %10.0f %5.0f%% %5.0f%%\n", method, tps, rtps, pr.ratio, m.peak_rss_mb,
                pr.ref_rss_mb, 100 * mfu, 100 * rmfu);
  }
  return 0;
}
