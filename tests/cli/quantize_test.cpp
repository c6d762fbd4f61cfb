// `tuneloop quantize`: the llama_f32 fixture quantised to NF4 (with and without double quantisation),
// reloaded from the written safetensors, dequantised, and compared bit for bit with the reference
// (tests/reference/nf4_reference.py --models); the layout and quant-state JSON that bitsandbytes reads;
// and bad input failing with one specific `error:` line.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "run_tuneloop.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tensor/nf4.h"

namespace tl {
namespace {

using tl::cli_test::Outcome;
Outcome run(const std::string& args, bool stdout_only = false) { return tl::cli_test::run_tuneloop(args, stdout_only); }

const std::string kModel = std::string(TL_FIXTURES_DIR) + "/models/llama_f32";
const std::string kExpected = std::string(TL_FIXTURES_DIR) + "/nf4/llama_f32.safetensors";

std::string temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("tl_quantize_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

template <typename T>
std::vector<T> bytes_as(const safetensors::RawTensor& r) {
  std::vector<T> v(r.bytes.size() / sizeof(T));
  std::memcpy(v.data(), r.bytes.data(), r.bytes.size());
  return v;
}

template <typename T>
std::vector<T> load(const safetensors::File& f, const std::string& name) {
  auto r = f.raw(name);
  EXPECT_TRUE(r.is_ok()) << name;
  return r.is_ok() ? bytes_as<T>(r.value()) : std::vector<T>{};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Rebuilds an Nf4Tensor from the bitsandbytes tensors of `name` in the written file.
Nf4Tensor reload(const safetensors::File& f, const std::string& name, bool double_quant) {
  Nf4Tensor t;
  t.packed = load<uint8_t>(f, name);
  auto state = nlohmann::json::parse(load<char>(f, name + ".quant_state.bitsandbytes__nf4"));
  t.numel = state["shape"][0].get<int64_t>() * state["shape"][1].get<int64_t>();
  t.double_quant = double_quant;
  if (double_quant) {
    t.absmax_q = load<uint8_t>(f, name + ".absmax");
    t.nested_absmax = load<float>(f, name + ".nested_absmax");
    t.offset = state["nested_offset"].get<float>();
    auto map = load<float>(f, name + ".nested_quant_map");
    EXPECT_EQ(map.size(), 256u);
    std::copy(map.begin(), map.end(), t.nested_map.begin());
  } else {
    t.absmax = load<float>(f, name + ".absmax");
  }
  return t;
}

TEST(Quantize, DoubleQuantMatchesTheReferenceBitForBit) {
  const std::string out = temp_dir("dq");
  Outcome r = run("quantize " + kModel + " --type nf4 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto written = safetensors::File::open(out + "/model.safetensors");
  ASSERT_TRUE(written.is_ok()) << written.status().message();
  auto expected = safetensors::File::open(kExpected);
  ASSERT_TRUE(expected.is_ok()) << expected.status().message();
  const auto& w = written.value();
  const auto& e = expected.value();

  int checked = 0;
  for (const auto& info : e.tensors()) {
    const std::string suffix = ".dequant";
    if (info.name.size() < suffix.size() || info.name.compare(info.name.size() - suffix.size(), suffix.size(), suffix))
      continue;
    if (info.name.find(".plain_dequant") != std::string::npos) continue;
    const std::string name = info.name.substr(0, info.name.size() - suffix.size());
    SCOPED_TRACE(name);
    auto packed = w.raw(name);
    ASSERT_TRUE(packed.is_ok());
    EXPECT_EQ(packed.value().dtype, "U8");
    EXPECT_EQ(packed.value().shape, (std::vector<int64_t>{static_cast<int64_t>(packed.value().bytes.size()), 1}));
    EXPECT_EQ(load<uint8_t>(w, name), load<uint8_t>(e, name));
    EXPECT_EQ(load<uint8_t>(w, name + ".absmax"), load<uint8_t>(e, name + ".absmax"));
    EXPECT_TRUE(same_bits(load<float>(w, name + ".nested_absmax"), load<float>(e, name + ".nested_absmax")));
    // The quant state is the exact json.dumps text bitsandbytes would write.
    auto state = load<char>(w, name + ".quant_state.bitsandbytes__nf4");
    auto want = load<char>(e, name + ".quant_state.bitsandbytes__nf4");
    EXPECT_EQ(std::string(state.begin(), state.end()), std::string(want.begin(), want.end()));
    EXPECT_EQ(load<float>(w, name + ".quant_map").size(), 16u);

    Nf4Tensor t = reload(w, name, true);
    std::vector<float> deq(static_cast<size_t>(t.numel));
    nf4_dequantize(deq.data(), t, 0, t.numel);
    EXPECT_TRUE(same_bits(deq, load<float>(e, info.name))) << "dequantised values differ";
    ++checked;
  }
  EXPECT_EQ(checked, 7 * 2);  // llama_f32: 2 layers x 7 projections

  // Kept as they are: embeddings, norms, lm_head.
  auto src = safetensors::File::open(kModel + "/model.safetensors");
  ASSERT_TRUE(src.is_ok());
  for (const char* kept : {"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight"}) {
    auto a = src.value().raw(kept);
    auto b = w.raw(kept);
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << kept;
    EXPECT_EQ(a.value().dtype, b.value().dtype);
    EXPECT_EQ(bytes_as<uint8_t>(a.value()), bytes_as<uint8_t>(b.value())) << kept;
  }
  std::ifstream cfg(out + "/config.json");
  auto config = nlohmann::json::parse(cfg);
  EXPECT_EQ(config["quantization_config"]["quant_method"], "bitsandbytes");
  EXPECT_EQ(config["quantization_config"]["bnb_4bit_quant_type"], "nf4");
  EXPECT_EQ(config["quantization_config"]["bnb_4bit_use_double_quant"], true);
  EXPECT_TRUE(std::filesystem::exists(out + "/tokenizer.json") ==
              std::filesystem::exists(kModel + "/tokenizer.json"));
  std::filesystem::remove_all(out);
}

TEST(Quantize, WithoutDoubleQuantStoresFp32Absmax) {
  const std::string out = temp_dir("plain");
  Outcome r = run("quantize " + kModel + " --type nf4 --no-double-quant --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto written = safetensors::File::open(out + "/model.safetensors");
  auto expected = safetensors::File::open(kExpected);
  ASSERT_TRUE(written.is_ok() && expected.is_ok());
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  auto absmax = written.value().raw(name + ".absmax");
  ASSERT_TRUE(absmax.is_ok());
  EXPECT_EQ(absmax.value().dtype, "F32");
  EXPECT_FALSE(written.value().find(name + ".nested_absmax"));
  Nf4Tensor t = reload(written.value(), name, false);
  std::vector<float> deq(static_cast<size_t>(t.numel));
  nf4_dequantize(deq.data(), t, 0, t.numel);
  EXPECT_TRUE(same_bits(deq, load<float>(expected.value(), name + ".plain_dequant")));
  auto state = load<char>(written.value(), name + ".quant_state.bitsandbytes__nf4");
  EXPECT_EQ(std::string(state.begin(), state.end()).find("nested"), std::string::npos);
  std::filesystem::remove_all(out);
}

TEST(Quantize, BadInputIsOneErrorLine) {
  const std::string out = temp_dir("bad");
  Outcome r = run("quantize " + kModel + " --type int3 --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out, "error: quantize: --type 'int3' is not supported (expected nf4)\n");
  EXPECT_FALSE(std::filesystem::exists(out));
  Outcome missing = run("quantize " + kModel + " --out " + out);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("--type"), std::string::npos) << missing.out;
  Outcome same = run("quantize " + kModel + " --type nf4 --out " + kModel);
  EXPECT_NE(same.code, 0);
  EXPECT_NE(same.out.find("is the model directory itself"), std::string::npos) << same.out;
}

}  // namespace
}  // namespace tl
