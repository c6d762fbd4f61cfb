// Shared helpers for the control-plane tests: temp dirs, a tiny model directory (config.json only —
// the fake trainer never loads weights), JSONL datasets, and bounded polling.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "core/file.h"
#include "registry/hashing.h"

namespace tl::test {

inline std::string temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("tl_" + tag + "_" + std::to_string(getpid()) + "_" + registry::random_token("", 4));
  std::filesystem::create_directories(p);
  return p.string();
}

// A llama-shaped config of ~0.4 M parameters.
inline std::string tiny_model_dir(const std::string& root) {
  std::string dir = root + "/tiny-llama";
  std::filesystem::create_directories(dir);
  (void)write_file_atomic(dir + "/config.json",
                          R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": false})");
  return dir;
}

inline std::string chat_jsonl(int lines) {
  std::string out;
  for (int i = 0; i < lines; ++i)
    out += R"({"messages": [{"role": "user", "content": "What is )" + std::to_string(i) +
           R"( + 1?"}, {"role": "assistant", "content": "It is )" + std::to_string(i + 1) + R"(."}]})" + "\n";
  return out;
}

inline std::string fake_trainer() { return std::string(TL_BINARY_DIR) + "/tl_fake_trainer"; }
inline std::string control_plane() { return std::string(TL_BINARY_DIR) + "/tl_control_plane"; }

// Polls `done` every 20 ms for at most `seconds`.
inline bool wait_until(const std::function<bool()>& done, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace tl::test
