// libFuzzer target for the chat-template renderer: arbitrary bytes as a template. Whatever parses is
// rendered against a small fixed conversation (messages with tools and tool calls, special tokens)
// under tight limits, so any crash, hang or sanitizer report is a bug; errors are expected results.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi 👋 there"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "abc123XYZ", "type": "function", "function": {"name": "f", "arguments": {"x": 1.5, "y": [true, null]}}}]},
      {"role": "tool", "tool_call_id": "abc123XYZ", "content": "42"},
      {"role": "user", "content": [{"type": "text", "text": "parts"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;  // templates are small; keeps each run fast
  auto parsed = tl::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!parsed.is_ok()) return 0;
  tl::ChatTemplateOptions options;
  options.now_utc = 1721997930;
  options.max_output_bytes = 1 << 20;
  options.max_steps = 200000;
  options.max_call_depth = 16;
  auto rendered = parsed->render(context(), options);
  (void)rendered;
  return 0;
}
