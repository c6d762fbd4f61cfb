#include "model/merge.h"

#include "tensor/blas.h"

namespace tl {

Status merge_lora(Model& model, const LoraWeights& lora, const LoraConfig& config) {
  const ModelConfig& c = model.config();
  if (static_cast<int64_t>(lora.layers.size()) != c.num_layers)
    return invalid_argument("adapter has {} layers, the model {}", lora.layers.size(), c.num_layers);
  ModelWeights& w = model.mutable_weights();
  const float s = static_cast<float>(config.scaling());
  const int64_t HD = c.q_dim(), KVD = c.kv_dim(), I = c.intermediate_size;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    for (int t = 0; t < kLoraTargetCount; ++t) {
      const LoraModule& m = lora.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (m.a.empty()) continue;
      Tensor* dst = nullptr;
      int64_t row0 = 0;
      switch (static_cast<LoraTarget>(t)) {
        case LoraTarget::kQ: dst = &L.wqkv; break;
        case LoraTarget::kK: dst = &L.wqkv; row0 = HD; break;
        case LoraTarget::kV: dst = &L.wqkv; row0 = HD + KVD; break;
        case LoraTarget::kO: dst = &L.wo; break;
        case LoraTarget::kGate: dst = &L.w_gate_up; break;
        case LoraTarget::kUp: dst = &L.w_gate_up; row0 = I; break;
        case LoraTarget::kDown: dst = &L.w_down; break;
      }
      const int64_t out = m.b.dim(0), in = m.a.dim(1), r = m.a.dim(0);
      if (in != dst->dim(1)) return invalid_argument("adapter {} of layer {} does not fit the model", lora_target_name(static_cast<LoraTarget>(t)), l);
      // dst[row0 : row0 + out] += s * B (out, r) A (r, in)
      sgemm(false, false, static_cast<int>(out), static_cast<int>(in), static_cast<int>(r), s, m.b.f32(),
            static_cast<int>(r), m.a.f32(), static_cast<int>(in), 1.0f, dst->f32() + row0 * in, static_cast<int>(in));
    }
  }
  return Status::ok();
}

}  // namespace tl
