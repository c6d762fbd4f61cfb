// Model: a Llama-family transformer loaded from a Hugging Face directory, with the inference forward.
//
// Weights are held in f32 (bf16/f16 checkpoints are converted once at load; f32 ones are used straight
// from the memory map where possible). q/k/v and gate/up projections are fused into one matrix each at
// load, so a layer is four GEMMs. The forward appends to a KvCache: a prompt is one call (prefill), each
// generated token another (decode), and both give the same logits as a full-sequence pass.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::Model model, tl::Model::load("models/qwen2.5-0.5b"));
//   tl::KvCache cache(model.config(), 4096);
//   std::vector<float> logits;                       // (T, vocab) or (1, vocab)
//   TL_TRY(model.forward(ids, cache, logits, /*all_logits=*/true));
//   std::vector<float> hidden;                       // (T, hidden): final-norm output, for embeddings
//   TL_TRY(model.hidden_states(ids, hidden));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "tensor/matmul.h"
#include "tensor/nf4.h"
#include "tensor/tensor.h"

namespace tl {

// One decoder layer's parameters, all f32. Shapes with C = hidden, D = head_dim, H/KV = heads,
// I = intermediate.
struct LayerWeights {
  Tensor attn_norm;  // (C)
  Tensor wqkv;       // ((H + 2 KV) D, C): q rows, then k rows, then v rows
  Tensor bqkv;       // ((H + 2 KV) D) or empty
  Tensor wo;         // (C, H D)
  Tensor bo;         // (C) or empty
  Tensor q_norm;     // (D) or empty (qwen3)
  Tensor k_norm;     // (D) or empty (qwen3)
  Tensor mlp_norm;   // (C)
  Tensor w_gate_up;  // (2 I, C): gate rows, then up rows
  Tensor b_gate_up;  // (2 I) or empty
  Tensor w_down;     // (C, I)
  Tensor b_down;     // (C) or empty
  // QLoRA: the four projection matrices stored as NF4 instead (the f32 tensors above are then empty);
  // they are dequantised one layer at a time when used, never all at once.
  std::shared_ptr<const Nf4Tensor> nf4_wqkv, nf4_wo, nf4_w_gate_up, nf4_w_down;
  // The four f32 matrices packed for our GEMM (tensor/packed.h), used by every forward; empty for NF4
  // layers and once the weights are made writable (full fine-tuning changes them every step). After
  // Model::drop_row_major(), or from Model::load_packed(), the f32 tensors above are empty and these are
  // the only copy.
  std::shared_ptr<const PackedMatrix> packed_wqkv, packed_wo, packed_w_gate_up, packed_w_down;
  // After Model::hold_matrices_bf16() (training.precision: bf16): the four matrices as bf16 AMX tiles
  // (tensor/amx.h), the only copy.
  std::shared_ptr<const AmxMatrix> amx_wqkv, amx_wo, amx_w_gate_up, amx_w_down;
  // QLoRA under hold_matrices_bf16(): the NF4 matrices stay NF4, each dequantised block multiplied as bf16 tiles.
  bool blocks_on_amx = false;
};

// A layer's four projection matrices as the matmul operands of tensor/matmul.h: f32 tensors as they are,
// NF4 ones (QLoRA) dequantised block by block inside each GEMM, so no f32 copy of a layer ever exists.
class LayerMatrices {
 public:
  explicit LayerMatrices(const LayerWeights& layer);
  const WeightRef& wqkv() const { return wqkv_; }
  const WeightRef& wo() const { return wo_; }
  const WeightRef& w_gate_up() const { return w_gate_up_; }
  const WeightRef& w_down() const { return w_down_; }

 private:
  WeightRef wqkv_, wo_, w_gate_up_, w_down_;
};

struct ModelWeights {
  Tensor embed;       // (V, C); f32, or bf16 in a QLoRA model (frozen, like the projections)
  Tensor final_norm;  // (C)
  Tensor lm_head;     // (V, C); shares storage with embed when tied; f32 or bf16 as embed
  std::shared_ptr<const PackedMatrix> packed_lm_head;  // when lm_head is f32 and the weights are frozen
  std::shared_ptr<const AmxMatrix> amx_lm_head;        // after Model::hold_matrices_bf16()
  bool lm_head_blocks_on_amx = false;                  // ... of an NF4 model: its bf16 head, block by block
  std::vector<LayerWeights> layers;
};

// An f32 or bf16 (V, C) tensor as a matmul operand (with its packed copy when given).
WeightRef weight_ref(const Tensor& t, const PackedMatrix* packed = nullptr);
// The LM head as a matmul operand, in whichever form the model holds it (f32, packed, bf16, AMX tiles).
WeightRef head_ref(const ModelWeights& w);

class Model {
 public:
  static Result<Model> load(const std::string& dir);
  // QLoRA loading: each layer's projections are quantised to NF4 as the layer is read, and the file
  // pages they came from are released, so the f32 model never sits in memory whole.
  static Result<Model> load_nf4(const std::string& dir, bool double_quant);
  // Inference and LoRA training (frozen weights): each layer's matrices are packed as the layer is read
  // and their row-major copies freed at once (as drop_row_major() does after load()), so loading never
  // holds a matrix twice.
  static Result<Model> load_packed(const std::string& dir);
  // LoRA training in bf16 (training.precision: bf16; needs bf16_tiles_available()): each layer's matrices go
  // to bf16 AMX tiles as the layer is read and their f32 copies are freed at once, as
  // hold_matrices_bf16() leaves them, without the whole f32 model in memory first.
  static Result<Model> load_bf16(const std::string& dir);
  // For weights about to change (merging an adapter): row-major only, no packed copies to drop again.
  static Result<Model> load_unpacked(const std::string& dir);
  // For tests and benchmarks: a model from a config and weights built in memory.
  static Model from_weights(ModelConfig config, ModelWeights weights);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return *weights_; }
  // Writable weights for full fine-tuning: weights still viewing the file mapping are copied first.
  ModelWeights& mutable_weights();
  // QLoRA: replaces every layer's projection matrices by NF4 (bitsandbytes layout, optional double
  // quantisation) and frees the f32 copies; the frozen embedding (and lm_head) go to bf16, as the compute
  // dtype bitsandbytes' QLoRA keeps them in. Returns the bytes the matrices take now.
  int64_t quantize_nf4(bool double_quant);
  // Packs every f32 projection matrix and the LM head not packed yet (tensor/packed.h) for the forward
  // GEMMs; load() does this. After mutable_weights() (merge_lora, full fine-tuning) the weights are
  // unpacked until this is called again.
  void pack_matrices();
  // Inference and LoRA training (frozen weights): packs each f32 matrix not packed yet and frees its
  // row-major copy (file pages of views are released), one matrix at a time, so the model holds each
  // matrix once, even while this runs; the forward and the input-gradient GEMMs both read the packed
  // copy. Anything that needs them again (mutable_weights, quantize_nf4) rebuilds them from the packed
  // copy first.
  void drop_row_major();
  // Mixed precision for LoRA training and inference on a CPU with AMX or AVX512-BF16 (tensor/amx.h; needs
  // bf16_tiles_available()): every projection matrix and the LM head are rounded to bf16 and held as AMX tiles
  // only; their f32 copies are freed (the tied embedding stays f32 for the lookup). Every GEMM against
  // them is then a bf16 product with f32 sums. An NF4 model (QLoRA) keeps its projections as NF4 and its
  // LM head as bf16, each block packed into tiles just before it is multiplied (NF4 dequantised to
  // f32 first; no second copy of anything). One way: the f32 values are gone, so mutable_weights() and quantize_nf4() may not follow.
  // Returns the bytes of tiles made.
  int64_t hold_matrices_bf16();
  const std::string& source_dtype() const { return source_dtype_; }
  const std::string& dir() const { return dir_; }

  // Runs `tokens` at positions cache.length() ... and appends them to the cache. Writes (T, vocab)
  // logits if all_logits, else the last token's (1, vocab). Errors: ids outside the vocabulary,
  // cache capacity exceeded.
  Status forward(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& logits, bool all_logits) const;

  // The same pass without the LM head: writes (T, hidden) = the final RMSNorm's output for every token,
  // so `out` (T, C) times lm_head^T (C, V) is forward()'s all_logits. Runs at positions
  // cache.length() ... and appends to the cache, as forward() does; same errors.
  Status hidden_states(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& out) const;
  // One self-contained sequence (a fresh cache sized to it): what embedders (mean pooling) want.
  Status hidden_states(std::span<const int32_t> tokens, std::vector<float>& out) const;

 private:
  // The decoder stack shared by forward() and hidden_states(): checks the request, runs every layer on
  // `tokens` and leaves the residual stream before the final norm in `x` (T, C). Only the last
  // `out_rows` rows of x are wanted: the last layer still writes every token's K and V to the cache,
  // but runs attention, o_proj and the MLP for those rows alone (as llama.cpp does), so a prefill
  // for generation skips T - 1 rows of its last layer; the other rows of x are left one layer short.
  // The rows it does compute are bit-identical to a full run (every value is one FMA chain whatever
  // the rows around it).
  Status run_layers(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& x, int64_t out_rows) const;

  enum class Storage { kRowMajor, kPacked, kUnpacked, kNf4, kBf16 };
  static Result<Model> load_impl(const std::string& dir, Storage storage, bool double_quant);
  // Rebuilds row-major matrices dropped by drop_row_major() from their packed copies.
  void restore_row_major();

  ModelConfig config_;
  std::shared_ptr<ModelWeights> weights_;
  std::vector<float> inv_freq_;
  std::string source_dtype_;
  std::string dir_;
};

}  // namespace tl
