// Status and Result<T>: the one error type of tuneloop.
//
// Expected failures at module boundaries (a bad file, a bad request, an exhausted quota) travel as
// values, never as exceptions. A Status carries a code that maps directly to a process exit code and an
// HTTP status, plus a message that says what went wrong, where (file, line, field, tensor) and what was
// expected. Programmer errors use TL_CHECK (core/check.h) instead.
//
// Usage:
//   tl::Result<Config> parse(const std::string& path) {
//     TL_ASSIGN_OR_RETURN(std::string text, tl::read_file(path));
//     if (text.empty()) return tl::invalid_argument("{}: empty file, expected a JSON object", path);
//     ...
//   }
//   tl::Status run() { TL_TRY(step_one()); return tl::Status::ok(); }
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>
#include <variant>

namespace tl {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // malformed input: bad file contents, bad flag, bad request body
  kNotFound,            // a named file, tensor, model or resource does not exist
  kAlreadyExists,
  kDataLoss,            // truncated or corrupt file
  kOutOfRange,          // a value outside its valid range (token id, offset)
  kUnimplemented,       // valid but unsupported input (unknown model_type, rope type)
  kFailedPrecondition,  // the system is not in a state that allows the operation
  kResourceExhausted,   // quota, memory, size limits
  kPermissionDenied,
  kUnauthenticated,
  kIoError,             // the OS refused a read or write
  kCancelled,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends context ("loading model.safetensors: ") to the message; keeps the code.
  Status with_context(const std::string& context) const;

  // Process exit code for a CLI command that ends in this status (0 for ok).
  int exit_code() const;
  // HTTP status for an API response that ends in this status (200 for ok).
  int http_status() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

#define TL_DEFINE_STATUS_FACTORY(fn, code)                                  \
  template <typename... Args>                                               \
  Status fn(fmt::format_string<Args...> f, Args&&... args) {                \
    return Status(StatusCode::code, fmt::format(f, std::forward<Args>(args)...)); \
  }
TL_DEFINE_STATUS_FACTORY(invalid_argument, kInvalidArgument)
TL_DEFINE_STATUS_FACTORY(not_found, kNotFound)
TL_DEFINE_STATUS_FACTORY(already_exists, kAlreadyExists)
TL_DEFINE_STATUS_FACTORY(data_loss, kDataLoss)
TL_DEFINE_STATUS_FACTORY(out_of_range, kOutOfRange)
TL_DEFINE_STATUS_FACTORY(unimplemented, kUnimplemented)
TL_DEFINE_STATUS_FACTORY(failed_precondition, kFailedPrecondition)
TL_DEFINE_STATUS_FACTORY(resource_exhausted, kResourceExhausted)
TL_DEFINE_STATUS_FACTORY(permission_denied, kPermissionDenied)
TL_DEFINE_STATUS_FACTORY(unauthenticated, kUnauthenticated)
TL_DEFINE_STATUS_FACTORY(io_error, kIoError)
TL_DEFINE_STATUS_FACTORY(internal_error, kInternal)
#undef TL_DEFINE_STATUS_FACTORY

// Result<T>: either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, as StatusOr
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).is_ok()) v_ = Status(StatusCode::kInternal, "Result built from an ok Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

namespace detail {
inline Status to_status(const Status& s) { return s; }
template <typename T>
Status to_status(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace tl

#define TL_CONCAT_INNER(a, b) a##b
#define TL_CONCAT(a, b) TL_CONCAT_INNER(a, b)

// Returns the Status of `expr` (a Status or a Result) from the enclosing function if it is not ok.
#define TL_TRY(expr)                                                   \
  do {                                                                 \
    auto&& tl_try_value_ = (expr);                                     \
    if (!tl_try_value_.is_ok()) return ::tl::detail::to_status(tl_try_value_); \
  } while (0)

// Declares/assigns `lhs` from a Result expression, returning its Status on failure.
#define TL_ASSIGN_OR_RETURN(lhs, expr) TL_ASSIGN_OR_RETURN_IMPL(TL_CONCAT(tl_result_, __LINE__), lhs, expr)
#define TL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
