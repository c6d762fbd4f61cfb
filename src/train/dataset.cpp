#include "train/dataset.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <sstream>

#include "core/file.h"
#include "io/json_text.h"
#include "tokenizer/chat_template.h"

namespace tl {

namespace {

using ojson = nlohmann::ordered_json;

struct Conversation {
  ojson messages = ojson::array();
  ojson tools;                       // null or a list
  std::vector<bool> trained;         // per message: assistant turns to learn (weight != 0)
};

Result<DataFormat> detect(const ojson& j) {
  if (j.contains("messages")) return DataFormat::kOpenAIChat;
  if (j.contains("conversations")) return DataFormat::kShareGPT;
  if (j.contains("chosen") || j.contains("preferred_output")) return DataFormat::kDpo;
  if (j.contains("instruction") && j.contains("output")) return DataFormat::kAlpaca;
  if (j.contains("input") && j.contains("output")) return DataFormat::kInputOutput;
  return invalid_argument(
      "cannot tell the format (expected keys messages, conversations, instruction/output, input/output or "
      "prompt/chosen/rejected)");
}

Result<std::string> string_field(const ojson& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return invalid_argument("missing string field '{}'", key);
    return std::string();
  }
  if (!it->is_string()) return invalid_argument("field '{}' must be a string", key);
  return it->get<std::string>();
}

Result<Conversation> to_conversation(const ojson& j, DataFormat format) {
  Conversation c;
  switch (format) {
    case DataFormat::kOpenAIChat: {
      const ojson& msgs = j["messages"];
      if (!msgs.is_array() || msgs.empty()) return invalid_argument("'messages' must be a non-empty list");
      for (size_t i = 0; i < msgs.size(); ++i) {
        const ojson& m = msgs[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
          return invalid_argument("messages[{}]: expected an object with a string 'role'", i);
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant" && role != "tool" && role != "developer")
          return invalid_argument("messages[{}]: unknown role '{}'", i, role);
        if (m.contains("content") && !m["content"].is_string() && !m["content"].is_array() && !m["content"].is_null())
          return invalid_argument("messages[{}]: content must be a string, a list of parts or null", i);
        bool trained = role == "assistant";
        if (m.contains("weight")) {
          if (!m["weight"].is_number_integer() || (m["weight"] != 0 && m["weight"] != 1))
            return invalid_argument("messages[{}]: weight must be 0 or 1", i);
          trained = trained && m["weight"] == 1;
        }
        ojson copy = m;
        copy.erase("weight");
        c.messages.push_back(copy);
        c.trained.push_back(trained);
      }
      if (j.contains("tools")) c.tools = j["tools"];
      return c;
    }
    case DataFormat::kShareGPT: {
      const ojson& conv = j["conversations"];
      if (!conv.is_array() || conv.empty()) return invalid_argument("'conversations' must be a non-empty list");
      for (size_t i = 0; i < conv.size(); ++i) {
        const ojson& m = conv[i];
        if (!m.is_object() || !m.contains("from") || !m["from"].is_string() || !m.contains("value") || !m["value"].is_string())
          return invalid_argument("conversations[{}]: expected an object with string 'from' and 'value'", i);
        const std::string from = m["from"].get<std::string>();
        std::string role;
        if (from == "human" || from == "user") role = "user";
        else if (from == "gpt" || from == "assistant" || from == "model") role = "assistant";
        else if (from == "system") role = "system";
        else if (from == "tool" || from == "function_response" || from == "observation") role = "tool";
        else return invalid_argument("conversations[{}]: unknown speaker '{}' (expected human, gpt, system or tool)", i, from);
        c.messages.push_back(ojson{{"role", role}, {"content", m["value"]}});
        c.trained.push_back(role == "assistant");
      }
      return c;
    }
    case DataFormat::kAlpaca: {
      TL_ASSIGN_OR_RETURN(std::string instruction, string_field(j, "instruction", true));
      TL_ASSIGN_OR_RETURN(std::string input, string_field(j, "input", false));
      TL_ASSIGN_OR_RETURN(std::string output, string_field(j, "output", true));
      std::string prompt = input.empty() ? instruction : instruction + "\n\n" + input;
      c.messages.push_back(ojson{{"role", "user"}, {"content", prompt}});
      c.messages.push_back(ojson{{"role", "assistant"}, {"content", output}});
      c.trained = {false, true};
      return c;
    }
    case DataFormat::kInputOutput: {
      TL_ASSIGN_OR_RETURN(std::string input, string_field(j, "input", true));
      TL_ASSIGN_OR_RETURN(std::string output, string_field(j, "output", true));
      c.messages.push_back(ojson{{"role", "user"}, {"content", input}});
      c.messages.push_back(ojson{{"role", "assistant"}, {"content", output}});
      c.trained = {false, true};
      return c;
    }
    case DataFormat::kDpo:
      return invalid_argument("preference records (prompt/chosen/rejected) train with method: dpo");
    case DataFormat::kAuto: break;
  }
  return internal_error("unresolved dataset format");
}

class Renderer {
 public:
  Renderer(const Tokenizer& tok, const ChatTemplate* tmpl) : tok_(tok), tmpl_(tmpl) {}

  Result<std::string> render(const Conversation& c, size_t count, bool add_generation_prompt) const {
    ojson ctx = ojson::object();
    ojson msgs = ojson::array();
    for (size_t i = 0; i < count; ++i) msgs.push_back(c.messages[i]);
    ctx["messages"] = msgs;
    if (!c.tools.is_null()) ctx["tools"] = c.tools;
    ctx["add_generation_prompt"] = add_generation_prompt;
    ctx["bos_token"] = tok_.bos_token();
    ctx["eos_token"] = tok_.eos_token();
    return tmpl_->render(ctx);
  }

  // Tokens and per-token "trained" flags for a conversation.
  Status tokenize(const Conversation& c, bool train_on_all, std::vector<int32_t>* ids, std::vector<bool>* trained) const {
    std::vector<std::pair<std::string, bool>> pieces;
    if (!tmpl_) {
      // Prompt/completion without a chat template: the user text, then the answer and eos.
      if (c.messages.size() != 2) return invalid_argument("the model has no chat_template; only single prompt/completion records can be used");
      pieces.emplace_back(c.messages[0]["content"].get<std::string>(), train_on_all);
      pieces.emplace_back(c.messages[1]["content"].get<std::string>() + tok_.eos_token(), true);
    } else {
      TL_ASSIGN_OR_RETURN(std::string full, render(c, c.messages.size(), false));
      size_t cursor = 0;
      for (size_t i = 0; i < c.messages.size(); ++i) {
        if (!c.trained[i]) continue;
        TL_ASSIGN_OR_RETURN(std::string pre, render(c, i, true));
        TL_ASSIGN_OR_RETURN(std::string post, render(c, i + 1, false));
        if (post.compare(0, pre.size(), pre) != 0 || full.compare(0, post.size(), post) != 0 || pre.size() < cursor) {
          return invalid_argument("messages[{}]: the chat template does not render this conversation prefix-stably, so the "
                                  "assistant turn cannot be located (try train_on: all)", i);
        }
        pieces.emplace_back(full.substr(cursor, pre.size() - cursor), train_on_all);
        pieces.emplace_back(full.substr(pre.size(), post.size() - pre.size()), true);
        cursor = post.size();
      }
      pieces.emplace_back(full.substr(cursor), train_on_all);
    }
    for (const auto& [text, flag] : pieces) {
      if (text.empty()) continue;
      TL_ASSIGN_OR_RETURN(std::vector<int32_t> part, tok_.encode(text, false));
      ids->insert(ids->end(), part.begin(), part.end());
      trained->insert(trained->end(), part.size(), flag);
    }
    return Status::ok();
  }

 private:
  const Tokenizer& tok_;
  const ChatTemplate* tmpl_;
};

}  // namespace

namespace {

Result<std::optional<ChatTemplate>> default_template(const Tokenizer& tokenizer) {
  std::optional<ChatTemplate> tmpl;
  if (auto it = tokenizer.chat_templates().find("default"); it != tokenizer.chat_templates().end()) {
    auto parsed = ChatTemplate::parse(it->second, "chat_template");
    if (!parsed.is_ok()) return parsed.status();
    tmpl.emplace(std::move(parsed).value());
  }
  return tmpl;
}

// Reads a JSONL file and calls fn(record, line) for each non-empty line, after checking it is a JSON
// object of one format (`format`: the given one, or auto, which the first record fixes). fn's errors and
// ours name the file and line.
template <typename Fn>
Status for_each_record(const std::string& path, DataFormat* format, DatasetStats* st, Fn fn) {
  TL_ASSIGN_OR_RETURN(std::string text, read_file(path));
  int64_t format_line = 0;
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++st->lines;
    auto fail = [&](const Status& s) { return Status(s.code(), fmt::format("{}:{}: {}", path, lineno, s.message())); };
    ojson j = ojson::parse(line, nullptr, false);
    if (j.is_discarded()) return fail(invalid_argument("invalid JSON ({})", json_syntax_error(line)));
    if (!j.is_object()) return fail(invalid_argument("not a JSON object"));
    auto detected = detect(j);
    if (!detected.is_ok()) return fail(detected.status());
    if (*format == DataFormat::kAuto) {
      *format = *detected;
      format_line = lineno;
    } else if (*detected != *format) {
      return fail(invalid_argument("record looks like {} but the file is {}{}", data_format_name(*detected),
                                   data_format_name(*format),
                                   format_line ? fmt::format(" (from line {})", format_line) : std::string(" (dataset.format)")));
    }
    Status s = fn(j, lineno);
    if (!s.is_ok()) return fail(s);
  }
  if (st->lines == 0) return invalid_argument("{}: empty dataset (no JSON lines)", path);
  return Status::ok();
}

// Tokens and targets of a conversation, truncated to max_seq_len; nullopt when truncation cut away
// every trained token (counted in st).
Result<std::optional<Example>> make_example(const Renderer& renderer, const Conversation& conv, const DataOptions& options,
                                            int64_t lineno, DatasetStats* st) {
  std::vector<int32_t> ids;
  std::vector<bool> trained;
  TL_TRY(renderer.tokenize(conv, options.train_on_all, &ids, &trained));
  Example ex;
  ex.line = lineno;
  ex.tokens = ids;
  ex.targets.assign(ids.size(), -1);
  int64_t n_trained = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t)
    if (trained[t + 1]) {
      ex.targets[t] = ids[t + 1];
      ++n_trained;
    }
  if (n_trained == 0) return invalid_argument("no token to train on (no assistant turn with weight 1)");
  if (static_cast<int64_t>(ex.tokens.size()) > options.max_seq_len) {
    ++st->truncated;
    ex.tokens.resize(static_cast<size_t>(options.max_seq_len));
    ex.targets.resize(static_cast<size_t>(options.max_seq_len));
    ex.targets.back() = -1;  // its next token was cut away
    n_trained = std::count_if(ex.targets.begin(), ex.targets.end(), [](int32_t v) { return v >= 0; });
    if (n_trained == 0) {
      ++st->dropped_after_truncation;
      return std::optional<Example>();
    }
  }
  st->tokens += static_cast<int64_t>(ex.tokens.size());
  st->trained_tokens += n_trained;
  return std::optional<Example>(std::move(ex));
}

// A prompt or completion of a preference record: a string (one message of `role`) or a list of messages.
Result<Conversation> dpo_part(const ojson& j, const char* key, const char* role) {
  auto it = j.find(key);
  if (it == j.end()) return invalid_argument("missing field '{}'", key);
  if (it->is_string()) {
    Conversation c;
    c.messages.push_back(ojson{{"role", role}, {"content", *it}});
    c.trained.push_back(std::string(role) == "assistant");
    return c;
  }
  if (!it->is_array()) return invalid_argument("field '{}' must be a string or a list of messages", key);
  auto c = to_conversation(ojson{{"messages", *it}}, DataFormat::kOpenAIChat);
  if (!c.is_ok()) return Status(c.status().code(), fmt::format("{}: {}", key, c.status().message()));
  return c;
}

// The prompt's messages (never trained) followed by a completion's.
Conversation concat(const Conversation& prompt, const Conversation& completion) {
  Conversation c = prompt;
  c.trained.assign(c.trained.size(), false);
  for (size_t i = 0; i < completion.messages.size(); ++i) {
    c.messages.push_back(completion.messages[i]);
    c.trained.push_back(completion.trained[i]);
  }
  return c;
}

}  // namespace

Result<std::vector<Example>> load_examples(const std::string& path, const Tokenizer& tokenizer, const DataOptions& options,
                                           DatasetStats* stats) {
  TL_ASSIGN_OR_RETURN(std::optional<ChatTemplate> tmpl, default_template(tokenizer));
  Renderer renderer(tokenizer, tmpl ? &*tmpl : nullptr);
  DatasetStats st;
  st.path = path;
  DataFormat format = options.format;
  std::vector<Example> out;
  TL_TRY(for_each_record(path, &format, &st, [&](const ojson& j, int64_t lineno) -> Status {
    TL_ASSIGN_OR_RETURN(Conversation conv, to_conversation(j, format));
    if (!tmpl && format != DataFormat::kAlpaca && format != DataFormat::kInputOutput) {
      return invalid_argument("the model's tokenizer_config.json has no chat_template, needed for {} records",
                              data_format_name(format));
    }
    TL_ASSIGN_OR_RETURN(std::optional<Example> ex, make_example(renderer, conv, options, lineno, &st));
    if (ex) out.push_back(std::move(*ex));
    return Status::ok();
  }));
  if (out.empty()) return invalid_argument("{}: every example lost its trained tokens to max_seq_len truncation", path);
  st.examples = static_cast<int64_t>(out.size());
  st.format = data_format_name(format);
  if (stats) *stats = st;
  return out;
}

Result<DataFormat> detect_file_format(const std::string& path) {
  DataFormat format = DataFormat::kAuto;
  DatasetStats st;
  // Every record is checked against the first's format, so a mixed file fails here, naming the line.
  TL_TRY(for_each_record(path, &format, &st, [](const ojson&, int64_t) { return Status::ok(); }));
  return format;
}

Result<std::vector<PreferencePair>> load_preference_pairs(const std::string& path, const Tokenizer& tokenizer,
                                                          const DataOptions& options, DatasetStats* stats) {
  TL_ASSIGN_OR_RETURN(std::optional<ChatTemplate> tmpl, default_template(tokenizer));
  if (!tmpl) return invalid_argument("{}: the model's tokenizer_config.json has no chat_template, needed for dpo records", path);
  Renderer renderer(tokenizer, &*tmpl);
  DatasetStats st;
  st.path = path;
  DataFormat format = options.format;
  DataOptions completion_only = options;
  completion_only.train_on_all = false;  // the preference is between completions
  std::vector<PreferencePair> out;
  TL_TRY(for_each_record(path, &format, &st, [&](const ojson& j, int64_t lineno) -> Status {
    if (format != DataFormat::kDpo)
      return invalid_argument("method: dpo needs preference records (prompt/chosen/rejected, or OpenAI's "
                              "input/preferred_output/non_preferred_output), not {}", data_format_name(format));
    Conversation prompt, chosen, rejected;
    if (j.contains("chosen")) {
      TL_ASSIGN_OR_RETURN(prompt, dpo_part(j, "prompt", "user"));
      TL_ASSIGN_OR_RETURN(chosen, dpo_part(j, "chosen", "assistant"));
      TL_ASSIGN_OR_RETURN(rejected, dpo_part(j, "rejected", "assistant"));
    } else {
      auto input = j.find("input");
      if (input == j.end() || !input->is_object() || !input->contains("messages"))
        return invalid_argument("expected 'input' to be an object with 'messages'");
      TL_ASSIGN_OR_RETURN(prompt, dpo_part(*input, "messages", "user"));
      if (input->contains("tools")) prompt.tools = (*input)["tools"];
      TL_ASSIGN_OR_RETURN(chosen, dpo_part(j, "preferred_output", "assistant"));
      TL_ASSIGN_OR_RETURN(rejected, dpo_part(j, "non_preferred_output", "assistant"));
    }
    PreferencePair pair;
    DatasetStats sides;  // the pair's counts, kept only if both sides are
    for (bool is_chosen : {true, false}) {
      auto ex = make_example(renderer, concat(prompt, is_chosen ? chosen : rejected), completion_only, lineno, &sides);
      if (!ex.is_ok()) return Status(ex.status().code(), fmt::format("{}: {}", is_chosen ? "chosen" : "rejected", ex.status().message()));
      st.truncated += sides.truncated;
      sides.truncated = 0;
      if (!*ex) {  // truncation left one side nothing to compare
        ++st.dropped_after_truncation;
        return Status::ok();
      }
      (is_chosen ? pair.chosen : pair.rejected) = std::move(**ex);
    }
    st.tokens += sides.tokens;
    st.trained_tokens += sides.trained_tokens;
    out.push_back(std::move(pair));
    return Status::ok();
  }));
  if (out.empty()) return invalid_argument("{}: every pair lost its trained tokens to max_seq_len truncation", path);
  st.examples = static_cast<int64_t>(out.size());
  st.format = data_format_name(format);
  if (stats) *stats = st;
  return out;
}

std::vector<TrainSequence> pack_examples(const std::vector<Example>& examples, int64_t max_seq_len, bool packing) {
  std::vector<TrainSequence> out;
  for (const Example& e : examples) {
    if (!packing || out.empty() || out.back().size() + static_cast<int64_t>(e.tokens.size()) > max_seq_len) {
      out.emplace_back();
    }
    out.back().append(e.tokens, e.targets);
  }
  return out;
}

}  // namespace tl
