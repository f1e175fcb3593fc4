#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace siphon {

/// What kind of failure a Status carries. The kind decides retries, events and metrics:
/// transient kinds are retried with backoff, the others fail a run for good.
enum class ErrorKind {
  kOk,
  kConfig,     ///< bad script or option, or a table or column it names that the source
               ///< does not have: fix the script (exit 2 from once and check)
  kConnect,    ///< could not reach the source (transient)
  kAuth,       ///< the source refused the credentials
  kQuery,      ///< a query failed on the source (transient unless the schema is wrong)
  kSchema,     ///< the source's schema does not fit: a table or column a statement reads
               ///< is gone, no key, unsupported cursor
  kType,       ///< a value could not be converted
  kTarget,     ///< the SQLite target failed (disk full, I/O)
  kScript,     ///< a Lua callback failed
  kCancelled,  ///< stopped on purpose (shutdown, pause)
};

std::string_view ErrorKindName(ErrorKind kind);

/// An error as a value: kOk or a kind and a message.
class Status {
 public:
  Status() = default;
  Status(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return kind_ == ErrorKind::kOk; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

  /// True when trying again later may succeed (connection lost, server restarting).
  bool transient() const;

  /// "kind: message", for logs.
  std::string ToString() const;

  /// The same error with `context: ` put before the message.
  Status WithContext(std::string_view context) const;

 private:
  ErrorKind kind_ = ErrorKind::kOk;
  std::string message_;
};

/// A value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace siphon
