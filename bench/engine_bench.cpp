// Engine benchmark: prefill (512 tokens) and single-stream decode on a ~50M-parameter Qwen2-shaped
// random model, against the PyTorch eager reference (bench/reference/engine_reference.py) run on the same
// weights in the same invocation with the same thread count and OpenBLAS on its AVX-512 or AVX2 kernels. Also
// prints each side's sgemm GFLOP/s and decode against the memory-bandwidth bound (weight bytes per token
// vs a measured copy bandwidth). The reference stays up and its runs alternate with ours; ratios are the
// median of the --reps pairs' ratios.
//
//   build/bench/engine_bench [--reps 5] [--dir /tmp/tuneloop-bench-qwen2-50m] [--profile-prefill]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/file.h"
#include "model/generate.h"
#include "model/random_model.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"
#include "reference_process.h"

using namespace tl;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

ModelConfig bench_config() {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 32000;
  c.hidden_size = 512;
  c.intermediate_size = 1536;
  c.num_layers = 12;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 4096;
  c.rope_theta = 1000000.0;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  c.eos_token_ids = {2};
  return c;
}

double sgemm_gflops() {
  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b = a, c = a;
  sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  std::vector<double> r;
  for (int i = 0; i < 5; ++i) {
    auto t = clk::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    r.push_back(2.0 * n * n * n / seconds_since(t) / 1e9);
  }
  return median(r);
}

// STREAM-style copy with all threads; counts bytes read + written (STREAM's convention).
double copy_bandwidth_gbs() {
  const size_t n = 64ull << 20;  // 64M floats = 256 MB per buffer
  std::vector<float> src(n, 1.0f), dst(n, 0.0f);
  ThreadPool& pool = ThreadPool::global();
  std::vector<double> r;
  for (int i = 0; i < 5; ++i) {
    auto t = clk::now();
    pool.parallel_for(static_cast<int64_t>(n / 4096), [&](int64_t b, int64_t e) {
      std::memcpy(&dst[static_cast<size_t>(b) * 4096], &src[static_cast<size_t>(b) * 4096],
                  static_cast<size_t>(e - b) * 4096 * 4);
    });
    r.push_back(2.0 * n * 4 / seconds_since(t) / 1e9);
  }
  return median(r);
}

// Read bandwidth (what decoding needs: weights are only read), all threads, over a 512 MB buffer.
double read_bandwidth_gbs() {
  const size_t n = 128ull << 20;
  std::vector<float> src(n, 1.0f);
  ThreadPool& pool = ThreadPool::global();
  const KernelTable& k = kernels();
  std::vector<double> r;
  volatile float sink = 0;
  for (int i = 0; i < 5; ++i) {
    auto t = clk::now();
    pool.parallel_for(static_cast<int64_t>(n / 4096), [&](int64_t b, int64_t e) {
      const float* p = &src[static_cast<size_t>(b) * 4096];
      sink = sink + k.dot(p, p, (e - b) * 4096);
    });
    r.push_back(static_cast<double>(n) * 4 / seconds_since(t) / 1e9);
  }
  return median(r);
}

}  // namespace

int main(int argc, char** argv) {
  use_fastest_openblas_family();
  keep_freed_memory();
  std::string dir = "/tmp/tuneloop-bench-qwen2-50m";
  int reps = 5, prefill_n = 512, decode_n = 64;
  bool profile_prefill = false;  // --profile-prefill: only our prefill, `reps` times (for perf)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--profile-prefill")) profile_prefill = true;
    else if (i + 1 < argc && !std::strcmp(argv[i], "--dir")) dir = argv[++i];
    else if (i + 1 < argc && !std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[++i]);
  }
  const ModelConfig cfg = bench_config();
  if (!file_exists(dir + "/model.safetensors")) {
    std::fprintf(stderr, "writing the benchmark model to %s ...\n", dir.c_str());
    Status st = write_random_model(dir, cfg, 7);
    if (!st.is_ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return 1;
    }
  }
  auto model = Model::load_packed(dir);  // as tuneloop generate loads it
  if (!model.is_ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().message().c_str());
    return 1;
  }
  const int threads = configured_thread_count();
  const BlasInfo& blas = blas_info();
  std::printf("model: qwen2-shaped, %.1fM parameters (hidden %lld, %lld layers, vocab %lld), f32\n",
              static_cast<double>(cfg.parameter_count()) / 1e6, static_cast<long long>(cfg.hidden_size),
              static_cast<long long>(cfg.num_layers), static_cast<long long>(cfg.vocab_size));
  std::printf("tuneloop: %d threads, kernels %s, BLAS %s (core %s)\n", threads, isa_name(active_isa()),
              blas.library.c_str(), blas.core.c_str());

  std::vector<int32_t> ids(static_cast<size_t>(prefill_n));
  for (int i = 0; i < prefill_n; ++i) ids[static_cast<size_t>(i)] = (i * 7919 + 13) % static_cast<int>(cfg.vocab_size);

  if (profile_prefill) {
    std::vector<float> out;
    for (int r = 0; r < reps; ++r) {
      KvCache cache(model->config(), prefill_n);
      auto t = clk::now();
      if (!model->forward(ids, cache, out, false).is_ok()) return 1;
      std::printf("prefill %.1f tokens/s\n", prefill_n / seconds_since(t));
    }
    return 0;
  }
  const double our_gflops = sgemm_gflops();
  const double bw = copy_bandwidth_gbs();
  const double read_bw = read_bandwidth_gbs();
  // The reference, same weights, same threads, OpenBLAS forced onto the kernels ours run. It stays up and
  // measures one run per request, so its runs interleave with ours: each pair of runs sees the same
  // machine, and the ratio quoted is the median of the pairs' ratios.
  const std::string cmd = "env -u GOMP_SPINCOUNT " + reference_coretype_env() + "OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=" +
                          std::to_string(threads) + " /usr/bin/python3 " + std::string(TL_SOURCE_DIR) +
                          "/bench/reference/engine_reference.py " + dir + " " + std::to_string(threads) + " " +
                          std::to_string(prefill_n) + " " + std::to_string(decode_n) + " " + std::to_string(reps) +
                          " --serve";
  RefProcess refp(cmd);
  nlohmann::json ref = nlohmann::json::parse(refp.ok() ? refp.read_line() : std::string(), nullptr, false);
  if (ref.is_discarded() || !ref.contains("sgemm_gflops")) {
    std::fprintf(stderr, "error: the PyTorch reference did not start (%s)\n", cmd.c_str());
    return 1;
  }
  auto ref_run = [&](const char* what) {
    double v = 0;
    std::string answer;
    if (!refp.ask_number(what, &v, &answer)) {
      std::fprintf(stderr, "error: the PyTorch reference failed on '%s': %s\n", what, answer.c_str());
      std::exit(1);
    }
    return v;
  };
  std::vector<double> prefill, decode, ref_prefills, ref_decodes, prefill_ratio, decode_ratio;
  std::vector<float> logits;
  {
    KvCache warm(model->config(), 64);
    (void)model->forward(std::span<const int32_t>(ids.data(), 32), warm, logits, false);
  }
  for (int r = 0; r < reps; ++r) {
    KvCache cache(model->config(), prefill_n);
    auto t = clk::now();
    Status st = model->forward(ids, cache, logits, false);
    if (!st.is_ok()) return 1;
    prefill.push_back(prefill_n / seconds_since(t));
    ref_prefills.push_back(ref_run("prefill"));
    prefill_ratio.push_back(prefill.back() / ref_prefills.back());
  }
  for (int r = 0; r < reps; ++r) {
    GenerateOptions opt;
    opt.max_tokens = decode_n + 1;
    opt.stop_ids = {-1};
    auto g = generate(*model, std::span<const int32_t>(ids.data(), 64), opt);
    if (!g.is_ok()) return 1;
    decode.push_back(decode_n / g->decode_seconds);
    ref_decodes.push_back(ref_run("decode"));
    decode_ratio.push_back(decode.back() / ref_decodes.back());
  }
  const double ref_prefill = median(ref_prefills), ref_decode = median(ref_decodes);
  const double weight_bytes = static_cast<double>(cfg.parameter_count()) * 4.0;
  const double bound = bw * 1e9 / weight_bytes;
  const double read_bound = read_bw * 1e9 / weight_bytes;
  const double our_prefill = median(prefill), our_decode = median(decode);

  std::printf("sgemm 2048^3: tuneloop %.0f GFLOP/s | PyTorch %.0f GFLOP/s (%sOMP_WAIT_POLICY=PASSIVE: its fastest)\n",
              our_gflops, ref["sgemm_gflops"].get<double>(), reference_coretype_env().c_str());
  std::printf("copy bandwidth %.1f GB/s (read+write), read bandwidth %.1f GB/s; weights %.0f MB/token\n", bw,
              read_bw, weight_bytes / 1e6);
  std::printf("decode bound: %.1f tokens/s from copy bandwidth, %.1f tokens/s from read bandwidth\n", bound,
              read_bound);
  std::printf("%-22s %12s %12s %8s\n", "median of runs", "tuneloop", "PyTorch", "ratio");
  std::printf("%-22s %12.1f %12.1f %7.2fx\n", "prefill 512 tok/s", our_prefill, ref_prefill, median(prefill_ratio));
  std::printf("%-22s %12.1f %12.1f %7.2fx\n", "decode tok/s", our_decode, ref_decode, median(decode_ratio));
  std::printf("(runs interleaved with the reference's; ratio = median of the %d pairs' ratios)\n", reps);
  std::printf("decode vs bandwidth bound: %.0f%% of the copy bound, %.0f%% of the read bound\n",
              100.0 * our_decode / bound, 100.0 * our_decode / read_bound);
  std::printf("runs: prefill [");
  for (double v : prefill) std::printf(" %.0f", v);
  std::printf(" ] decode [");
  for (double v : decode) std::printf(" %.1f", v);
  std::printf(" ]\n");
  std::printf("pair ratios: prefill [");
  for (double v : prefill_ratio) std::printf(" %.2f", v);
  std::printf(" ] decode [");
  for (double v : decode_ratio) std::printf(" %.2f", v);
  std::printf(" ]\n");
  return 0;
}
