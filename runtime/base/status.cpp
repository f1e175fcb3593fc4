#include "runtime/base/status.hpp"

namespace siphon {

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kOk:
      return "ok";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kConnect:
      return "connect";
    case ErrorKind::kAuth:
      return "auth";
    case ErrorKind::kQuery:
      return "query";
    case ErrorKind::kSchema:
      return "schema";
    case ErrorKind::kType:
      return "type";
    case ErrorKind::kTarget:
      return "target";
    case ErrorKind::kScript:
      return "script";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

bool Status::transient() const {
  return kind_ == ErrorKind::kConnect || kind_ == ErrorKind::kQuery || kind_ == ErrorKind::kTarget;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(ErrorKindName(kind_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(kind_, std::string(context) + ": " + message_);
}

}  // namespace siphon
