#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace siphon {

/// The storage class of one value, as SQLite will hold it.
enum class ValueType : uint8_t { kNull, kInt, kReal, kText, kBlob };

/// One value of a RowBatch. Text and blob bytes live in the batch's arena; a Cell keeps
/// their offset, not a pointer, so the arena may grow while a page is filled.
struct Cell {
  ValueType type = ValueType::kNull;
  union {
    int64_t i;
    double d;
    struct {
      uint32_t offset;
      uint32_t size;
    } bytes;
  };
  Cell() : i(0) {}
};

/// A page of rows: a fixed number of columns, values appended row by row into one arena.
/// Built by an adapter on the loop thread, handed whole to the writer thread.
class RowBatch {
 public:
  RowBatch() = default;
  explicit RowBatch(size_t columns) : columns_(columns) {}

  size_t columns() const { return columns_; }
  size_t rows() const { return columns_ == 0 ? 0 : cells_.size() / columns_; }
  bool empty() const { return cells_.empty(); }

  void Reserve(size_t rows, size_t bytes) {
    cells_.reserve(rows * columns_);
    arena_.reserve(bytes);
  }

  // Appenders: one call per column, in column order, row after row.
  void AddNull() { cells_.emplace_back(); }
  void AddInt(int64_t v) {
    Cell& c = cells_.emplace_back();
    c.type = ValueType::kInt;
    c.i = v;
  }
  void AddReal(double v) {
    Cell& c = cells_.emplace_back();
    c.type = ValueType::kReal;
    c.d = v;
  }
  void AddText(std::string_view v) { AddBytes(ValueType::kText, v); }
  void AddBlob(std::string_view v) { AddBytes(ValueType::kBlob, v); }
  /// Appends a text cell and returns a buffer of `size` bytes to fill in place.
  char* AddTextBuffer(size_t size) {
    AddBytes(ValueType::kText, std::string_view());
    Cell& c = cells_.back();
    c.bytes.offset = static_cast<uint32_t>(arena_.size());
    c.bytes.size = static_cast<uint32_t>(size);
    arena_.resize(arena_.size() + size);
    return arena_.data() + c.bytes.offset;
  }
  /// Shrinks the text of the last cell (after AddTextBuffer wrote less than it asked for).
  void TrimLast(size_t size) {
    Cell& c = cells_.back();
    arena_.resize(c.bytes.offset + size);
    c.bytes.size = static_cast<uint32_t>(size);
  }

  const Cell& at(size_t row, size_t column) const { return cells_[row * columns_ + column]; }
  std::string_view bytes(const Cell& c) const {
    return std::string_view(arena_.data() + c.bytes.offset, c.bytes.size);
  }
  size_t arena_bytes() const { return arena_.size(); }

  void Clear() {
    cells_.clear();
    arena_.clear();
    last_row_source_text.clear();
    order_keys.clear();
  }
  /// Keeps the first `rows` rows and the arena bytes they hold (the arena grows in cell
  /// order, so the first text or blob cell dropped marks where theirs end).
  void KeepRows(size_t rows) {
    if (rows >= this->rows()) return;
    const size_t keep = rows * columns_;
    for (size_t i = keep; i < cells_.size(); ++i) {
      if (cells_[i].type == ValueType::kText || cells_[i].type == ValueType::kBlob) {
        arena_.resize(cells_[i].bytes.offset);
        break;
      }
    }
    cells_.resize(keep);
    last_row_source_text.clear();  // it belonged to a row now gone
    if (order_keys.size() > rows) order_keys.resize(rows);
  }

  /// Cells of the last row that are NULL though the source holds a value there which it
  /// orders (a MySQL zero date, replicated as NULL), with that value's text as the source
  /// prints it, by column: a page that ends on such a row continues from that text.
  std::vector<std::pair<size_t, std::string>> last_row_source_text;

  /// When not empty, one per row: the row's order values (PageQuery::order_by) as the
  /// source compares them, as bytes. Two rows the source holds equal have equal keys, though
  /// their values' bytes may differ (text under a case-insensitive or PAD SPACE collation:
  /// 'a', 'A' and 'a '); rows with equal keys may still differ (a key only ever makes them
  /// kept together in one page). Empty: the source holds values equal exactly when their
  /// bytes are.
  std::vector<std::string> order_keys;

 private:
  void AddBytes(ValueType type, std::string_view v) {
    Cell& c = cells_.emplace_back();
    c.type = type;
    c.bytes.offset = static_cast<uint32_t>(arena_.size());
    c.bytes.size = static_cast<uint32_t>(v.size());
    arena_.append(v);
  }

  size_t columns_ = 0;
  std::vector<Cell> cells_;
  std::string arena_;
};

}  // namespace siphon
