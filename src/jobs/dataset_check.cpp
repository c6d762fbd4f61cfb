// Line-by-line JSONL checks with nlohmann::json. A line's format is recognised from its keys; all lines
// of a file must share the first line's format (the trainer reads one format per file).
#include "jobs/dataset_check.h"

#include <nlohmann/json.hpp>

#include <vector>

namespace tl::jobs {
namespace {

using nlohmann::json;

int64_t text_tokens(const json& v) {
  if (v.is_string()) return static_cast<int64_t>(v.get_ref<const std::string&>().size()) / 4 + 1;
  if (v.is_array()) {  // content parts: [{"type":"text","text":...}]
    int64_t n = 0;
    for (const auto& p : v)
      if (p.is_object() && p.contains("text")) n += text_tokens(p["text"]);
    return n;
  }
  return 0;
}

// Returns "" when the messages array is valid, else why not.
std::string check_messages(const json& msgs, const char* role_key, const char* content_key, int64_t* tokens) {
  if (!msgs.is_array() || msgs.empty()) return "expected a non-empty array of messages";
  bool has_assistant = false;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    if (!m.is_object()) return fmt::format("message {} is not an object", i);
    if (!m.contains(role_key) || !m[role_key].is_string()) return fmt::format("message {} has no string '{}'", i, role_key);
    const std::string& role = m[role_key].get_ref<const std::string&>();
    if (role == "assistant" || role == "gpt") has_assistant = true;
    bool tool_call = m.contains("tool_calls") || m.contains("function_call");
    if (!m.contains(content_key) || (!m[content_key].is_string() && !m[content_key].is_array() && !(m[content_key].is_null() && tool_call)))
      return fmt::format("message {} has no '{}' (string)", i, content_key);
    if (m.contains("weight") && !(m["weight"] == 0 || m["weight"] == 1)) return fmt::format("message {}: weight must be 0 or 1", i);
    *tokens += text_tokens(m[content_key]) + 4;
  }
  if (!has_assistant) return "no assistant message to learn from";
  return "";
}

struct LineResult {
  std::string format;
  std::string error;
  int64_t tokens = 0;
};

LineResult check_line(const json& ex) {
  LineResult r;
  auto str = [&](const char* k) { return ex.contains(k) && ex[k].is_string(); };
  if (!ex.is_object()) {
    r.error = "expected a JSON object";
  } else if (ex.contains("messages")) {
    r.format = "openai_chat";
    r.error = check_messages(ex["messages"], "role", "content", &r.tokens);
  } else if (ex.contains("conversations")) {
    r.format = "sharegpt";
    r.error = check_messages(ex["conversations"], "from", "value", &r.tokens);
  } else if (ex.contains("instruction") || (ex.contains("output") && !ex.contains("input"))) {
    r.format = "alpaca";
    if (!str("instruction") || !str("output")) r.error = "alpaca examples need string 'instruction' and 'output'";
    else r.tokens = text_tokens(ex["instruction"]) + text_tokens(ex["output"]) + (str("input") ? text_tokens(ex["input"]) : 0);
  } else if (ex.contains("chosen") || ex.contains("preferred_output")) {
    r.format = "dpo";
    if (ex.contains("chosen")) {
      if (!str("prompt") || !str("chosen") || !str("rejected")) r.error = "dpo examples need string 'prompt', 'chosen' and 'rejected'";
      else r.tokens = 2 * text_tokens(ex["prompt"]) + text_tokens(ex["chosen"]) + text_tokens(ex["rejected"]);
    } else {
      // OpenAI's preference format: input.messages, preferred_output / non_preferred_output message arrays.
      if (!ex.contains("input") || !ex["input"].is_object() || !ex["input"].contains("messages") ||
          !ex.contains("non_preferred_output")) {
        r.error = "dpo examples need 'input.messages', 'preferred_output' and 'non_preferred_output'";
      } else {
        int64_t t = 0;
        for (const char* k : {"preferred_output", "non_preferred_output"}) {
          if (!ex[k].is_array()) r.error = fmt::format("'{}' must be an array of messages", k);
          else for (const auto& m : ex[k]) if (m.is_object() && m.contains("content")) t += text_tokens(m["content"]) + 4;
        }
        for (const auto& m : ex["input"]["messages"]) if (m.is_object() && m.contains("content")) t += 2 * (text_tokens(m["content"]) + 4);
        r.tokens = t;
      }
    }
  } else if (ex.contains("input") && ex.contains("output")) {
    r.format = "input_output";
    if (!str("input") || !str("output")) r.error = "input_output examples need string 'input' and 'output'";
    else r.tokens = text_tokens(ex["input"]) + text_tokens(ex["output"]);
  } else {
    r.error = "unrecognised example: expected 'messages' (openai_chat), 'conversations' (sharegpt), "
              "'instruction'+'output' (alpaca), 'input'+'output', or 'prompt'+'chosen'+'rejected' (dpo)";
  }
  return r;
}

}  // namespace

Result<DatasetSummary> check_jsonl_dataset(std::string_view content, const std::string& name, int max_reported) {
  DatasetSummary s;
  std::vector<std::string> errors;
  int64_t bad = 0, first_line = 0;
  size_t pos = 0;
  int64_t line_no = 0;
  auto report = [&](int64_t line, const std::string& why) {
    ++bad;
    if (static_cast<int>(errors.size()) < max_reported) errors.push_back(fmt::format("line {}: {}", line, why));
  };
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      report(line_no, "empty line (JSONL needs one JSON object per line)");
      continue;
    }
    json ex = json::parse(line, nullptr, false);
    if (ex.is_discarded()) {
      report(line_no, "not valid JSON");
      continue;
    }
    LineResult r = check_line(ex);
    if (!r.error.empty()) {
      report(line_no, r.format.empty() ? r.error : r.format + ": " + r.error);
      continue;
    }
    if (s.format.empty()) {
      s.format = r.format;
      first_line = line_no;
    } else if (r.format != s.format) {
      report(line_no, fmt::format("format {} differs from {} on line {} (one format per file)", r.format, s.format, first_line));
      continue;
    }
    ++s.lines;
    s.token_estimate += r.tokens;
  }
  if (bad > 0) {
    std::string msg = name + ": ";
    for (size_t i = 0; i < errors.size(); ++i) msg += (i ? "; " : "") + errors[i];
    if (bad > static_cast<int64_t>(errors.size())) msg += fmt::format("; and {} more bad lines", bad - static_cast<int64_t>(errors.size()));
    return Status(StatusCode::kInvalidArgument, msg);
  }
  if (s.lines == 0) return invalid_argument("{}: no examples (an empty file)", name);
  return s;
}

}  // namespace tl::jobs
