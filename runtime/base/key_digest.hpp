#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/base/schema.hpp"
#include "runtime/base/status.hpp"

struct sqlite3;

namespace siphon {

/// Reconcile (`deletes = { reconcile = "1h" }`) compares a table's keys on the source and in
/// the target range by range, through digests both sides compute where the keys are (in SQL
/// on the source server, in the target's SQLite), and lists keys only in ranges that differ.

/// A range of a table's key: keys k with after < k <= upto (a row comparison over the key
/// columns); an end without a value is open.
struct KeyRange {
  std::optional<Cursor> after;
  std::optional<Cursor> upto;
};

/// The digest of the keys in a range: how many there are and the sums of the two 32-bit
/// halves of each key's hash. Equal digests mean equal key sets (but for a 2^-64 chance).
struct KeyDigest {
  int64_t count = 0;
  int64_t sum_hi = 0;
  int64_t sum_lo = 0;

  void Add(uint64_t hash) {
    ++count;
    sum_hi += static_cast<int64_t>(hash >> 32);
    sum_lo += static_cast<int64_t>(hash & 0xffffffffu);
  }
  bool operator==(const KeyDigest& o) const {
    return count == o.count && sum_hi == o.sum_hi && sum_lo == o.sum_lo;
  }
  bool operator!=(const KeyDigest& o) const { return !(*this == o); }
};

/// The separator between the key columns' text in the hashed string (`\x01`).
inline constexpr char kKeySeparator = '\x01';

/// The hash of one key: the first 8 bytes (big-endian) of the MD5 of the text of its values
/// joined by kKeySeparator. Every source computes the same in SQL (PostgreSQL and MariaDB
/// with md5(); SQLite with siphon_key_hash()), so keys whose text is the same on both sides
/// (integers, text, uuids) give equal digests.
uint64_t KeyHash(std::string_view text);

/// The text KeyHash() hashes for a key: an integer in decimal, a real as "%.17g", text as
/// it is, bytes as "\\x" and lowercase hex (as PostgreSQL prints a bytea), joined by
/// kKeySeparator. Two keys with the same text are the same key to reconcile, whichever of
/// integer and text each side stored.
std::string KeyText(const Cursor& key);

/// Registers `siphon_key_hash(v1, …)` on a SQLite connection: KeyHash of the values' text
/// (an integer in decimal, a real as "%.17g", text as its bytes, a blob as "\\x" and
/// lowercase hex) as a signed 64-bit integer.
Status RegisterKeyHash(sqlite3* db);

}  // namespace siphon
