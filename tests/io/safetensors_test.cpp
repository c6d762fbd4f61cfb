// safetensors reading and writing: round trip, and every kind of damaged file gives a data_loss error
// naming the file and the tensor.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/file.h"

namespace tl::safetensors {
namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
}

// A file from a header JSON text and a data region of `data_bytes` bytes.
std::string make_file(const std::string& header, size_t data_bytes, uint64_t declared_len = UINT64_MAX) {
  std::string out(8, '\0');
  uint64_t n = declared_len == UINT64_MAX ? header.size() : declared_len;
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  out.append(data_bytes, '\x01');
  return out;
}

Status parse(const std::string& bytes) {
  auto h = parse_header(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
                        "x.safetensors");
  return h.status();
}

TEST(Safetensors, RoundTripAllDtypes) {
  Tensor a = Tensor::zeros(DType::kF32, {2, 3});
  for (int i = 0; i < 6; ++i) a.f32()[i] = static_cast<float>(i) * 0.5f - 1.0f;
  Tensor b = Tensor::zeros(DType::kBF16, {3});
  uint16_t* bp = static_cast<uint16_t*>(b.mutable_data());
  bp[0] = f32_to_bf16(1.5f);
  bp[1] = f32_to_bf16(-2.0f);
  bp[2] = f32_to_bf16(3.25f);
  Tensor c = Tensor::zeros(DType::kF16, {1});
  static_cast<uint16_t*>(c.mutable_data())[0] = 0x3c00;  // 1.0 in f16
  const std::string path = tmp_path("roundtrip.safetensors");
  ASSERT_TRUE(write(path, {{"a", &a}, {"b", &b}, {"c", &c}}, {{"format", "pt"}}).is_ok());
  auto f = File::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  auto ta = f->tensor("a");
  ASSERT_TRUE(ta.is_ok());
  EXPECT_EQ(ta->shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ta->data(), a.data(), a.nbytes()), 0);
  auto tb = f->tensor("b")->to_f32();
  EXPECT_EQ(tb.f32()[0], 1.5f);
  EXPECT_EQ(tb.f32()[1], -2.0f);
  EXPECT_EQ(tb.f32()[2], 3.25f);
  EXPECT_EQ(f->tensor("c")->to_f32().f32()[0], 1.0f);
  EXPECT_EQ(f->tensor("zzz").status().code(), StatusCode::kNotFound);
  std::filesystem::remove(path);
}

TEST(Safetensors, TooShort) {
  Status s = parse("abc");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "x.safetensors: file is 3 bytes, too short for a safetensors header (needs at least 8)");
}

TEST(Safetensors, HeaderLargerThanFile) {
  Status s = parse(make_file("{}", 0, 1000));
  EXPECT_EQ(s.message(), "x.safetensors: header length 1000 is larger than the file (2 bytes after the length prefix)");
}

TEST(Safetensors, HugeHeaderLength) {
  Status s = parse(make_file("{}", 0, 1ull << 40));
  EXPECT_NE(s.message().find("exceeds the"), std::string::npos) << s.message();
}

TEST(Safetensors, NotJson) {
  EXPECT_EQ(parse(make_file("{\"a\": ", 0)).message(), "x.safetensors: header is not valid JSON");
  EXPECT_EQ(parse(make_file("[1]", 0)).message(), "x.safetensors: header must be a JSON object");
}

TEST(Safetensors, OffsetsOutOfRange) {
  Status s = parse(make_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  EXPECT_EQ(s.message(),
            "x.safetensors: tensor 'w': data_offsets [0, 16] outside the data region of 8 bytes (truncated file?)");
}

TEST(Safetensors, ShapeDtypeMismatch) {
  Status s = parse(make_file(R"({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 16]}})", 16));
  EXPECT_EQ(s.message(), "x.safetensors: tensor 'w': 16 bytes in data_offsets but dtype BF16 x shape [4] needs 8");
}

TEST(Safetensors, UnknownDtypeAndBadFields) {
  EXPECT_EQ(parse(make_file(R"({"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}})", 1)).message(),
            "x.safetensors: tensor 'w': unknown dtype 'F7'");
  EXPECT_EQ(parse(make_file(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)).message(),
            "x.safetensors: tensor 'w': shape must hold non-negative integers");
  EXPECT_EQ(parse(make_file(R"({"w": {"dtype": "F32", "shape": [1]}})", 4)).message(),
            "x.safetensors: tensor 'w': data_offsets must be [begin, end] non-negative integers");
}

TEST(Safetensors, Overlap) {
  Status s = parse(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                             12));
  EXPECT_EQ(s.message(), "x.safetensors: tensors 'a' and 'b' overlap in the data region");
}

TEST(Safetensors, NonFloatTensorIsNamed) {
  const std::string path = tmp_path("ints.safetensors");
  ASSERT_TRUE(
      write_file_atomic(path, make_file(R"({"ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8)).is_ok());
  auto f = File::open(path);
  ASSERT_TRUE(f.is_ok());
  auto t = f->tensor("ids");
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("tensor 'ids' has dtype I64, expected F32, BF16 or F16"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(Safetensors, MissingFile) {
  auto f = File::open("/nonexistent.safetensors");
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.status().message(), "/nonexistent.safetensors: no such file");
}

}  // namespace
}  // namespace tl::safetensors
