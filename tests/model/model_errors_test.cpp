// Bad model directories and bad inputs give specific errors naming the file and tensor, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/model.h"

namespace tl {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return std::string(TL_FIXTURES_DIR) + "/models/" + name; }

// A scratch copy of a reference model that a test may damage.
std::string scratch_copy(const std::string& name, const std::string& tag) {
  fs::path dst = fs::temp_directory_path() / ("tl_model_err_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dst);
  fs::copy(fixture(name), dst, fs::copy_options::recursive);
  return dst.string();
}

void rewrite_config(const std::string& dir, const std::string& from, const std::string& to) {
  auto text = read_file(dir + "/config.json");
  ASSERT_TRUE(text.is_ok());
  std::string s = *text;
  auto pos = s.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
  ASSERT_TRUE(write_file_atomic(dir + "/config.json", s).is_ok());
}

TEST(ModelErrors, MissingDirectory) {
  auto m = Model::load("/nonexistent/model");
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("/nonexistent/model"), std::string::npos);
}

TEST(ModelErrors, UnknownModelType) {
  std::string dir = scratch_copy("llama_f32", "type");
  rewrite_config(dir, "\"model_type\": \"llama\"", "\"model_type\": \"gpt_neox\"");
  auto m = Model::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(m.status().message().find("model_type 'gpt_neox' is not supported"), std::string::npos)
      << m.status().message();
  fs::remove_all(dir);
}

TEST(ModelErrors, UnknownRopeScaling) {
  std::string dir = scratch_copy("llama_linear_sharded_f16", "rope");
  rewrite_config(dir, "\"type\": \"linear\"", "\"type\": \"yarn\"");
  auto m = Model::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("rope_scaling type 'yarn' is not supported"), std::string::npos)
      << m.status().message();
  fs::remove_all(dir);
}

TEST(ModelErrors, ShapeMismatchNamesTheTensor) {
  std::string dir = scratch_copy("llama_f32", "shape");
  rewrite_config(dir, "\"intermediate_size\": 88", "\"intermediate_size\": 96");
  auto m = Model::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [88, 64], but "
                                      "config.json implies [96, 64]"),
            std::string::npos)
      << m.status().message();
  fs::remove_all(dir);
}

TEST(ModelErrors, MissingShardNamesTheIndex) {
  std::string dir = scratch_copy("llama_linear_sharded_f16", "shard");
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  auto m = Model::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("model.safetensors.index.json lists shard model-00002-of-00002.safetensors"),
            std::string::npos)
      << m.status().message();
  fs::remove_all(dir);
}

TEST(ModelErrors, MissingTensor) {
  // A tied-embedding config pointed at an untied checkpoint is fine; the reverse lacks lm_head.
  std::string dir = scratch_copy("qwen2_tied_f32", "tied");
  rewrite_config(dir, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
  auto m = Model::load(dir);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("no tensor 'lm_head.weight'"), std::string::npos) << m.status().message();
  fs::remove_all(dir);
}

TEST(ModelErrors, IdsOutsideVocabulary) {
  auto m = Model::load(fixture("llama_f32"));
  ASSERT_TRUE(m.is_ok());
  KvCache cache(m->config(), 8);
  std::vector<float> logits;
  std::vector<int32_t> ids = {1, 97};
  Status s = m->forward(ids, cache, logits, false);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), "token id 97 at position 1 is outside the vocabulary [0, 97)");
  std::vector<int32_t> many(9, 1);
  EXPECT_EQ(m->forward(many, cache, logits, false).code(), StatusCode::kResourceExhausted);
}

TEST(ModelErrors, GenerationStopsAtTheContext) {
  auto m = Model::load(fixture("llama_f32"));  // max_position_embeddings 256
  ASSERT_TRUE(m.is_ok());
  GenerateOptions opt;
  opt.max_tokens = 1 << 20;  // must not size the KV cache
  opt.stop_ids = {-1};
  auto r = generate(*m, std::vector<int32_t>{1, 2, 3}, opt);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->tokens.size(), 253u);
  std::vector<int32_t> long_prompt(257, 1);
  auto e = generate(*m, long_prompt, opt);
  EXPECT_EQ(e.status().message(), "prompt of 257 tokens exceeds the model's context of 256 (max_position_embeddings)");
}

TEST(ModelErrors, ConfigFieldErrors) {
  auto c = ModelConfig::from_json_text(R"({"model_type": "llama", "vocab_size": 10})", "config.json");
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().message(), "config.json: missing required field 'hidden_size'");
  c = ModelConfig::from_json_text(
      R"({"model_type": "llama", "vocab_size": 10, "hidden_size": "64"})", "config.json");
  EXPECT_EQ(c.status().message(), "config.json: field 'hidden_size' must be an integer, got \"64\"");
  // A file cut short says so, and where; valid JSON of the wrong kind is told apart from it.
  c = ModelConfig::from_json_text("{\"model_type\": \"llama\",\n \"vocab_size\": 10", "config.json");
  EXPECT_EQ(c.status().message(),
            "config.json: invalid JSON (line 2, column 18: syntax error while parsing object - unexpected end of "
            "input; expected '}')");
  c = ModelConfig::from_json_text("[1,2]", "config.json");
  EXPECT_EQ(c.status().message(), "config.json: not a JSON object");
  c = ModelConfig::from_json_text(
      R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})", "config.json");
  EXPECT_EQ(c.status().message(),
            "config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
}

}  // namespace
}  // namespace tl
