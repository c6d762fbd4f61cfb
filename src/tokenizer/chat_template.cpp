// ChatTemplate: the public face of the Jinja-subset renderer (parser, interpreter and builtins live
// in detail/jinja_*). Builds the scope transformers passes to jinja2 and keeps every failure —
// including allocation failure and nlohmann exceptions — inside a Status.
#include "tokenizer/chat_template.h"

#include <new>
#include <nlohmann/json.hpp>

#include "tokenizer/detail/jinja_builtins.h"
#include "tokenizer/detail/jinja_interpreter.h"
#include "tokenizer/detail/jinja_parser.h"

namespace tl {

Result<ChatTemplate> ChatTemplate::parse(std::string source, std::string origin) {
  try {
    TL_ASSIGN_OR_RETURN(std::shared_ptr<const jinja::TemplateAst> ast, jinja::parse_template(source, origin));
    return ChatTemplate(std::move(source), std::move(origin), std::move(ast));
  } catch (const std::bad_alloc&) {
    return resource_exhausted("{}: out of memory while parsing the chat template", origin);
  }
}

template <typename Json>
Result<std::string> ChatTemplate::render_impl(const Json& context, const ChatTemplateOptions& options) const {
  try {
    if (!context.is_object()) return invalid_argument("{}: render context must be a JSON object", origin_);
    auto globals = std::make_shared<jinja::Frame>();
    jinja::add_globals(*globals);
    // transformers always passes these three; templates test `tools is none` rather than defined.
    globals->vars["tools"] = jinja::Value(jinja::None{});
    globals->vars["documents"] = jinja::Value(jinja::None{});
    globals->vars["add_generation_prompt"] = jinja::Value(false);
    for (auto it = context.begin(); it != context.end(); ++it) {
      auto value = jinja::from_json(it.value());
      if (!value.is_ok()) return value.status().with_context(origin_ + ": context key '" + it.key() + "'");
      globals->vars[it.key()] = std::move(value).value();
    }
    jinja::InterpreterLimits limits;
    limits.max_output_bytes = options.max_output_bytes;
    limits.max_steps = options.max_steps;
    limits.max_call_depth = options.max_call_depth;
    jinja::Interpreter interpreter(*ast_, origin_, limits, options.now_utc);
    return interpreter.render(std::move(globals));
  } catch (const std::bad_alloc&) {
    return resource_exhausted("{}: out of memory while rendering the chat template", origin_);
  } catch (const std::exception& e) {
    return internal_error("{}: unexpected failure while rendering: {}", origin_, e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::json& context, const ChatTemplateOptions& options) const {
  return render_impl(context, options);
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context, const ChatTemplateOptions& options) const {
  return render_impl(context, options);
}

Result<std::string> ChatTemplate::render_json(std::string_view context_json, const ChatTemplateOptions& options) const {
  nlohmann::ordered_json context;
  try {
    context = nlohmann::ordered_json::parse(context_json.begin(), context_json.end());
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_argument("{}: render context is not valid JSON: {}", origin_, e.what());
  }
  return render_impl(context, options);
}

}  // namespace tl
