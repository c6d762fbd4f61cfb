// `tuneloop quantize MODEL_DIR --type nf4 [--no-double-quant] --out DIR`: a bitsandbytes 4-bit checkpoint.
//
// Every linear weight of the decoder layers becomes the tensors bitsandbytes' Params4bit serialises
// (QuantState.as_dict(packed=True)): `W` (uint8, [(n+1)/2, 1]), `W.absmax`, `W.quant_map`, with double
// quantisation `W.nested_absmax` and `W.nested_quant_map`, and `W.quant_state.bitsandbytes__nf4` (the
// remaining fields as json.dumps text, one byte per uint8 element). Embeddings, norms, biases and lm_head
// are copied as they are, as transformers leaves them; config.json gains the `quantization_config`
// transformers writes for load_in_4bit; tokenizer files are copied. Every file is written atomically, and
// the weights file last but for config.json, so an interrupted run leaves no directory that claims to be
// complete.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "tensor/nf4.h"

namespace tl::cli {

namespace {

using json = nlohmann::json;

// Python's repr(float): the shortest round-trip digits, fixed notation for exponents in [-4, 16),
// otherwise d.ddde[+-]XX. json.dumps writes floats this way, and the packed quant state is json.dumps text.
std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string s(buf, r.ptr);
  std::string sign;
  if (s[0] == '-') sign = "-", s = s.substr(1);
  const size_t e = s.find('e');
  std::string digits = s.substr(0, e);
  const int exp = std::stoi(s.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return sign + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    const size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) return sign + digits + std::string(int_len - digits.size(), '0') + ".0";
    return sign + digits.substr(0, int_len) + "." + digits.substr(int_len);
  }
  std::string mant = digits.size() > 1 ? digits.substr(0, 1) + "." + digits.substr(1) : digits;
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return sign + mant + ebuf;
}

std::string torch_dtype_name(const std::string& st_dtype) {
  if (st_dtype == "BF16") return "bfloat16";
  if (st_dtype == "F16") return "float16";
  return "float32";
}

// Linear projections live under model.layers.N as rank-2 `*_proj.weight`; everything else is kept.
bool is_linear_weight(const std::string& name, const safetensors::RawTensor& t) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return name.rfind("model.layers.", 0) == 0 && ends_with("_proj.weight") && t.shape.size() == 2;
}

// Owned bytes for the tensors we create; RawTensor spans point into these.
struct Blob {
  std::vector<uint8_t> bytes;
};

template <typename T>
safetensors::RawTensor raw_of(std::vector<Blob>& keep, const std::string& dtype, std::vector<int64_t> shape,
                              const T* data, size_t count) {
  Blob b;
  b.bytes.resize(count * sizeof(T));
  if (count) std::memcpy(b.bytes.data(), data, b.bytes.size());
  keep.push_back(std::move(b));
  return {dtype, std::move(shape), {keep.back().bytes.data(), keep.back().bytes.size()}, nullptr};
}

const char* kTokenizerFiles[] = {"tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json",
                                 "generation_config.json", "tokenizer.model",       "vocab.json",
                                 "merges.txt",             "added_tokens.json",     "chat_template.jinja"};

}  // namespace

Status cmd_quantize(const Argv& argv) {
  TL_ASSIGN_OR_RETURN(Args args, Args::parse(argv, {"--type", "--out"}, {"--no-double-quant"}));
  if (args.positionals().size() != 1) return invalid_argument("quantize: expected one MODEL_DIR");
  const std::string model_dir = args.positionals()[0];
  TL_ASSIGN_OR_RETURN(std::string type, args.require("--type"));
  TL_ASSIGN_OR_RETURN(std::string out, args.require("--out"));
  if (type != "nf4") return invalid_argument("quantize: --type '{}' is not supported (expected nf4)", type);
  const bool double_quant = !args.has("--no-double-quant");

  std::error_code ec;
  if (std::filesystem::exists(out, ec) && std::filesystem::equivalent(out, model_dir, ec)) {
    return invalid_argument("quantize: --out {} is the model directory itself; choose a new directory", out);
  }
  TL_ASSIGN_OR_RETURN(std::string config_text, read_file(model_dir + "/config.json"));
  json config = json::parse(config_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return data_loss("{}/config.json: expected a JSON object", model_dir);
  }
  if (config.contains("quantization_config")) {
    return invalid_argument("{}: the model is already quantised (config.json has quantization_config)", model_dir);
  }
  TL_ASSIGN_OR_RETURN(safetensors::ShardedFiles files, safetensors::ShardedFiles::open(model_dir));

  std::vector<Blob> keep;
  keep.reserve(files.names().size() * 6 + 2);  // spans point into `keep`; no reallocation allowed
  const auto& code = nf4_code();
  const auto& map = nf4_dynamic_map();
  std::vector<std::pair<std::string, safetensors::RawTensor>> outputs;
  std::string compute_dtype;
  int quantised = 0;
  for (const std::string& name : files.names()) {
    TL_ASSIGN_OR_RETURN(safetensors::RawTensor src, files.raw(name));
    if (!is_linear_weight(name, src)) {
      outputs.emplace_back(name, src);
      continue;
    }
    TL_ASSIGN_OR_RETURN(Tensor w, files.tensor(name));
    if (compute_dtype.empty()) compute_dtype = torch_dtype_name(src.dtype);
    Tensor f = w.to_f32();
    Nf4Tensor q = nf4_quantize(f.f32(), f.numel(), double_quant);
    const int64_t bytes = static_cast<int64_t>(q.packed.size());
    outputs.emplace_back(name, raw_of(keep, "U8", {bytes, 1}, q.packed.data(), q.packed.size()));
    if (double_quant) {
      outputs.emplace_back(name + ".absmax", raw_of(keep, "U8", {q.blocks()}, q.absmax_q.data(), q.absmax_q.size()));
    } else {
      outputs.emplace_back(name + ".absmax", raw_of(keep, "F32", {q.blocks()}, q.absmax.data(), q.absmax.size()));
    }
    outputs.emplace_back(name + ".quant_map", raw_of(keep, "F32", {16}, code.data(), code.size()));
    // QuantState.as_dict: the non-tensor fields, in its key order, as json.dumps writes them.
    std::string state = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"" + torch_dtype_name(src.dtype) +
                        "\", \"shape\": [" + std::to_string(src.shape[0]) + ", " + std::to_string(src.shape[1]) + "]";
    if (double_quant) {
      const int64_t nested = static_cast<int64_t>(q.nested_absmax.size());
      outputs.emplace_back(name + ".nested_absmax",
                           raw_of(keep, "F32", {nested}, q.nested_absmax.data(), q.nested_absmax.size()));
      outputs.emplace_back(name + ".nested_quant_map", raw_of(keep, "F32", {256}, map.data(), map.size()));
      state += ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": " +
               python_float_repr(static_cast<double>(q.offset));
    }
    state += "}";
    outputs.emplace_back(name + ".quant_state.bitsandbytes__nf4",
                         raw_of(keep, "U8", {static_cast<int64_t>(state.size())},
                                reinterpret_cast<const uint8_t*>(state.data()), state.size()));
    ++quantised;
  }
  if (quantised == 0) {
    return invalid_argument("{}: no linear weights (model.layers.*_proj.weight) to quantise", model_dir);
  }

  std::filesystem::create_directories(out, ec);
  if (ec) return invalid_argument("quantize: cannot create --out {}: {}", out, ec.message());
  for (const char* file : kTokenizerFiles) {
    const std::string from = model_dir + "/" + file;
    if (!file_exists(from)) continue;
    TL_ASSIGN_OR_RETURN(std::string text, read_file(from));
    TL_TRY(write_file_atomic(out + "/" + file, text));
  }
  TL_TRY(safetensors::write_raw(out + "/model.safetensors", outputs, {{"format", "pt"}}));
  // BitsAndBytesConfig.to_dict() for load_in_4bit, the keys transformers writes.
  config["quantization_config"] = {
      {"_load_in_4bit", true},
      {"_load_in_8bit", false},
      {"bnb_4bit_compute_dtype", compute_dtype},
      {"bnb_4bit_quant_storage", "uint8"},
      {"bnb_4bit_quant_type", "nf4"},
      {"bnb_4bit_use_double_quant", double_quant},
      {"llm_int8_enable_fp32_cpu_offload", false},
      {"llm_int8_has_fp16_weight", false},
      {"llm_int8_skip_modules", nullptr},
      {"llm_int8_threshold", 6.0},
      {"load_in_4bit", true},
      {"load_in_8bit", false},
      {"quant_method", "bitsandbytes"}};
  TL_TRY(write_file_atomic(out + "/config.json", config.dump(2) + "\n"));
  std::fprintf(stderr, "quantised %d linear weights to nf4%s in %s\n", quantised,
               double_quant ? " (double quant)" : "", out.c_str());
  return Status::ok();
}

}  // namespace tl::cli
