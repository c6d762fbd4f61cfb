// NF4 + double quantisation against tests/reference/nf4_reference.py, bit for bit: the code tables, the
// packed bytes, the fp32 and 8-bit absmax, the nested absmax and offset, and the dequantised values of
// every case (random tensors, zeros, values exactly on the decision thresholds, denormal to near-FLT_MAX
// scales, odd sizes, several nested blocks with a partial last one, all-equal absmax), for every ISA the
// CPU has. Also: every ISA's dequantiser equals the naive one on every sub-range, and its quantiser the
// scalar one on NaN, infinities and ties.
#include "tensor/nf4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace tl {
namespace {

const std::string kCases = std::string(TL_FIXTURES_DIR) + "/nf4/cases.safetensors";

template <typename T>
std::vector<T> load(const safetensors::File& f, const std::string& name) {
  auto r = f.raw(name);
  EXPECT_TRUE(r.is_ok()) << name;
  if (!r.is_ok()) return {};
  std::vector<T> v(r.value().bytes.size() / sizeof(T));
  std::memcpy(v.data(), r.value().bytes.data(), r.value().bytes.size());
  return v;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Bitwise float comparison (so -0 vs 0 and NaN payloads count), reporting the first difference.
void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (bits(got[i]) != bits(want[i])) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want[i];
      return;
    }
  }
}

void expect_same_bytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << "[" << i << "]: got " << int(got[i]) << " want " << int(want[i]);
      return;
    }
  }
}

class Nf4Reference : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = safetensors::File::open(kCases);
    ASSERT_TRUE(f.is_ok()) << f.status().message() << " (run the reference_nf4_fixtures test first)";
    file_ = std::make_unique<safetensors::File>(std::move(f).value());
    std::string list = file_->metadata().at("cases");
    for (size_t p = 0; p <= list.size();) {
      size_t q = list.find(',', p);
      if (q == std::string::npos) q = list.size();
      cases_.push_back(list.substr(p, q - p));
      p = q + 1;
    }
  }
  std::unique_ptr<safetensors::File> file_;
  std::vector<std::string> cases_;
};

TEST_F(Nf4Reference, CodeTablesMatch) {
  auto code = load<float>(*file_, "nf4_code");
  auto map = load<float>(*file_, "dynamic_map");
  expect_same_bits(std::vector<float>(nf4_code().begin(), nf4_code().end()), code, "nf4_code");
  expect_same_bits(std::vector<float>(nf4_dynamic_map().begin(), nf4_dynamic_map().end()), map, "dynamic_map");
}

// The ISAs this CPU runs: nf4_quantize and nf4_dequantize have a vector path for each.
std::vector<Isa> isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (cpu_supports(isa)) v.push_back(isa);
  return v;
}

TEST_F(Nf4Reference, QuantizeWithoutDoubleQuantIsBitExact) {
  ASSERT_GE(cases_.size(), 8u);
  for (Isa isa : isas()) {
    for (const auto& c : cases_) {
      SCOPED_TRACE(c + " " + isa_name(isa));
      auto x = load<float>(*file_, c + ".input");
      Nf4Tensor q = nf4_quantize(x.data(), static_cast<int64_t>(x.size()), false, isa);
      expect_same_bytes(q.packed, load<uint8_t>(*file_, c + ".packed"), "packed");
      expect_same_bits(q.absmax, load<float>(*file_, c + ".absmax"), "absmax");
      std::vector<float> out(x.size());
      nf4_dequantize(out.data(), q, 0, static_cast<int64_t>(x.size()));
      expect_same_bits(out, load<float>(*file_, c + ".dequant"), "dequant");
    }
  }
}

TEST_F(Nf4Reference, DoubleQuantIsBitExact) {
  for (Isa isa : isas()) {
    for (const auto& c : cases_) {
      SCOPED_TRACE(c + " " + isa_name(isa));
      auto x = load<float>(*file_, c + ".input");
      Nf4Tensor q = nf4_quantize(x.data(), static_cast<int64_t>(x.size()), true, isa);
      expect_same_bytes(q.packed, load<uint8_t>(*file_, c + ".packed"), "packed");
      expect_same_bytes(q.absmax_q, load<uint8_t>(*file_, c + ".dq.absmax"), "quantised absmax");
      expect_same_bits(q.nested_absmax, load<float>(*file_, c + ".dq.nested_absmax"), "nested_absmax");
      expect_same_bits({q.offset}, load<float>(*file_, c + ".dq.offset"), "offset");
      std::vector<float> out(x.size());
      nf4_dequantize(out.data(), q, 0, static_cast<int64_t>(x.size()));
      expect_same_bits(out, load<float>(*file_, c + ".dq.dequant"), "dequant");
    }
  }
}

TEST(Nf4, FastDequantizeEqualsNaiveOnEveryRange) {
  std::vector<float> w(64 * 9 + 13);
  uint32_t s = 7;
  for (auto& v : w) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(s >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
  }
  for (bool dq : {false, true}) {
    Nf4Tensor q = nf4_quantize(w.data(), static_cast<int64_t>(w.size()), dq);
    const int64_t n = q.numel;
    for (int64_t begin : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{8}, int64_t{63}, int64_t{64}, int64_t{100}}) {
      for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{9}, int64_t{16}, int64_t{31}, int64_t{64}, int64_t{130},
                                  n - begin}) {
        if (begin + count > n) continue;
        std::vector<float> b(static_cast<size_t>(count));
        nf4_dequantize_naive(b.data(), q, begin, count);
        for (Isa isa : isas()) {
          std::vector<float> a(static_cast<size_t>(count));
          nf4_dequantize(a.data(), q, begin, count, isa);
          expect_same_bits(a, b, std::string(isa_name(isa)) + " range " + std::to_string(begin) + "+" +
                                     std::to_string(count));
        }
      }
    }
  }
}

TEST(Nf4, TiesGoToTheLowerCodeAndZeroBlocksToCodeZero) {
  // A value exactly on a threshold is not `>` it, so it takes the lower code.
  EXPECT_EQ(nf4_code_of(0.03979014977812767f), 0b0111);
  EXPECT_EQ(nf4_code_of(0.0f), 0b0111);
  EXPECT_EQ(nf4_code_of(1.0f), 0b1111);
  EXPECT_EQ(nf4_code_of(-1.0f), 0b0000);
  const float zeros[3] = {0.0f, 0.0f, 0.0f};
  Nf4Tensor q = nf4_quantize(zeros, 3, false);
  ASSERT_EQ(q.packed.size(), 2u);
  EXPECT_EQ(q.packed[0], 0x00);  // 0 * (1/0) is NaN, which every `>` rejects
  EXPECT_EQ(q.packed[1], 0x00);
  EXPECT_EQ(q.absmax[0], 0.0f);
}

// Inputs the reference fixtures hold no case of (NaN, infinities) beside the hardest ones they do:
// every ISA's quantiser gives the scalar one's bytes and absmax bits, block by block.
TEST(Nf4, EveryIsaQuantizesOddInputsAsTheScalarPath) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> w;
  const auto block = [&](std::initializer_list<float> head, float fill) {
    std::vector<float> b(head);
    b.resize(static_cast<size_t>(kNf4BlockSize), fill);
    w.insert(w.end(), b.begin(), b.end());
  };
  block({nan, 0.5f, -0.25f}, 0.125f);              // NaN skipped by the absmax, code 0 itself
  block({inf, 1.0f, -1.0f}, 0.0f);                 // absmax inf: finite values scale to 0
  block({-inf, 2.0f}, 1.0f);
  block({nan}, nan);                               // all NaN: absmax 0
  block({-0.0f, 0.0f}, -0.0f);                     // zero block: 0 * inf is NaN, code 0
  block({1.0f, std::numeric_limits<float>::denorm_min()}, -std::numeric_limits<float>::denorm_min());
  // Every threshold exactly, and one ulp either side, against an absmax of 1.
  std::vector<float> th = {1.0f};
  for (float t : {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
                  -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
                  0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
                  0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f})
    for (float v : {std::nextafter(t, -2.0f), t, std::nextafter(t, 2.0f)}) th.push_back(v);
  for (size_t i = 0; i < th.size(); i += static_cast<size_t>(kNf4BlockSize)) {
    std::vector<float> b(th.begin() + static_cast<std::ptrdiff_t>(i),
                         th.begin() + static_cast<std::ptrdiff_t>(std::min(th.size(), i + kNf4BlockSize)));
    if (i > 0) b.insert(b.begin(), 1.0f);
    b.resize(static_cast<size_t>(kNf4BlockSize), 0.5f);
    w.insert(w.end(), b.begin(), b.end());
  }
  uint32_t s = 7;
  for (int i = 0; i < 64 * 40 + 37; ++i) {  // random blocks, then an odd tail
    s = s * 1664525u + 1013904223u;
    w.push_back(static_cast<float>(static_cast<int32_t>(s >> 8) - (1 << 23)) / static_cast<float>(1 << 20));
  }
  const int64_t n = static_cast<int64_t>(w.size());
  for (bool dq : {false, true}) {
    const Nf4Tensor want = nf4_quantize(w.data(), n, dq, Isa::kScalar);
    for (Isa isa : isas()) {
      SCOPED_TRACE(std::string(isa_name(isa)) + (dq ? " double quant" : ""));
      const Nf4Tensor got = nf4_quantize(w.data(), n, dq, isa);
      expect_same_bytes(got.packed, want.packed, "packed");
      expect_same_bits(got.absmax, want.absmax, "absmax");
      expect_same_bytes(got.absmax_q, want.absmax_q, "quantised absmax");
      expect_same_bits(got.nested_absmax, want.nested_absmax, "nested absmax");
      expect_same_bits({got.offset}, {want.offset}, "offset");
    }
  }
  // The scalar path's own answers for the first blocks, so the comparison above is not of two wrong ones.
  const Nf4Tensor q = nf4_quantize(w.data(), n, false, Isa::kScalar);
  EXPECT_EQ(q.absmax[0], 0.5f);
  EXPECT_EQ(q.packed[0] >> 4, 0);  // NaN
  EXPECT_EQ(q.absmax[1], inf);
  EXPECT_EQ(q.packed[32], 0x07);  // inf * (1/inf) = inf * 0 is NaN: code 0; 1 * 0 = 0: code 7
  EXPECT_EQ(q.absmax[3], 0.0f);
  EXPECT_EQ(q.packed[4 * 32], 0x00);
}

}  // namespace
}  // namespace tl
