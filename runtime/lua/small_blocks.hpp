#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace siphon {

/// The Lua state's small blocks (strings, table parts, closures of up to kLargest bytes), in
/// free lists per 16-byte size class, cut from 64 KiB chunks. Lua makes and drops such a
/// block for nearly every value a transform sees; reusing them skips malloc's bookkeeping.
/// Lua always says how large a block it frees was, so a block needs no header. Memory a
/// class freed stays with that class until the state is closed (the state's memory limit
/// bounds it). One thread only, as the Lua state.
class SmallBlocks {
 public:
  static constexpr size_t kLargest = 128;

  /// A block of `size` bytes (1 to kLargest), or nullptr when memory is out.
  void* Take(size_t size);
  /// Gives back a block Take returned for a `size` in the same class.
  void Give(void* block, size_t size);
  /// Whether two sizes share a class (a block of one serves the other).
  static bool SameClass(size_t a, size_t b) { return ClassOf(a) == ClassOf(b); }

 private:
  static constexpr size_t kClasses = kLargest / 16;
  static constexpr size_t kChunk = 64 << 10;
  static size_t ClassOf(size_t size) { return (size - 1) / 16; }

  struct Free {
    Free* next;
  };
  Free* free_[kClasses] = {};
  std::vector<std::unique_ptr<char[]>> chunks_;
  char* next_ = nullptr;  // the unused rest of the newest chunk
  size_t left_ = 0;
};

}  // namespace siphon
