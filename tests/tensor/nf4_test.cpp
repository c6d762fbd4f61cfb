// NF4 + double quantisation against tests/reference/nf4_reference.py, bit for bit: the code tables, the
// packed bytes, the fp32 and 8-bit absmax, the nested absmax and offset, and the dequantised values of
// every case (random tensors, zeros, values exactly on the decision thresholds, denormal to near-FLT_MAX
// scales, odd sizes, several nested blocks with a partial last one, all-equal absmax). Also: the AVX2
// dequantiser equals the naive one on every sub-range.
#include "tensor/nf4.h"

#include <gtest/gtest.h>

#include <cstring>
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

TEST_F(Nf4Reference, QuantizeWithoutDoubleQuantIsBitExact) {
  ASSERT_GE(cases_.size(), 8u);
  for (const auto& c : cases_) {
    SCOPED_TRACE(c);
    auto x = load<float>(*file_, c + ".input");
    Nf4Tensor q = nf4_quantize(x.data(), static_cast<int64_t>(x.size()), false);
    expect_same_bytes(q.packed, load<uint8_t>(*file_, c + ".packed"), "packed");
    expect_same_bits(q.absmax, load<float>(*file_, c + ".absmax"), "absmax");
    std::vector<float> out(x.size());
    nf4_dequantize(out.data(), q, 0, static_cast<int64_t>(x.size()));
    expect_same_bits(out, load<float>(*file_, c + ".dequant"), "dequant");
  }
}

TEST_F(Nf4Reference, DoubleQuantIsBitExact) {
  for (const auto& c : cases_) {
    SCOPED_TRACE(c);
    auto x = load<float>(*file_, c + ".input");
    Nf4Tensor q = nf4_quantize(x.data(), static_cast<int64_t>(x.size()), true);
    expect_same_bytes(q.packed, load<uint8_t>(*file_, c + ".packed"), "packed");
    expect_same_bytes(q.absmax_q, load<uint8_t>(*file_, c + ".dq.absmax"), "quantised absmax");
    expect_same_bits(q.nested_absmax, load<float>(*file_, c + ".dq.nested_absmax"), "nested_absmax");
    expect_same_bits({q.offset}, load<float>(*file_, c + ".dq.offset"), "offset");
    std::vector<float> out(x.size());
    nf4_dequantize(out.data(), q, 0, static_cast<int64_t>(x.size()));
    expect_same_bits(out, load<float>(*file_, c + ".dq.dequant"), "dequant");
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
        for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
          if (!cpu_supports(isa)) continue;
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

}  // namespace
}  // namespace tl
