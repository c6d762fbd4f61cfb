// Bad tokenizer.json / tokenizer_config.json inputs: each must fail with a message that names the file,
// the JSON path and what was expected (CONVENTIONS.md: tests assert the specific error).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace tl {
namespace {

using json = nlohmann::json;

// A small valid byte-level BPE tokenizer.json to mutate.
json minimal() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3},
              "merges": ["a b"]}
  })");
}

Status load(const json& j, const std::string& config = "") {
  return Tokenizer::from_json(j.dump(), config, "").status();
}

void expect_error(const Status& s, StatusCode code, const std::string& substring) {
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), code) << s.message();
  EXPECT_NE(s.message().find(substring), std::string::npos) << "message: " << s.message() << "\nwanted: " << substring;
}

TEST(TokenizerErrors, MinimalLoads) {
  auto tok = Tokenizer::from_json(minimal().dump(), "", "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();
  auto ids = tok->encode("ab a b");
  ASSERT_TRUE(ids.is_ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{2, 3, 0, 3, 1}));
}

TEST(TokenizerErrors, MalformedJsonHasPosition) {
  auto s = Tokenizer::from_json("{\"model\": {\"type\": \"BPE\",, }}", "", "models/x").status();
  expect_error(s, StatusCode::kInvalidArgument, "models/x/tokenizer.json: malformed JSON at byte 26: parse error at line 1, column 26");
}

TEST(TokenizerErrors, MalformedConfigJsonNamesConfigFile) {
  auto s = Tokenizer::from_json(minimal().dump(), "{\"bos_token\": ", "").status();
  expect_error(s, StatusCode::kInvalidArgument, "tokenizer_config.json: malformed JSON at byte 15: parse error at line 1, column 15");
}

TEST(TokenizerErrors, NumberOverflowIsAnErrorNotACrash) {  // found by tokenizer_json_fuzz
  auto s = Tokenizer::from_json(R"({"model": {"dropout": 9e82581}})", "", "").status();
  expect_error(s, StatusCode::kInvalidArgument, "tokenizer.json: malformed JSON: number overflow parsing '9e82581'");
}

TEST(TokenizerErrors, RootNotObject) {
  expect_error(Tokenizer::from_json("[1,2]", "", "").status(), StatusCode::kInvalidArgument,
               "tokenizer.json: (root): expected an object, got array");
}

TEST(TokenizerErrors, UnsupportedPreTokenizerInSequence) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "ByteLevel", "add_prefix_space": false}, {"type": "Whitespace"}]})");
  expect_error(load(j), StatusCode::kUnimplemented,
               "tokenizer.json: pre_tokenizer.pretokenizers[1].type: unsupported 'Whitespace' (supported: ");
}

TEST(TokenizerErrors, UnsupportedModel) {
  json j = minimal();
  j["model"]["type"] = "WordPiece";
  expect_error(load(j), StatusCode::kUnimplemented, "tokenizer.json: model.type: unsupported 'WordPiece' (supported: BPE)");
}

TEST(TokenizerErrors, UnsupportedNormalizer) {
  json j = minimal();
  j["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})");
  expect_error(load(j), StatusCode::kUnimplemented, "tokenizer.json: normalizer.normalizers[1].type: unsupported 'Lowercase'");
}

TEST(TokenizerErrors, UnsupportedDecoder) {
  json j = minimal();
  j["decoder"] = json::parse(R"({"type": "Sequence", "decoders": [{"type": "WordPiece", "prefix": "##"}]})");
  expect_error(load(j), StatusCode::kUnimplemented, "tokenizer.json: decoder.decoders[0].type: unsupported 'WordPiece'");
}

TEST(TokenizerErrors, UnsupportedPostProcessor) {
  json j = minimal();
  j["post_processor"] = json::parse(R"({"type": "RobertaProcessing"})");
  expect_error(load(j), StatusCode::kUnimplemented, "tokenizer.json: post_processor.type: unsupported 'RobertaProcessing'");
}

TEST(TokenizerErrors, MissingType) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"add_prefix_space": false})");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: pre_tokenizer.type: missing (required)");
}

TEST(TokenizerErrors, MissingModel) {
  json j = minimal();
  j.erase("model");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model: missing (required)");
}

TEST(TokenizerErrors, MissingVocab) {
  json j = minimal();
  j["model"].erase("vocab");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.vocab: missing (required)");
}

TEST(TokenizerErrors, VocabIdNotAnInteger) {
  json j = minimal();
  j["model"]["vocab"]["b"] = "one";
  expect_error(load(j), StatusCode::kInvalidArgument,
               "tokenizer.json: model.vocab[\"b\"]: expected a non-negative integer, got string");
}

TEST(TokenizerErrors, NegativeVocabId) {
  json j = minimal();
  j["model"]["vocab"]["b"] = -1;
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.vocab[\"b\"]: -1 is out of range");
}

TEST(TokenizerErrors, MergeReferencesUnknownToken) {
  json j = minimal();
  j["model"]["merges"] = json::parse(R"(["a b", "a c"])");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.merges[1]: 'c' is not in the vocabulary");
}

TEST(TokenizerErrors, MergeResultNotInVocab) {
  json j = minimal();
  j["model"]["merges"] = json::parse(R"([["b", "a"]])");
  expect_error(load(j), StatusCode::kInvalidArgument,
               "tokenizer.json: model.merges[0]: merged token 'ba' is not in the vocabulary");
}

TEST(TokenizerErrors, MergeWithoutSpace) {
  json j = minimal();
  j["model"]["merges"] = json::parse(R"(["ab"])");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.merges[0]: expected \"left right\", got 'ab'");
}

TEST(TokenizerErrors, MergeOfWrongShape) {
  json j = minimal();
  j["model"]["merges"] = json::parse(R"([["a", "b", "c"]])");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.merges[0]: expected [\"left\", \"right\"]");
}

TEST(TokenizerErrors, BadRegex) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"})");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: pre_tokenizer.pattern.Regex: invalid regex: ");
}

TEST(TokenizerErrors, BadSplitBehavior) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"})");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: pre_tokenizer.behavior: expected Isolated,");
}

TEST(TokenizerErrors, MetaspaceReplacementMustBeOneCharacter) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Metaspace", "replacement": "ab", "prepend_scheme": "always"})");
  expect_error(load(j), StatusCode::kInvalidArgument,
               "tokenizer.json: pre_tokenizer.replacement: expected exactly one character, got 'ab'");
}

TEST(TokenizerErrors, BadPrependScheme) {
  json j = minimal();
  j["pre_tokenizer"] = json::parse(R"({"type": "Metaspace", "replacement": "_", "prepend_scheme": "sometimes"})");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: pre_tokenizer.prepend_scheme: expected \"always\"");
}

TEST(TokenizerErrors, TemplateReferencesUnknownSpecialToken) {
  json j = minimal();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {}})");
  expect_error(load(j), StatusCode::kInvalidArgument,
               "tokenizer.json: post_processor.single[0].SpecialToken.id: '<s>' is not in special_tokens");
}

TEST(TokenizerErrors, DropoutRefused) {
  json j = minimal();
  j["model"]["dropout"] = 0.1;
  expect_error(load(j), StatusCode::kUnimplemented, "tokenizer.json: model.dropout: 0.1 is not supported");
}

TEST(TokenizerErrors, AddedTokenWithoutId) {
  json j = minimal();
  j["added_tokens"] = json::parse(R"([{"content": "<x>", "special": true}])");
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: added_tokens[0].id: missing (required)");
}

TEST(TokenizerErrors, AddedTokenFlagWrongType) {
  json j = minimal();
  j["added_tokens"] = json::parse(R"([{"id": 4, "content": "<x>", "special": "yes"}])");
  expect_error(load(j), StatusCode::kInvalidArgument,
               "tokenizer.json: added_tokens[0].special: expected true or false, got string");
}

TEST(TokenizerErrors, AbsurdIdRefused) {
  json j = minimal();
  j["model"]["vocab"]["b"] = 2000000000;
  expect_error(load(j), StatusCode::kInvalidArgument, "tokenizer.json: model.vocab[\"b\"]: 2000000000 is out of range");
}

TEST(TokenizerErrors, ConfigChatTemplateWrongType) {
  expect_error(load(minimal(), R"({"chat_template": 3})"), StatusCode::kInvalidArgument,
               "tokenizer_config.json: chat_template: expected a string or a list of {name, template}, got number");
}

TEST(TokenizerErrors, ConfigAddBosWithoutToken) {
  expect_error(load(minimal(), R"({"add_bos_token": true, "bos_token": "<s>"})"), StatusCode::kInvalidArgument,
               "tokenizer_config.json: add_bos_token: is true but the token '<s>' is not in the vocabulary");
}

TEST(TokenizerErrors, UnkTokenMissingFromVocabFailsAtEncode) {
  json j = minimal();
  j["model"]["unk_token"] = "<unk>";
  auto tok = Tokenizer::from_json(j.dump(), "", "");
  ASSERT_TRUE(tok.is_ok()) << tok.status().message();  // as in HF, only an error once unk is needed
  EXPECT_TRUE(tok->encode("ab").is_ok());
  auto s = tok->encode("zz").status();
  expect_error(s, StatusCode::kInvalidArgument, "unk_token '<unk>' is not in the vocabulary");
}

TEST(TokenizerErrors, LoadMissingDirectory) {
  auto s = Tokenizer::load("/nonexistent/model").status();
  expect_error(s, StatusCode::kNotFound, "/nonexistent/model: no tokenizer.json");
}

TEST(TokenizerErrors, DeepSequenceNestingRefused) {
  json n = json{{"type", "NFC"}};
  for (int i = 0; i < 40; ++i) n = json{{"type", "Sequence"}, {"normalizers", json::array({n})}};
  json j = minimal();
  j["normalizer"] = n;
  expect_error(load(j), StatusCode::kInvalidArgument, "Sequence nested deeper than 32 levels");
}

}  // namespace
}  // namespace tl
