// Loader: tokenizer.json (+ tokenizer_config.json) -> TokenizerImpl.
//
// All JSON handling of the tokenizer lives in this one translation unit (nlohmann/json is heavy to
// compile). Every expected failure is a Status whose message names the file, the JSON path and what was
// expected, e.g. "tokenizer.json: pre_tokenizer.pretokenizers[1].type: unsupported 'Whitespace'
// (supported: ...)". Unsupported-but-valid components get kUnimplemented; malformed input gets
// kInvalidArgument. nlohmann's parse exceptions are caught here and never leave the module.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>

#include "tokenizer/detail/tokenizer_impl.h"
#include "tokenizer/detail/unicode.h"

namespace tl::tokenizer_detail {

namespace {

using json = nlohmann::json;

// Ids above this are refused: real vocabularies stay far below it, and id_to_token is a dense vector.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;
// Sequence nesting deeper than this is refused (the loader recurses once per level).
constexpr int kMaxNesting = 32;

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string item(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

const char* type_name(const json& j) { return j.type_name(); }

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}

  template <typename... Args>
  Status invalid(const std::string& path, fmt::format_string<Args...> f, Args&&... args) const {
    return invalid_argument("{}: {}: {}", file_, path, fmt::format(f, std::forward<Args>(args)...));
  }
  Status unsupported(const std::string& path, const std::string& type, std::string_view supported) const {
    return unimplemented("{}: {}: unsupported '{}' (supported: {})", file_, path, type, supported);
  }

  // A field that may be absent or null: returns nullptr then.
  static const json* optional(const json& obj, std::string_view key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  Result<const json*> required(const json& obj, const std::string& path, std::string_view key) const {
    const json* v = optional(obj, key);
    if (v == nullptr) return invalid(child(path, key), "missing (required)");
    return v;
  }
  Result<std::string> get_string(const json& obj, const std::string& path, std::string_view key) const {
    TL_ASSIGN_OR_RETURN(const json* v, required(obj, path, key));
    if (!v->is_string()) return invalid(child(path, key), "expected a string, got {}", type_name(*v));
    return v->get<std::string>();
  }
  Result<std::optional<std::string>> get_optional_string(const json& obj, const std::string& path,
                                                         std::string_view key) const {
    const json* v = optional(obj, key);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return invalid(child(path, key), "expected a string or null, got {}", type_name(*v));
    return std::optional<std::string>(v->get<std::string>());
  }
  Result<bool> get_bool(const json& obj, const std::string& path, std::string_view key, bool fallback) const {
    const json* v = optional(obj, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return invalid(child(path, key), "expected true or false, got {}", type_name(*v));
    return v->get<bool>();
  }
  Result<int64_t> get_uint(const json& v, const std::string& path, int64_t max) const {
    if (!v.is_number_integer()) return invalid(path, "expected a non-negative integer, got {}", type_name(v));
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(max) : (v.get<int64_t>() < 0 || v.get<int64_t>() > max)) {
      return invalid(path, "{} is out of range (0..{})", v.dump(), max);
    }
    return v.get<int64_t>();
  }
  Result<std::string> get_type(const json& obj, const std::string& path) const {
    if (!obj.is_object()) return invalid(path, "expected an object, got {}", type_name(obj));
    return get_string(obj, path, "type");
  }
  // One Unicode character (Metaspace replacement, Strip content are Rust chars).
  Result<std::string> get_char(const json& obj, const std::string& path, std::string_view key) const {
    TL_ASSIGN_OR_RETURN(std::string s, get_string(obj, path, key));
    if (s.empty() || utf8_char_length(static_cast<unsigned char>(s[0])) != s.size()) {
      return invalid(child(path, key), "expected exactly one character, got '{}'", s);
    }
    return s;
  }

  // {"String": "..."} or {"Regex": "..."}.
  Result<std::shared_ptr<const Regex>> get_pattern(const json& obj, const std::string& path) const {
    TL_ASSIGN_OR_RETURN(const json* p, required(obj, path, "pattern"));
    const std::string ppath = child(path, "pattern");
    if (!p->is_object() || p->size() != 1) {
      return invalid(ppath, "expected {{\"String\": ...}} or {{\"Regex\": ...}}");
    }
    if (const json* s = optional(*p, "String")) {
      if (!s->is_string()) return invalid(child(ppath, "String"), "expected a string, got {}", type_name(*s));
      return Regex::literal(s->get<std::string>());
    }
    if (const json* r = optional(*p, "Regex")) {
      if (!r->is_string()) return invalid(child(ppath, "Regex"), "expected a string, got {}", type_name(*r));
      std::string error;
      auto re = Regex::compile(r->get<std::string>(), &error);
      if (!re) return invalid(child(ppath, "Regex"), "invalid regex: {}", error);
      return re;
    }
    return invalid(ppath, "expected {{\"String\": ...}} or {{\"Regex\": ...}}, got key '{}'", p->begin().key());
  }

  Result<PrependScheme> get_prepend_scheme(const json& obj, const std::string& path) const {
    const json* v = optional(obj, "prepend_scheme");
    if (v == nullptr) {
      // Files saved before tokenizers 0.14 only have add_prefix_space (default true).
      TL_ASSIGN_OR_RETURN(bool add, get_bool(obj, path, "add_prefix_space", true));
      return add ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    if (*v == "always") return PrependScheme::kAlways;
    if (*v == "never") return PrependScheme::kNever;
    if (*v == "first") return PrependScheme::kFirst;
    return invalid(child(path, "prepend_scheme"), "expected \"always\", \"never\" or \"first\", got {}", v->dump());
  }

  Status parse_model(const json& root, TokenizerImpl& impl) const;
  Status parse_normalizer(const json& j, const std::string& path, int depth, Normalizer& out) const;
  Status parse_pre_tokenizer(const json& j, const std::string& path, int depth, PreTokenizer& out) const;
  Status parse_post_processor(const json& j, const std::string& path, int depth, TokenizerImpl& impl) const;
  Status parse_decoder(const json& j, const std::string& path, int depth, Decoder& out) const;
  Status parse_added_token(const json& j, const std::string& path, AddedToken& out) const;

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

Status Loader::parse_model(const json& root, TokenizerImpl& impl) const {
  TL_ASSIGN_OR_RETURN(const json* model, required(root, "", "model"));
  if (!model->is_object()) return invalid("model", "expected an object, got {}", type_name(*model));
  std::string type = "BPE";
  if (optional(*model, "type") != nullptr || optional(*model, "merges") == nullptr) {
    TL_ASSIGN_OR_RETURN(type, get_string(*model, "model", "type"));
  }  // else: files from tokenizers < 0.10 may omit the type; a model with merges is BPE
  if (type != "BPE") return unsupported("model.type", type, "BPE");
  BpeModel& bpe = impl.model;

  if (const json* dropout = optional(*model, "dropout")) {
    if (!dropout->is_number()) return invalid("model.dropout", "expected a number or null, got {}", type_name(*dropout));
    if (dropout->get<double>() > 0.0) {
      return unimplemented("{}: model.dropout: {} is not supported (BPE dropout makes encoding random; use null)",
                           file_, dropout->dump());
    }
  }
  TL_ASSIGN_OR_RETURN(bpe.unk_token, get_optional_string(*model, "model", "unk_token"));
  TL_ASSIGN_OR_RETURN(auto prefix, get_optional_string(*model, "model", "continuing_subword_prefix"));
  TL_ASSIGN_OR_RETURN(auto suffix, get_optional_string(*model, "model", "end_of_word_suffix"));
  bpe.continuing_subword_prefix = prefix.value_or("");
  bpe.end_of_word_suffix = suffix.value_or("");
  TL_ASSIGN_OR_RETURN(bpe.fuse_unk, get_bool(*model, "model", "fuse_unk", false));
  TL_ASSIGN_OR_RETURN(bpe.byte_fallback, get_bool(*model, "model", "byte_fallback", false));
  TL_ASSIGN_OR_RETURN(bpe.ignore_merges, get_bool(*model, "model", "ignore_merges", false));

  TL_ASSIGN_OR_RETURN(const json* vocab, required(*model, "model", "vocab"));
  if (!vocab->is_object()) return invalid("model.vocab", "expected an object of token -> id, got {}", type_name(*vocab));
  const int64_t max_id = std::min<int64_t>(kMaxTokenId, 16 * static_cast<int64_t>(vocab->size()) + 4096);
  bpe.vocab.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    TL_ASSIGN_OR_RETURN(int64_t id, get_uint(it.value(), "model.vocab[\"" + it.key() + "\"]", max_id));
    bpe.vocab.emplace(it.key(), static_cast<int32_t>(id));
    if (static_cast<size_t>(id) >= bpe.id_to_token.size()) bpe.id_to_token.resize(static_cast<size_t>(id) + 1);
    // Two tokens with one id: the first keeps the reverse mapping.
    if (bpe.id_to_token[static_cast<size_t>(id)].empty()) bpe.id_to_token[static_cast<size_t>(id)] = it.key();
  }

  const json* merges = optional(*model, "merges");
  if (merges == nullptr) return Status::ok();
  if (!merges->is_array()) return invalid("model.merges", "expected an array, got {}", type_name(*merges));
  bpe.merges.reserve(merges->size());
  auto id_of = [&](const std::string& token) -> int32_t {
    auto it = bpe.vocab.find(token);
    return it == bpe.vocab.end() ? -1 : it->second;
  };
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& m = (*merges)[i];
    const std::string path = item("model.merges", i);
    std::string left, right;
    if (m.is_array()) {
      if (m.size() != 2 || !m[0].is_string() || !m[1].is_string()) {
        return invalid(path, "expected [\"left\", \"right\"]");
      }
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      // "left right". A few real files (Llama-2) have merges of tokens that themselves contain spaces
      // ("▁  " = "▁" + " "), so when there is more than one space pick the split whose halves and
      // whole are all tokens; HF's split-on-space loader would fail on these lines.
      std::vector<size_t> spaces;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == ' ') spaces.push_back(k);
      }
      if (spaces.empty()) return invalid(path, "expected \"left right\", got '{}' (no space)", s);
      size_t chosen = spaces[0];
      if (spaces.size() > 1) {
        bool found = false;
        for (size_t k : spaces) {
          std::string l = s.substr(0, k), r = s.substr(k + 1);
          if (id_of(l) >= 0 && id_of(r) >= 0 && id_of(l + r) >= 0) {
            chosen = k;
            found = true;
            break;
          }
        }
        if (!found) return invalid(path, "cannot split '{}' into two tokens whose concatenation is a token", s);
      }
      left = s.substr(0, chosen);
      right = s.substr(chosen + 1);
    } else {
      return invalid(path, "expected a string \"left right\" or a pair [\"left\", \"right\"], got {}", type_name(m));
    }
    int32_t left_id = id_of(left), right_id = id_of(right);
    if (left_id < 0) return invalid(path, "'{}' is not in the vocabulary", left);
    if (right_id < 0) return invalid(path, "'{}' is not in the vocabulary", right);
    std::string merged = left;
    const std::string& p = bpe.continuing_subword_prefix;
    merged += (!p.empty() && right.compare(0, p.size(), p) == 0) ? right.substr(p.size()) : right;
    int32_t merged_id = id_of(merged);
    if (merged_id < 0) return invalid(path, "merged token '{}' is not in the vocabulary", merged);
    bpe.merges.insert(left_id, right_id, static_cast<int32_t>(i), merged_id);
  }
  return Status::ok();
}

constexpr std::string_view kNormalizers = "Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Strip";

Status Loader::parse_normalizer(const json& j, const std::string& path, int depth, Normalizer& out) const {
  if (depth > kMaxNesting) return invalid(path, "Sequence nested deeper than {} levels", kMaxNesting);
  TL_ASSIGN_OR_RETURN(std::string type, get_type(j, path));
  NormalizerStep step;
  if (type == "Sequence") {
    TL_ASSIGN_OR_RETURN(const json* list, required(j, path, "normalizers"));
    if (!list->is_array()) return invalid(child(path, "normalizers"), "expected an array, got {}", type_name(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      TL_TRY(parse_normalizer((*list)[i], item(child(path, "normalizers"), i), depth + 1, out));
    }
    return Status::ok();
  }
  if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    TL_ASSIGN_OR_RETURN(step.text, get_string(j, path, "prepend"));
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    TL_ASSIGN_OR_RETURN(step.pattern, get_pattern(j, path));
    TL_ASSIGN_OR_RETURN(step.text, get_string(j, path, "content"));
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    step.kind = NormalizerStep::Kind::kUnicode;
    step.form = type == "NFC" ? NormalForm::kNfc : type == "NFKC" ? NormalForm::kNfkc
              : type == "NFD" ? NormalForm::kNfd : NormalForm::kNfkd;
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::kStrip;
    TL_ASSIGN_OR_RETURN(step.strip_left, get_bool(j, path, "strip_left", true));
    TL_ASSIGN_OR_RETURN(step.strip_right, get_bool(j, path, "strip_right", true));
  } else {
    return unsupported(child(path, "type"), type, kNormalizers);
  }
  out.steps.push_back(std::move(step));
  return Status::ok();
}

constexpr std::string_view kPreTokenizers = "Sequence, ByteLevel, Split, Metaspace, Digits";

Status Loader::parse_pre_tokenizer(const json& j, const std::string& path, int depth, PreTokenizer& out) const {
  if (depth > kMaxNesting) return invalid(path, "Sequence nested deeper than {} levels", kMaxNesting);
  TL_ASSIGN_OR_RETURN(std::string type, get_type(j, path));
  PreTokenizerStep step;
  if (type == "Sequence") {
    TL_ASSIGN_OR_RETURN(const json* list, required(j, path, "pretokenizers"));
    if (!list->is_array()) return invalid(child(path, "pretokenizers"), "expected an array, got {}", type_name(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      TL_TRY(parse_pre_tokenizer((*list)[i], item(child(path, "pretokenizers"), i), depth + 1, out));
    }
    return Status::ok();
  }
  if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    TL_ASSIGN_OR_RETURN(step.add_prefix_space, get_bool(j, path, "add_prefix_space", true));
    TL_ASSIGN_OR_RETURN(step.use_regex, get_bool(j, path, "use_regex", true));
    if (step.use_regex) {
      std::string error;
      step.pattern = Regex::compile(kGpt2Pattern, &error);
      if (!step.pattern) return internal_error("GPT-2 pattern does not compile: {}", error);
    }
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    TL_ASSIGN_OR_RETURN(step.pattern, get_pattern(j, path));
    TL_ASSIGN_OR_RETURN(std::string behavior, get_string(j, path, "behavior"));
    if (behavior == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (behavior == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = SplitBehavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = SplitBehavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      step.behavior = SplitBehavior::kContiguous;
    } else {
      return invalid(child(path, "behavior"),
                     "expected Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous, got '{}'", behavior);
    }
    TL_ASSIGN_OR_RETURN(step.invert, get_bool(j, path, "invert", false));
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    TL_ASSIGN_OR_RETURN(step.replacement, get_char(j, path, "replacement"));
    TL_ASSIGN_OR_RETURN(step.prepend_scheme, get_prepend_scheme(j, path));
    TL_ASSIGN_OR_RETURN(step.split, get_bool(j, path, "split", true));
    // Metaspace splits on each replacement character, keeping it with the text after it.
    step.pattern = Regex::literal(step.replacement);
    step.behavior = SplitBehavior::kMergedWithNext;
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    TL_ASSIGN_OR_RETURN(bool individual, get_bool(j, path, "individual_digits", false));
    std::string error;
    step.pattern = Regex::compile(R"(\p{N})", &error);
    if (!step.pattern) return internal_error("digit pattern does not compile: {}", error);
    step.behavior = individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
  } else {
    return unsupported(child(path, "type"), type, kPreTokenizers);
  }
  out.steps.push_back(std::move(step));
  return Status::ok();
}

Status Loader::parse_post_processor(const json& j, const std::string& path, int depth, TokenizerImpl& impl) const {
  if (depth > kMaxNesting) return invalid(path, "Sequence nested deeper than {} levels", kMaxNesting);
  TL_ASSIGN_OR_RETURN(std::string type, get_type(j, path));
  if (type == "ByteLevel") return Status::ok();  // only adjusts offsets, which we do not track
  if (type == "Sequence") {
    TL_ASSIGN_OR_RETURN(const json* list, required(j, path, "processors"));
    if (!list->is_array()) return invalid(child(path, "processors"), "expected an array, got {}", type_name(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      TL_TRY(parse_post_processor((*list)[i], item(child(path, "processors"), i), depth + 1, impl));
    }
    return Status::ok();
  }
  if (type != "TemplateProcessing") return unsupported(child(path, "type"), type, "TemplateProcessing, ByteLevel, Sequence");
  if (impl.single_template) return unimplemented("{}: {}: more than one TemplateProcessing", file_, path);

  // special_tokens: name -> {"id": name, "ids": [...], "tokens": [...]}
  std::map<std::string, std::vector<int32_t>> specials;
  if (const json* st = optional(j, "special_tokens")) {
    if (!st->is_object()) return invalid(child(path, "special_tokens"), "expected an object, got {}", type_name(*st));
    for (auto it = st->begin(); it != st->end(); ++it) {
      const std::string spath = child(path, "special_tokens") + "[\"" + it.key() + "\"]";
      if (!it.value().is_object()) return invalid(spath, "expected an object, got {}", type_name(it.value()));
      TL_ASSIGN_OR_RETURN(const json* ids, required(it.value(), spath, "ids"));
      if (!ids->is_array()) return invalid(child(spath, "ids"), "expected an array, got {}", type_name(*ids));
      std::vector<int32_t>& out = specials[it.key()];
      for (size_t i = 0; i < ids->size(); ++i) {
        TL_ASSIGN_OR_RETURN(int64_t id, get_uint((*ids)[i], item(child(spath, "ids"), i), kMaxTokenId));
        out.push_back(static_cast<int32_t>(id));
      }
    }
  }
  TL_ASSIGN_OR_RETURN(const json* single, required(j, path, "single"));
  const std::string single_path = child(path, "single");
  if (!single->is_array()) return invalid(single_path, "expected an array of pieces, got {}", type_name(*single));
  std::vector<TemplatePiece> pieces;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& p = (*single)[i];
    const std::string ppath = item(single_path, i);
    TemplatePiece piece;
    if (const json* seq = p.is_object() ? optional(p, "Sequence") : nullptr) {
      TL_ASSIGN_OR_RETURN(std::string id, get_string(*seq, child(ppath, "Sequence"), "id"));
      if (id != "A") return invalid(child(ppath, "Sequence.id"), "expected \"A\" in the single template, got '{}'", id);
      piece.is_sequence = true;
    } else if (const json* sp = p.is_object() ? optional(p, "SpecialToken") : nullptr) {
      TL_ASSIGN_OR_RETURN(std::string id, get_string(*sp, child(ppath, "SpecialToken"), "id"));
      auto it = specials.find(id);
      if (it == specials.end()) return invalid(child(ppath, "SpecialToken.id"), "'{}' is not in special_tokens", id);
      piece.ids = it->second;
    } else {
      return invalid(ppath, "expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
    }
    pieces.push_back(std::move(piece));
  }
  impl.single_template = std::move(pieces);
  return Status::ok();
}

constexpr std::string_view kDecoders = "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace";

Status Loader::parse_decoder(const json& j, const std::string& path, int depth, Decoder& out) const {
  if (depth > kMaxNesting) return invalid(path, "Sequence nested deeper than {} levels", kMaxNesting);
  TL_ASSIGN_OR_RETURN(std::string type, get_type(j, path));
  DecoderStep step;
  if (type == "Sequence") {
    TL_ASSIGN_OR_RETURN(const json* list, required(j, path, "decoders"));
    if (!list->is_array()) return invalid(child(path, "decoders"), "expected an array, got {}", type_name(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      TL_TRY(parse_decoder((*list)[i], item(child(path, "decoders"), i), depth + 1, out));
    }
    return Status::ok();
  }
  if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::kReplace;
    TL_ASSIGN_OR_RETURN(step.pattern, get_pattern(j, path));
    TL_ASSIGN_OR_RETURN(step.content, get_string(j, path, "content"));
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::kStrip;
    TL_ASSIGN_OR_RETURN(step.content, get_char(j, path, "content"));
    TL_ASSIGN_OR_RETURN(const json* start, required(j, path, "start"));
    TL_ASSIGN_OR_RETURN(int64_t s, get_uint(*start, child(path, "start"), std::numeric_limits<int32_t>::max()));
    TL_ASSIGN_OR_RETURN(const json* stop, required(j, path, "stop"));
    TL_ASSIGN_OR_RETURN(int64_t e, get_uint(*stop, child(path, "stop"), std::numeric_limits<int32_t>::max()));
    step.start = static_cast<size_t>(s);
    step.stop = static_cast<size_t>(e);
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::kMetaspace;
    TL_ASSIGN_OR_RETURN(step.content, get_char(j, path, "replacement"));
    TL_ASSIGN_OR_RETURN(step.prepend_scheme, get_prepend_scheme(j, path));
  } else {
    return unsupported(child(path, "type"), type, kDecoders);
  }
  out.steps.push_back(std::move(step));
  return Status::ok();
}

Status Loader::parse_added_token(const json& j, const std::string& path, AddedToken& out) const {
  if (!j.is_object()) return invalid(path, "expected an object, got {}", type_name(j));
  TL_ASSIGN_OR_RETURN(out.content, get_string(j, path, "content"));
  TL_ASSIGN_OR_RETURN(out.single_word, get_bool(j, path, "single_word", false));
  TL_ASSIGN_OR_RETURN(out.lstrip, get_bool(j, path, "lstrip", false));
  TL_ASSIGN_OR_RETURN(out.rstrip, get_bool(j, path, "rstrip", false));
  TL_ASSIGN_OR_RETURN(out.normalized, get_bool(j, path, "normalized", true));
  TL_ASSIGN_OR_RETURN(out.special, get_bool(j, path, "special", false));
  return Status::ok();
}

Result<json> parse_json(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."; keep the part
    // after the bracketed id.
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    return invalid_argument("{}: malformed JSON at byte {}: {}", file, e.byte, what);
  } catch (const json::exception& e) {
    // Other parser failures (e.g. out_of_range.406 "number overflow parsing '9e999'") carry no position.
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    return invalid_argument("{}: malformed JSON: {}", file, what);
  }
}

// bos_token / eos_token in tokenizer_config.json: a string, an AddedToken object, or null.
Result<std::string> config_token(const Loader& loader, const json& config, std::string_view key) {
  const json* v = Loader::optional(config, key);
  if (v == nullptr) return std::string();
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return loader.get_string(*v, std::string(key), "content");
  return loader.invalid(std::string(key), "expected a string, an object with \"content\", or null, got {}", type_name(*v));
}

Status parse_config(const Loader& loader, std::string_view text, TokenizerImpl& impl) {
  TL_ASSIGN_OR_RETURN(json config, parse_json(text, loader.file()));
  if (!config.is_object()) return loader.invalid("(root)", "expected an object, got {}", type_name(config));
  TL_ASSIGN_OR_RETURN(impl.bos_token, config_token(loader, config, "bos_token"));
  TL_ASSIGN_OR_RETURN(impl.eos_token, config_token(loader, config, "eos_token"));

  if (const json* ct = Loader::optional(config, "chat_template")) {
    if (ct->is_string()) {
      impl.chat_templates["default"] = ct->get<std::string>();
    } else if (ct->is_array()) {
      for (size_t i = 0; i < ct->size(); ++i) {
        const std::string path = item("chat_template", i);
        if (!(*ct)[i].is_object()) return loader.invalid(path, "expected {{\"name\": ..., \"template\": ...}}");
        TL_ASSIGN_OR_RETURN(std::string name, loader.get_string((*ct)[i], path, "name"));
        TL_ASSIGN_OR_RETURN(std::string source, loader.get_string((*ct)[i], path, "template"));
        impl.chat_templates[name] = std::move(source);
      }
    } else {
      return loader.invalid("chat_template", "expected a string or a list of {{name, template}}, got {}", type_name(*ct));
    }
  }

  // added_tokens_decoder: tokens tokenizer.json lacks are added (tokenizer.json wins where both have one).
  if (const json* atd = Loader::optional(config, "added_tokens_decoder")) {
    if (!atd->is_object()) return loader.invalid("added_tokens_decoder", "expected an object, got {}", type_name(*atd));
    for (auto it = atd->begin(); it != atd->end(); ++it) {
      const std::string path = "added_tokens_decoder[\"" + it.key() + "\"]";
      int64_t id = -1;
      auto [ptr, ec] = std::from_chars(it.key().data(), it.key().data() + it.key().size(), id);
      if (ec != std::errc() || ptr != it.key().data() + it.key().size() || id < 0 || id > kMaxTokenId) {
        return loader.invalid(path, "key must be a token id (0..{})", kMaxTokenId);
      }
      AddedToken token;
      TL_TRY(loader.parse_added_token(it.value(), path, token));
      token.id = static_cast<int32_t>(id);
      bool known = std::any_of(impl.added_tokens.begin(), impl.added_tokens.end(),
                               [&](const AddedToken& t) { return t.id == token.id; });
      if (!known) impl.added_tokens.push_back(std::move(token));
    }
  }

  // add_bos_token / add_eos_token rebuild the single template (LlamaTokenizerFast.update_post_processor).
  const json* add_bos = Loader::optional(config, "add_bos_token");
  const json* add_eos = Loader::optional(config, "add_eos_token");
  if (add_bos != nullptr || add_eos != nullptr) {
    TL_ASSIGN_OR_RETURN(bool bos, loader.get_bool(config, "", "add_bos_token", false));
    TL_ASSIGN_OR_RETURN(bool eos, loader.get_bool(config, "", "add_eos_token", false));
    std::vector<TemplatePiece> pieces;
    auto special_piece = [&](const std::string& token, const char* key) -> Result<TemplatePiece> {
      int32_t id = -1;
      if (auto it = impl.added_token_ids.find(token); it != impl.added_token_ids.end()) {
        id = it->second;
      } else if (auto v = impl.model.vocab.find(token); !token.empty() && v != impl.model.vocab.end()) {
        id = v->second;
      }
      // The added-token map is built later; look through the list too.
      for (const AddedToken& t : impl.added_tokens) {
        if (id < 0 && t.content == token && !token.empty()) id = t.id;
      }
      if (id < 0) return loader.invalid(key, "is true but the token '{}' is not in the vocabulary", token);
      TemplatePiece p;
      p.ids = {id};
      return p;
    };
    if (bos) {
      TL_ASSIGN_OR_RETURN(TemplatePiece p, special_piece(impl.bos_token, "add_bos_token"));
      pieces.push_back(std::move(p));
    }
    TemplatePiece seq;
    seq.is_sequence = true;
    pieces.push_back(std::move(seq));
    if (eos) {
      TL_ASSIGN_OR_RETURN(TemplatePiece p, special_piece(impl.eos_token, "add_eos_token"));
      pieces.push_back(std::move(p));
    }
    impl.single_template = std::move(pieces);
  }
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<TokenizerImpl>> load_tokenizer(std::string_view tokenizer_json,
                                                      std::string_view tokenizer_config_json,
                                                      const std::string& origin) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->origin = origin;
  const std::string prefix = origin.empty() ? "" : origin + "/";
  Loader loader(prefix + "tokenizer.json");

  TL_ASSIGN_OR_RETURN(json root, parse_json(tokenizer_json, loader.file()));
  if (!root.is_object()) return loader.invalid("(root)", "expected an object, got {}", type_name(root));

  TL_TRY(loader.parse_model(root, *impl));
  if (const json* n = Loader::optional(root, "normalizer")) TL_TRY(loader.parse_normalizer(*n, "normalizer", 0, impl->normalizer));
  if (const json* p = Loader::optional(root, "pre_tokenizer")) {
    TL_TRY(loader.parse_pre_tokenizer(*p, "pre_tokenizer", 0, impl->pre_tokenizer));
  }
  if (const json* p = Loader::optional(root, "post_processor")) TL_TRY(loader.parse_post_processor(*p, "post_processor", 0, *impl));
  if (const json* d = Loader::optional(root, "decoder")) {
    impl->decoder.present = true;
    TL_TRY(loader.parse_decoder(*d, "decoder", 0, impl->decoder));
  }
  if (const json* added = Loader::optional(root, "added_tokens")) {
    if (!added->is_array()) return loader.invalid("added_tokens", "expected an array, got {}", type_name(*added));
    for (size_t i = 0; i < added->size(); ++i) {
      const std::string path = item("added_tokens", i);
      AddedToken token;
      TL_TRY(loader.parse_added_token((*added)[i], path, token));
      TL_ASSIGN_OR_RETURN(const json* id, loader.required((*added)[i], path, "id"));
      TL_ASSIGN_OR_RETURN(int64_t value, loader.get_uint(*id, child(path, "id"), kMaxTokenId));
      token.id = static_cast<int32_t>(value);
      impl->added_tokens.push_back(std::move(token));
    }
  }

  if (!tokenizer_config_json.empty()) {
    Loader config_loader(prefix + "tokenizer_config.json");
    TL_TRY(parse_config(config_loader, tokenizer_config_json, *impl));
  }

  // Freeze: the id table (model vocab overlaid with added tokens), special flags, matchers.
  BpeModel& model = impl->model;
  model.finalize();
  size_t size = model.id_to_token.size();
  for (const AddedToken& t : impl->added_tokens) size = std::max(size, static_cast<size_t>(t.id) + 1);
  impl->id_to_token = model.id_to_token;
  impl->id_to_token.resize(size);
  impl->has_token.assign(size, false);
  impl->special.assign(size, false);
  for (const auto& [token, id] : model.vocab) impl->has_token[static_cast<size_t>(id)] = true;
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (const AddedToken& t : impl->added_tokens) {
    const auto id = static_cast<size_t>(t.id);
    impl->id_to_token[id] = t.content;
    impl->has_token[id] = true;
    impl->special[id] = t.special;
    impl->added_token_ids.emplace(t.content, t.id);
    if (t.normalized) {
      // HF matches normalized tokens by their normalized form (e.g. "<s>" -> "▁<s>" under Prepend).
      std::string pattern = t.content;
      if (!impl->normalizer.empty()) TL_TRY(impl->normalizer.normalize(t.content, pattern));
      normalized.push_back(t);
      normalized_patterns.push_back(std::move(pattern));
    } else {
      raw.push_back(t);
      raw_patterns.push_back(t.content);
    }
  }
  impl->raw_matcher.build(raw, raw_patterns);
  impl->normalized_matcher.build(normalized, normalized_patterns);
  impl->vocab_size = static_cast<int32_t>(size);

  if (!impl->bos_token.empty()) {
    if (auto it = impl->added_token_ids.find(impl->bos_token); it != impl->added_token_ids.end()) {
      impl->bos_token_id = it->second;
    } else if (auto v = model.vocab.find(impl->bos_token); v != model.vocab.end()) {
      impl->bos_token_id = v->second;
    }
  }
  if (!impl->eos_token.empty()) {
    if (auto it = impl->added_token_ids.find(impl->eos_token); it != impl->added_token_ids.end()) {
      impl->eos_token_id = it->second;
    } else if (auto v = model.vocab.find(impl->eos_token); v != model.vocab.end()) {
      impl->eos_token_id = v->second;
    }
  }
  return impl;
}

}  // namespace tl::tokenizer_detail
