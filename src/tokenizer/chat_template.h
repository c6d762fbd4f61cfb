// ChatTemplate: renders a Hugging Face `chat_template` (tokenizer_config.json) exactly as
// transformers' apply_chat_template does, without Python.
//
// transformers renders chat templates with jinja2's ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) plus the globals raise_exception(msg) and
// strftime_now(fmt) and a tojson filter that calls json.dumps(ensure_ascii=False). Training prompts
// must be byte-identical to what the model saw, so this renderer reproduces that environment's
// output byte for byte for the subset of Jinja that real chat templates use (docs/chat_templates.md
// lists the subset and the known differences). Templates parse once; rendering is thread-safe.
//
// Usage:
//   TL_ASSIGN_OR_RETURN(tl::ChatTemplate tmpl, tl::ChatTemplate::parse(config["chat_template"], "Qwen2.5"));
//   nlohmann::ordered_json ctx = {{"messages", messages}, {"add_generation_prompt", true},
//                                 {"bos_token", "<s>"}, {"eos_token", "</s>"}};
//   TL_ASSIGN_OR_RETURN(std::string prompt, tmpl.render(ctx));
//
// Errors: syntax errors read "<origin>:<line>:<col>: <what>" (kInvalidArgument); valid jinja2 that is
// not supported (extends, include, call blocks, ...) reads the same with kUnimplemented; runtime
// errors read "<origin>:<line>: <what>" with jinja2's wording; a template's raise_exception(msg)
// fails with exactly `msg` (kInvalidArgument), as transformers' TemplateError does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace tl {

namespace jinja {
struct TemplateAst;
}

struct ChatTemplateOptions {
  // strftime_now() formats this instant (seconds since the epoch, as UTC) instead of the local clock;
  // tests and reproducible data pipelines set it.
  std::optional<int64_t> now_utc;
  // Bounds for hostile templates: output size, evaluation steps, macro recursion.
  size_t max_output_bytes = 64u << 20;
  uint64_t max_steps = 50'000'000;
  int max_call_depth = 64;
};

class ChatTemplate {
 public:
  // Parses `source` once; `origin` names it in error messages.
  static Result<ChatTemplate> parse(std::string source, std::string origin = "chat_template");

  // Renders with `context` (a JSON object) as the template variables: `messages`, `tools`,
  // `add_generation_prompt`, `bos_token`, `eos_token` and any extra keys. As transformers does,
  // `tools` and `documents` default to None and `add_generation_prompt` to false when absent.
  // nlohmann::json keeps object keys sorted, which changes what tojson prints; pass an ordered_json
  // (or use render_json) to keep the caller's key order, as Python's json.loads does.
  Result<std::string> render(const nlohmann::json& context, const ChatTemplateOptions& options = {}) const;
  Result<std::string> render(const nlohmann::ordered_json& context, const ChatTemplateOptions& options = {}) const;
  // Parses `context_json` (key order preserved) and renders it.
  Result<std::string> render_json(std::string_view context_json, const ChatTemplateOptions& options = {}) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }

 private:
  ChatTemplate(std::string source, std::string origin, std::shared_ptr<const jinja::TemplateAst> ast)
      : source_(std::move(source)), origin_(std::move(origin)), ast_(std::move(ast)) {}
  template <typename Json>
  Result<std::string> render_impl(const Json& context, const ChatTemplateOptions& options) const;

  std::string source_;
  std::string origin_;
  std::shared_ptr<const jinja::TemplateAst> ast_;
};

}  // namespace tl
