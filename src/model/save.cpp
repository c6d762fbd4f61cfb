#include "model/save.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/file.h"
#include "io/safetensors.h"

namespace tl {

namespace {
// Rows [row0, row0 + rows) of a 1-D or 2-D tensor as a new tensor.
Tensor rows_of(const Tensor& t, int64_t row0, int64_t rows) {
  std::vector<int64_t> shape = t.shape();
  const int64_t cols = t.rank() == 2 ? shape[1] : 1;
  shape[0] = rows;
  Tensor out = Tensor::zeros(DType::kF32, shape);
  std::memcpy(out.f32(), t.f32() + row0 * cols, static_cast<size_t>(rows * cols) * 4);
  return out;
}
}  // namespace

Status save_hf_weights(const std::string& path, const ModelWeights& w, const ModelConfig& c) {
  std::vector<std::pair<std::string, Tensor>> owned;
  auto add = [&](const std::string& name, const Tensor& t) { owned.emplace_back(name, t); };
  add("model.embed_tokens.weight", w.embed);
  add("model.norm.weight", w.final_norm);
  if (!c.tie_word_embeddings) add("lm_head.weight", w.lm_head);
  const int64_t HD = c.q_dim(), KVD = c.kv_dim(), I = c.intermediate_size;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", L.attn_norm);
    add(p + "post_attention_layernorm.weight", L.mlp_norm);
    add(p + "self_attn.q_proj.weight", rows_of(L.wqkv, 0, HD));
    add(p + "self_attn.k_proj.weight", rows_of(L.wqkv, HD, KVD));
    add(p + "self_attn.v_proj.weight", rows_of(L.wqkv, HD + KVD, KVD));
    if (!L.bqkv.empty()) {
      add(p + "self_attn.q_proj.bias", rows_of(L.bqkv, 0, HD));
      add(p + "self_attn.k_proj.bias", rows_of(L.bqkv, HD, KVD));
      add(p + "self_attn.v_proj.bias", rows_of(L.bqkv, HD + KVD, KVD));
    }
    add(p + "self_attn.o_proj.weight", L.wo);
    if (!L.bo.empty()) add(p + "self_attn.o_proj.bias", L.bo);
    if (!L.q_norm.empty()) {
      add(p + "self_attn.q_norm.weight", L.q_norm);
      add(p + "self_attn.k_norm.weight", L.k_norm);
    }
    add(p + "mlp.gate_proj.weight", rows_of(L.w_gate_up, 0, I));
    add(p + "mlp.up_proj.weight", rows_of(L.w_gate_up, I, I));
    add(p + "mlp.down_proj.weight", L.w_down);
    if (!L.b_gate_up.empty()) {
      add(p + "mlp.gate_proj.bias", rows_of(L.b_gate_up, 0, I));
      add(p + "mlp.up_proj.bias", rows_of(L.b_gate_up, I, I));
      add(p + "mlp.down_proj.bias", L.b_down);
    }
  }
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [n, t] : owned) refs.emplace_back(n, &t);
  std::sort(refs.begin(), refs.end());
  return safetensors::write(path, refs, {{"format", "pt"}});
}

Status copy_model_metadata(const std::string& src_dir, const std::string& dst_dir) {
  std::error_code ec;
  std::filesystem::create_directories(dst_dir, ec);
  if (ec) return io_error("{}: cannot create directory: {}", dst_dir, ec.message());
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "chat_template.jinja"}) {
    const std::string src = src_dir + "/" + f;
    if (!file_exists(src)) continue;
    TL_ASSIGN_OR_RETURN(std::string text, read_file(src));
    TL_TRY(write_file_atomic(dst_dir + "/" + f, text));
  }
  return Status::ok();
}

}  // namespace tl
