// Text and chat inputs of the CLI: a model directory's tokenizer, and a chat file rendered through the
// model's own chat_template exactly as transformers' apply_chat_template does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace tl::cli {

// FILE.json holds either a list of messages or an object with "messages" (and optionally "tools" and
// any other template variables). Returns the template context object.
Result<nlohmann::ordered_json> read_chat_file(const std::string& path);

// Renders `context` with the tokenizer's chat template ("tool_use" when tools are given and the model
// has one, else "default"), adding bos/eos tokens and add_generation_prompt as transformers does.
Result<std::string> render_chat(const Tokenizer& tokenizer, nlohmann::ordered_json context, bool add_generation_prompt,
                                const std::string& model_dir);

}  // namespace tl::cli
