#include "runtime/base/key_digest.hpp"

#include <cstdio>
#include <string>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "runtime/base/hex.hpp"

namespace siphon {

uint64_t KeyHash(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_md5(), nullptr);
  uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h = (h << 8) | md[i];
  return h;
}

namespace {

void AppendReal(std::string& out, double d) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", d);
  out += buf;
}

}  // namespace

std::string KeyText(const Cursor& key) {
  std::string text;
  for (size_t i = 0; i < key.size(); ++i) {
    if (i > 0) text.push_back(kKeySeparator);
    if (const auto* n = std::get_if<int64_t>(&key[i])) {
      text += std::to_string(*n);
    } else if (const auto* d = std::get_if<double>(&key[i])) {
      AppendReal(text, *d);
    } else if (const auto* s = std::get_if<std::string>(&key[i])) {
      text += *s;
    } else if (const auto* b = std::get_if<Bytes>(&key[i])) {
      text += "\\x";
      AppendHex(text, b->data);
    }
  }
  return text;
}

namespace {

void KeyHashFunction(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  std::string text;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) text.push_back(kKeySeparator);
    switch (sqlite3_value_type(argv[i])) {
      case SQLITE_INTEGER:
        text += std::to_string(sqlite3_value_int64(argv[i]));
        break;
      case SQLITE_FLOAT:
        AppendReal(text, sqlite3_value_double(argv[i]));
        break;
      case SQLITE_NULL:
        break;
      case SQLITE_BLOB: {  // as PostgreSQL prints a bytea
        const void* p = sqlite3_value_blob(argv[i]);
        const int n = sqlite3_value_bytes(argv[i]);
        text += "\\x";
        if (p != nullptr) AppendHex(text, {static_cast<const char*>(p), static_cast<size_t>(n)});
        break;
      }
      default: {  // text: its bytes
        const void* p = sqlite3_value_text(argv[i]);
        const int n = sqlite3_value_bytes(argv[i]);
        if (p != nullptr) text.append(static_cast<const char*>(p), static_cast<size_t>(n));
      }
    }
  }
  sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(KeyHash(text)));
}

}  // namespace

Status RegisterKeyHash(sqlite3* db) {
  if (sqlite3_create_function_v2(db, "siphon_key_hash", -1,
                                 SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                 KeyHashFunction, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Status(ErrorKind::kTarget,
                  std::string("cannot register siphon_key_hash: ") + sqlite3_errmsg(db));
  }
  return Status::Ok();
}

}  // namespace siphon
