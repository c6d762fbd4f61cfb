#include "cli/chat_input.h"

#include "core/file.h"
#include "tokenizer/chat_template.h"

namespace tl::cli {

Result<nlohmann::ordered_json> read_chat_file(const std::string& path) {
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_argument("{}: not valid JSON (byte {}): expected a list of messages or an object with 'messages'",
                            path, e.byte);
  }
  if (j.is_array()) j = nlohmann::ordered_json{{"messages", j}};
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) {
    return invalid_argument("{}: expected a list of messages or an object with a 'messages' list", path);
  }
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const auto& m = j["messages"][i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return invalid_argument("{}: messages[{}]: expected an object with a string 'role'", path, i);
    }
  }
  return j;
}

Result<std::string> render_chat(const Tokenizer& tokenizer, nlohmann::ordered_json context, bool add_generation_prompt,
                                const std::string& model_dir) {
  const auto& templates = tokenizer.chat_templates();
  std::string name = "default";
  if (context.contains("tools") && templates.count("tool_use")) name = "tool_use";
  auto it = templates.find(name);
  if (it == templates.end()) {
    return not_found("{}: tokenizer_config.json has no chat_template{}", model_dir,
                     templates.empty() ? "" : " named 'default'");
  }
  TL_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::parse(it->second, model_dir + "/tokenizer_config.json chat_template"));
  context["add_generation_prompt"] = add_generation_prompt;
  if (!context.contains("bos_token")) context["bos_token"] = tokenizer.bos_token();
  if (!context.contains("eos_token")) context["eos_token"] = tokenizer.eos_token();
  return tmpl.render(context);
}

}  // namespace tl::cli
