// Status and Result<T>: how errors cross module boundaries in migvis.
//
// A Status is either OK or one of a handful of generic codes plus a message that
// says what went wrong, where, and what to do next. Each code has exactly one
// policy in the orchestrator (see exit_code_for and docs/ERRORS in schemas/job.md):
//   kInvalidArgument    bad input (YAML, HDF5 layout, CLI values)  -> exit 65, not retried
//   kNotFound           a named file/job/key does not exist       -> exit 66, not retried
//   kFailedPrecondition the world is not in the state required    -> exit 65, not retried
//   kUnavailable        temporary; retry later                    -> exit 75, retried
//   kCancelled          stopped on request (preemption); requeue  -> exit 75, requeued
//   kDataLoss           a file is corrupt or truncated            -> exit 65, not retried
//   kInternal           a bug or an unexpected library failure    -> exit 70, retried once
//   kPermissionDenied   EACCES/EPERM/EROFS: cannot create output  -> exit 73, not retried
//   kIoError            ENOSPC/EDQUOT/EIO/...: permanent I/O      -> exit 74, not retried
// errno values are classified once, by status_from_errno (common/files.h):
// EINTR/EAGAIN/ESTALE/EBUSY/ETIMEDOUT are temporary (kUnavailable), the
// permission and space classes permanent, so a full quota or a read-only
// filesystem is never requeued forever.
// Status is cheap to copy when OK (no allocation). Thread-compatible.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace migvis {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kFailedPrecondition,
  kUnavailable,
  kCancelled,
  kDataLoss,
  kInternal,
  kPermissionDenied,  // a format: codes are appended, never renumbered
  kIoError,
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: sweeps/a.yaml:3: vae.beta: expected a number, got \"x\""
  std::string to_string() const;

  // Returns a copy with `prefix + ": "` in front of the message (same code).
  Status with_context(std::string_view prefix) const;

  bool operator==(const Status& o) const { return code_ == o.code_ && message_ == o.message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Process exit code for a status (sysexits.h): 0, 65 data error, 66 no input,
// 70 software error, 73 cannot create (permission), 74 I/O error, 75 temporary
// failure. 64 (usage) is produced by the CLI layer.
int exit_code_for(const Status& s);
inline constexpr int kExitUsage = 64;
inline constexpr int kExitDataError = 65;
inline constexpr int kExitNoInput = 66;
inline constexpr int kExitSoftware = 70;
inline constexpr int kExitCantCreate = 73;
inline constexpr int kExitIoError = 74;
inline constexpr int kExitTempFail = 75;

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                       // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {                  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace migvis

#define MIGVIS_CONCAT_INNER_(a, b) a##b
#define MIGVIS_CONCAT_(a, b) MIGVIS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define MIGVIS_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::migvis::Status _migvis_st = (expr);            \
    if (!_migvis_st.ok()) return _migvis_st;         \
  } while (0)

// MIGVIS_ASSIGN_OR_RETURN(auto x, f()); declares x from a Result or returns its status.
#define MIGVIS_ASSIGN_OR_RETURN(decl, expr) \
  MIGVIS_ASSIGN_OR_RETURN_IMPL_(MIGVIS_CONCAT_(_migvis_res_, __LINE__), decl, expr)
#define MIGVIS_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  decl = std::move(tmp).value()
