// Behaviours beyond the reference vectors: added/special tokens and their lstrip/rstrip/single_word
// flags, invalid UTF-8 input, post-processor templates, tokenizer_config.json facts, decode options,
// streaming of byte-fallback characters, thread safety, and the SentencePiece word-cut optimisation
// checked differentially against the uncut path.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tokenizer/detail/unicode.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tl {
namespace {

using json = nlohmann::json;
using tokenizer_test::testdata;
using Ids = std::vector<int32_t>;

Tokenizer load(const std::string& name) {
  auto tok = Tokenizer::load(testdata("tokenizers/" + name));
  if (!tok.is_ok()) {
    ADD_FAILURE() << tok.status().message();
    std::abort();
  }
  return *tok;
}

Ids enc(const Tokenizer& tok, std::string_view text, bool special = false) {
  auto ids = tok.encode(text, special);
  EXPECT_TRUE(ids.is_ok()) << ids.status().message();
  return ids.is_ok() ? *ids : Ids{};
}

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Byte-level toy tokenizer with one added token whose flags the test chooses.
Tokenizer toy_with_added(const json& added_token) {
  json j = json::parse(R"({
    "added_tokens": [],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "Ġ": 2, "x": 3, "Ċ": 4}, "merges": []}
  })");
  j["added_tokens"].push_back(added_token);
  auto tok = Tokenizer::from_json(j.dump(), "", "toy");
  if (!tok.is_ok()) {
    ADD_FAILURE() << tok.status().message();
    std::abort();
  }
  return *tok;
}

TEST(TokenizerBehaviour, Gpt2SpecialTokenInTextIsSplitOut) {
  Tokenizer tok = load("gpt-2");
  EXPECT_EQ(enc(tok, "Hello<|endoftext|>world"), concat({enc(tok, "Hello"), {50256}, enc(tok, "world")}));
  EXPECT_EQ(tok.bos_token(), "<|endoftext|>");
  EXPECT_EQ(tok.eos_token_id(), 50256);
  EXPECT_TRUE(tok.is_special(50256));
  EXPECT_FALSE(tok.is_special(15496));
  EXPECT_EQ(tok.decode(Ids{15496, 50256}, /*skip_special_tokens=*/true), "Hello");
  EXPECT_EQ(tok.decode(Ids{15496, 50256}), "Hello<|endoftext|>");
  // No template in gpt-2's tokenizer.json: add_special_tokens adds nothing.
  EXPECT_EQ(enc(tok, "Hello", true), Ids{15496});
}

TEST(TokenizerBehaviour, InvalidUtf8IsReplacedLikePython) {
  Tokenizer tok = load("gpt-2");
  // "\xff" is invalid; "\xe2\x82" is a truncated 3-byte sequence: one U+FFFD each (maximal subparts).
  EXPECT_EQ(enc(tok, "a\xff" "b"), enc(tok, "a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(enc(tok, "x\xe2\x82y"), enc(tok, "x\xEF\xBF\xBDy"));
  EXPECT_EQ(tokenizer_detail::utf8_lossy("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(tokenizer_detail::utf8_lossy("\xf0\x9f\xa6"), "\xEF\xBF\xBD");  // truncated 4-byte
}

TEST(TokenizerBehaviour, LlamaTemplateAndConfig) {
  Tokenizer tok = load("llama-spm");
  EXPECT_EQ(tok.bos_token(), "<s>");
  EXPECT_EQ(tok.bos_token_id(), 1);
  EXPECT_EQ(tok.eos_token_id(), 2);
  EXPECT_EQ(enc(tok, "", true), Ids{1});  // HF: BOS even for empty text
  EXPECT_EQ(enc(tok, "Hello", true), concat({{1}, enc(tok, "Hello")}));
  EXPECT_EQ(enc(tok, "Hello", true), (Ids{1, 15043}));
  // Decoding BOS keeps "<s>" and the Strip decoder then has no leading space to remove (HF does this).
  EXPECT_EQ(tok.decode(Ids{1, 15043}), "<s> Hello");
  EXPECT_EQ(tok.decode(Ids{1, 15043}, true), "Hello");
  EXPECT_EQ(tok.decode(Ids{15043, 999999, -5}), "Hello");  // unknown ids are skipped
  EXPECT_EQ(tok.id_to_token(13), "<0x0A>");
  EXPECT_EQ(tok.token_to_id("▁Hello"), 15043);
  EXPECT_EQ(tok.token_to_id("no such token"), std::nullopt);
}

TEST(TokenizerBehaviour, Phi3RstripTokenAndConfigOverrides) {
  Tokenizer tok = load("phi-3");
  // add_bos_token false in tokenizer_config.json: nothing added.
  EXPECT_EQ(enc(tok, "Hello", true), enc(tok, "Hello"));
  // <|assistant|> has rstrip: the newline after it belongs to the token; the text after it is normalized
  // on its own, so it gets its own "▁" (HF's legacy behaviour).
  EXPECT_EQ(enc(tok, "<|assistant|>\nHi"), concat({{32001}, enc(tok, "Hi")}));
  EXPECT_EQ(tok.eos_token(), "<|endoftext|>");
  EXPECT_EQ(tok.eos_token_id(), 32000);
  ASSERT_TRUE(tok.chat_templates().count("default"));
  EXPECT_NE(tok.chat_templates().at("default").find("<|assistant|>"), std::string::npos);
}

TEST(TokenizerBehaviour, AddedTokenLstripRstrip) {
  Tokenizer plain = toy_with_added({{"id", 5}, {"content", "<m>"}, {"normalized", false}, {"special", true}});
  EXPECT_EQ(enc(plain, "a <m> b"), (Ids{0, 2, 5, 2, 1}));
  Tokenizer lstrip = toy_with_added({{"id", 5}, {"content", "<m>"}, {"lstrip", true}, {"normalized", false}});
  EXPECT_EQ(enc(lstrip, "a  <m> b"), (Ids{0, 5, 2, 1}));
  Tokenizer rstrip = toy_with_added({{"id", 5}, {"content", "<m>"}, {"rstrip", true}, {"normalized", false}});
  EXPECT_EQ(enc(rstrip, "a <m> \n b"), (Ids{0, 2, 5, 1}));
  EXPECT_FALSE(plain.is_special(0));
  EXPECT_TRUE(plain.is_special(5));
  EXPECT_FALSE(lstrip.is_special(5));
  EXPECT_EQ(plain.vocab_size(), 6);
}

TEST(TokenizerBehaviour, AddedTokenSingleWord) {
  Tokenizer tok = toy_with_added({{"id", 5}, {"content", "ab"}, {"single_word", true}, {"normalized", true}});
  EXPECT_EQ(enc(tok, "ab"), Ids{5});
  EXPECT_EQ(enc(tok, "x ab"), (Ids{3, 2, 5}));
  EXPECT_EQ(enc(tok, "xab"), (Ids{3, 0, 1}));  // inside a word: not matched
  EXPECT_EQ(enc(tok, "abx"), (Ids{0, 1, 3}));
}

TEST(TokenizerBehaviour, LeftmostLongestAddedTokenMatch) {
  json j = json::parse(R"({
    "added_tokens": [{"id": 5, "content": "<a>", "normalized": false},
                     {"id": 6, "content": "<a><b>", "normalized": false}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "model": {"type": "BPE", "vocab": {"<": 0, ">": 1, "a": 2, "b": 3}, "merges": []}
  })");
  auto tok = Tokenizer::from_json(j.dump(), "", "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(enc(*tok, "<a><b><a>"), (Ids{6, 5}));
  // No decoder in the file: HF joins token strings with spaces.
  EXPECT_EQ(tok->decode(Ids{6, 2}), "<a><b> a");
}

TEST(TokenizerBehaviour, SplitBehaviours) {
  auto make = [](const std::string& behavior, bool invert) {
    json j = json::parse(R"({
      "pre_tokenizer": {"type": "Split", "pattern": {"String": "-"}},
      "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "-": 2, "a-": 3, "-b": 4, "--": 5},
                "merges": ["a -", "- b", "- -"]}
    })");
    j["pre_tokenizer"]["behavior"] = behavior;
    j["pre_tokenizer"]["invert"] = invert;
    auto tok = Tokenizer::from_json(j.dump(), "", "");
    if (!tok.is_ok()) std::abort();
    return *tok;
  };
  EXPECT_EQ(enc(make("Isolated", false), "a-b"), (Ids{0, 2, 1}));
  EXPECT_EQ(enc(make("Removed", false), "a-b"), (Ids{0, 1}));
  EXPECT_EQ(enc(make("MergedWithPrevious", false), "a-b"), (Ids{3, 1}));
  EXPECT_EQ(enc(make("MergedWithNext", false), "a-b"), (Ids{0, 4}));
  EXPECT_EQ(enc(make("Contiguous", false), "a--b"), (Ids{0, 5, 1}));
  EXPECT_EQ(enc(make("Isolated", false), "a--b"), (Ids{0, 2, 2, 1}));
  EXPECT_EQ(enc(make("Removed", true), "a-b"), (Ids{2}));  // invert: the non-matches are removed
}

TEST(TokenizerBehaviour, MetaspacePrependSchemes) {
  auto make = [](const std::string& scheme, bool split) {
    json j = json::parse(R"({
      "added_tokens": [{"id": 9, "content": "<s>", "normalized": false, "special": true}],
      "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"},
      "decoder": {"type": "Metaspace", "replacement": "▁"},
      "model": {"type": "BPE", "vocab": {"▁": 0, "a": 1, "b": 2, "▁a": 3, "▁b": 4, "<s>": 9},
                "merges": ["▁ a", "▁ b"]}
    })");
    j["pre_tokenizer"]["prepend_scheme"] = scheme;
    j["pre_tokenizer"]["split"] = split;
    j["decoder"]["prepend_scheme"] = scheme;
    auto tok = Tokenizer::from_json(j.dump(), "", "");
    if (!tok.is_ok()) std::abort();
    return *tok;
  };
  EXPECT_EQ(enc(make("always", true), "a b"), (Ids{3, 4}));
  EXPECT_EQ(enc(make("never", true), "a b"), (Ids{1, 4}));
  EXPECT_EQ(enc(make("first", true), "a<s>b"), (Ids{3, 9, 2}));  // only the piece at offset 0
  EXPECT_EQ(enc(make("always", true), "a<s>b"), (Ids{3, 9, 4}));
  EXPECT_EQ(enc(make("always", false), "a  b"), (Ids{3, 0, 4}));
  EXPECT_EQ(make("always", true).decode(Ids{3, 4}), "a b");  // the first token's "▁" is dropped
  EXPECT_EQ(make("never", true).decode(Ids{3, 4}), " a b");
}

TEST(TokenizerBehaviour, LegacyMetaspaceAndDigits) {
  json j = json::parse(R"({
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},
        {"type": "Digits", "individual_digits": true}]},
    "model": {"type": "BPE", "vocab": {"▁": 0, "1": 1, "2": 2, "12": 3, "▁1": 4}, "merges": ["1 2", "▁ 1"]}
  })");
  auto tok = Tokenizer::from_json(j.dump(), "", "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(enc(*tok, "12"), (Ids{0, 1, 2}));  // Digits isolates each digit, so no "12" / "▁1"
}

TEST(TokenizerBehaviour, ConfigChatTemplateListForm) {
  const std::string config = R"({"chat_template": [{"name": "default", "template": "{{ x }}"},
                                                    {"name": "tool_use", "template": "{{ y }}"}],
                                 "eos_token": {"content": "b", "lstrip": false}})";
  json j = json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})");
  auto tok = Tokenizer::from_json(j.dump(), config, "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(tok->chat_templates().size(), 2u);
  EXPECT_EQ(tok->chat_templates().at("tool_use"), "{{ y }}");
  EXPECT_EQ(tok->eos_token(), "b");
  EXPECT_EQ(tok->eos_token_id(), 1);
  EXPECT_EQ(tok->bos_token(), "");
  EXPECT_EQ(tok->bos_token_id(), std::nullopt);
}

TEST(TokenizerBehaviour, ConfigAddEosRebuildsTemplate) {
  json j = json::parse(R"({"model": {"type": "BPE", "vocab": {"a": 0, "<s>": 1, "</s>": 2}, "merges": []}})");
  auto tok = Tokenizer::from_json(j.dump(), R"({"add_bos_token": true, "add_eos_token": true, "bos_token": "<s>",
                                              "eos_token": "</s>"})", "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  EXPECT_EQ(enc(*tok, "a", true), (Ids{1, 0, 2}));
  EXPECT_EQ(enc(*tok, "a", false), (Ids{0}));
}

TEST(TokenizerBehaviour, StreamingHoldsPartialCharacters) {
  Tokenizer spm = load("llama-spm");
  Ids ids = enc(spm, "a🦙b");  // the llama emoji has no token: four byte-fallback tokens
  ASSERT_GE(ids.size(), 6u);
  StreamDecoder stream(spm);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.push(id));
  chunks.push_back(stream.finish());
  std::string all;
  for (const auto& c : chunks) {
    EXPECT_TRUE(tokenizer_detail::utf8_is_valid(c));
    all += c;
  }
  EXPECT_EQ(all, "a🦙b");
  // Nothing is released while the byte run is open.
  EXPECT_EQ(chunks[2], "");
  EXPECT_EQ(chunks[3], "");
  EXPECT_EQ(chunks[4], "");

  Tokenizer gpt2 = load("gpt-2");
  StreamDecoder g(gpt2);
  std::string out;
  for (int32_t id : enc(gpt2, "🦙 ok")) out += g.push(id);
  out += g.finish();
  EXPECT_EQ(out, "🦙 ok");

  // An unfinished character is flushed by finish() as U+FFFD.
  StreamDecoder partial(spm);
  EXPECT_EQ(partial.push(*spm.token_to_id("<0xF0>")), "");
  EXPECT_EQ(partial.finish(), "\xEF\xBF\xBD");
}

TEST(TokenizerBehaviour, ConcurrentEncodeIsConsistent) {
  Tokenizer tok = load("gpt-2");
  const std::string text = tokenizer_test::slurp("/usr/share/common-licenses/GPL-3");
  const Ids expected = enc(tok, text);
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      auto r = tok.encode(text, false);
      if (r.is_ok()) results[t] = *r;
    });
  }
  for (auto& th : threads) th.join();
  for (const Ids& r : results) EXPECT_EQ(r, expected);
  EXPECT_EQ(tok.decode(expected), text);
}

// The "▁" word cut (bpe.h) must not change results: compare with the same vocabulary plus one token
// "a▁b" that no merge produces (so encodings are unaffected) but which disables the cut.
TEST(TokenizerBehaviour, SentencePieceWordCutIsExact) {
  const std::string original = tokenizer_test::slurp(testdata("tokenizers/llama-spm/tokenizer.json"));
  json j = json::parse(original);
  j["model"]["vocab"]["a▁b"] = 32000;
  auto cut = Tokenizer::from_json(original, "", "cut");
  auto uncut = Tokenizer::from_json(j.dump(), "", "uncut");
  ASSERT_TRUE(cut.is_ok() && uncut.is_ok());
  std::string text = tokenizer_test::slurp("/usr/share/common-licenses/Apache-2.0");
  text += "  double  spaces, ▁literal▁markers▁▁ and 🦙 émojis\n\tend";
  for (const auto& v : tokenizer_test::read_vectors("llama-spm")) text += v.input;
  EXPECT_EQ(enc(*cut, text), enc(*uncut, text));
}

}  // namespace
}  // namespace tl
