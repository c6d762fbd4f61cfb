// libFuzzer target for Tokenizer::from_json: arbitrary bytes as tokenizer.json must either load or fail
// with a Status, never crash, hang or trip a sanitizer; a tokenizer that loads must encode and decode a
// fixed string (with added-token, byte-fallback and invalid-UTF-8 material in it) and stream-decode the
// ids. Input bytes after a "\n--config--\n" separator, if any, are fed as tokenizer_config.json.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view json = input, config;
  constexpr std::string_view kSeparator = "\n--config--\n";
  if (auto pos = input.find(kSeparator); pos != std::string_view::npos) {
    json = input.substr(0, pos);
    config = input.substr(pos + kSeparator.size());
  }
  auto tok = tl::Tokenizer::from_json(json, config, "fuzz");
  if (!tok.is_ok()) return 0;
  static const std::string kText = "Hello, world! <s>  [INST] 12345 \xF0\x9F\xA6\x99 caf\xC3\xA9 \xFF\xFE\n\tend";
  for (bool special : {false, true}) {
    auto ids = tok->encode(kText, special);
    if (!ids.is_ok()) continue;
    (void)tok->decode(*ids);
    (void)tok->decode(*ids, true);
    tl::StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : *ids) streamed += stream.push(id);
    streamed += stream.finish();
  }
  (void)tok->vocab_size();
  return 0;
}
