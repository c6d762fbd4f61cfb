// Reference vectors: llama.cpp's 46 tokenizer test inputs per model, with the ids HF `tokenizers`
// produced for them (AutoTokenizer(...).encode(text, add_special_tokens=False)), plus decode round trips
// and streaming decode of every prefix. See /work/shared/testdata/README.md for provenance.
//
// gpt-2, llama-spm and phi-3 use their real tokenizer.json; llama-bpe (Llama-3) and qwen2 are built from
// their tiktoken ranks the way HF's converter does (tokenizer_test_util.h); starcoder and deepseek-coder
// have vectors but no tokenizer definition here and are skipped with a reason; mistral-v0.3 has a
// tokenizer.json but no vectors and gets load + round-trip checks.
#include <gtest/gtest.h>

#include "tokenizer/detail/unicode.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tl {
namespace {

using tokenizer_test::read_vectors;
using tokenizer_test::testdata;

// Checks every vector; returns the number that matched exactly.
size_t check_vectors(const Tokenizer& tok, const std::string& name, bool expect_round_trip) {
  const auto vectors = read_vectors(name);
  EXPECT_EQ(vectors.size(), 46u) << name;
  size_t passed = 0;
  for (size_t i = 0; i < vectors.size(); ++i) {
    const auto& v = vectors[i];
    auto ids = tok.encode(v.input, /*add_special_tokens=*/false);
    EXPECT_TRUE(ids.is_ok()) << ids.status().message();
    if (!ids.is_ok()) continue;
    EXPECT_EQ(*ids, v.ids) << name << " case " << i << " input '" << v.input << "'\n got     "
                           << tokenizer_test::ids_to_string(*ids) << "\n expected" << tokenizer_test::ids_to_string(v.ids);
    if (*ids == v.ids) ++passed;
    if (expect_round_trip) {
      EXPECT_EQ(tok.decode(v.ids), v.input) << name << " case " << i;
    }
  }
  std::printf("[ vectors  ] %s: %zu/%zu match HF\n", name.c_str(), passed, vectors.size());
  return passed;
}

// Streaming decode of every prefix of every vector: each chunk is valid UTF-8 and the chunks plus
// finish() concatenate to decode(prefix).
void check_streaming(const Tokenizer& tok, const std::string& name) {
  for (const auto& v : read_vectors(name)) {
    auto ids = tok.encode(v.input, false);
    ASSERT_TRUE(ids.is_ok());
    for (size_t k = 0; k <= ids->size(); ++k) {
      StreamDecoder stream(tok);
      std::string streamed;
      for (size_t i = 0; i < k; ++i) {
        std::string chunk = stream.push((*ids)[i]);
        ASSERT_TRUE(tokenizer_detail::utf8_is_valid(chunk)) << name << " '" << v.input << "' after " << i;
        streamed += chunk;
      }
      std::string rest = stream.finish();
      ASSERT_TRUE(tokenizer_detail::utf8_is_valid(rest));
      streamed += rest;
      std::span<const int32_t> prefix(ids->data(), k);
      ASSERT_EQ(streamed, tok.decode(prefix)) << name << " '" << v.input << "' prefix " << k;
    }
  }
}

Tokenizer load_or_die(const std::string& name) {
  auto tok = Tokenizer::load(testdata("tokenizers/" + name));
  EXPECT_TRUE(tok.is_ok()) << tok.status().message();
  if (!tok.is_ok()) std::abort();
  return *tok;
}

TEST(TokenizerVectors, Gpt2) {
  Tokenizer tok = load_or_die("gpt-2");
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(check_vectors(tok, "gpt-2", /*expect_round_trip=*/true), 46u);
  check_streaming(tok, "gpt-2");
  // tokenizer.json carries truncation max_length 50; we never truncate (the long case is > 50 ids).
  auto long_case = read_vectors("gpt-2").back();
  EXPECT_GT(long_case.ids.size(), 50u);
}

TEST(TokenizerVectors, LlamaSpm) {
  Tokenizer tok = load_or_die("llama-spm");
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(check_vectors(tok, "llama-spm", true), 46u);
  check_streaming(tok, "llama-spm");
}

TEST(TokenizerVectors, Phi3) {
  Tokenizer tok = load_or_die("phi-3");
  EXPECT_EQ(check_vectors(tok, "phi-3", true), 46u);
  check_streaming(tok, "phi-3");
}

TEST(TokenizerVectors, Llama3FromTiktokenRanks) {
  const std::string json = tokenizer_test::tiktoken_tokenizer_json(
      testdata("tokenizers/llama-bpe/tokenizer.model"), tokenizer_test::kLlama3Pattern, /*nfc=*/false,
      /*ignore_merges=*/true, {{"<|begin_of_text|>", 128000}, {"<|end_of_text|>", 128001}}, "<|begin_of_text|>");
  auto tok = Tokenizer::from_json(json, "", "llama-bpe");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(tok->vocab_size(), 128002);
  EXPECT_EQ(check_vectors(*tok, "llama-bpe", true), 46u);
  check_streaming(*tok, "llama-bpe");
  auto with_bos = tok->encode("Hello", true);
  ASSERT_TRUE(with_bos.is_ok());
  EXPECT_EQ(*with_bos, (std::vector<int32_t>{128000, 9906}));
}

TEST(TokenizerVectors, Qwen2FromTiktokenRanks) {
  const std::string json = tokenizer_test::tiktoken_tokenizer_json(
      testdata("tokenizers/qwen2/qwen.tiktoken"), tokenizer_test::kQwen2Pattern, /*nfc=*/true,
      /*ignore_merges=*/false, {{"<|endoftext|>", 151643}}, "");
  auto tok = Tokenizer::from_json(json, "", "qwen2");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(check_vectors(*tok, "qwen2", true), 46u);
  check_streaming(*tok, "qwen2");
}

TEST(TokenizerVectors, StarcoderHasNoTokenizerDefinition) {
  if (!tokenizer_test::exists(testdata("tokenizers/starcoder/tokenizer.json"))) {
    GTEST_SKIP() << "starcoder: expected ids exist but no tokenizer.json/vocab is available in testdata "
                    "(bigcode/starcoder tokenizer.json not found), so the ids cannot be checked";
  }
  Tokenizer tok = load_or_die("starcoder");
  EXPECT_EQ(check_vectors(tok, "starcoder", true), 46u);
}

TEST(TokenizerVectors, DeepseekCoderHasNoTokenizerDefinition) {
  if (!tokenizer_test::exists(testdata("tokenizers/deepseek-coder/tokenizer.json"))) {
    GTEST_SKIP() << "deepseek-coder: expected ids exist but no tokenizer.json is available in testdata, so "
                    "the ids cannot be checked";
  }
  Tokenizer tok = load_or_die("deepseek-coder");
  EXPECT_EQ(check_vectors(tok, "deepseek-coder", true), 46u);
}

TEST(TokenizerVectors, MistralV03LoadsAndRoundTrips) {
  Tokenizer tok = load_or_die("mistral-v0.3");
  EXPECT_EQ(tok.vocab_size(), 32768);
  EXPECT_EQ(tok.bos_token_id(), 1);
  EXPECT_EQ(tok.eos_token_id(), 2);
  EXPECT_EQ(tok.token_to_id("[INST]"), 3);
  EXPECT_TRUE(tok.chat_templates().count("default"));
  // Known tokens, from the vocabulary itself: "▁Hello" and the [INST] control token.
  auto hello = tok.encode("[INST] Hello", true);
  ASSERT_TRUE(hello.is_ok());
  ASSERT_EQ(hello->size(), 3u);
  EXPECT_EQ((*hello)[0], 1);
  EXPECT_EQ((*hello)[1], 3);
  EXPECT_EQ((*hello)[2], *tok.token_to_id("▁Hello"));
  for (const auto& v : read_vectors("llama-spm")) {
    auto ids = tok.encode(v.input, false);
    ASSERT_TRUE(ids.is_ok());
    // Metaspace(prepend_scheme "first") does not prepend "▁" to text that already starts with a space,
    // while the Strip decoder removes one leading space: HF itself does not round-trip those inputs.
    if (!v.input.empty() && v.input[0] == ' ') continue;
    EXPECT_EQ(tok.decode(*ids), v.input);
  }
  check_streaming(tok, "llama-spm");
}

}  // namespace
}  // namespace tl
