#include "runtime/lua/small_blocks.hpp"

#include <new>

namespace siphon {

void* SmallBlocks::Take(size_t size) {
  const size_t c = ClassOf(size);
  if (Free* f = free_[c]) {
    free_[c] = f->next;
    return f;
  }
  const size_t bytes = (c + 1) * 16;
  if (left_ < bytes) {
    // What is left of the chunk (less than a block of this class) goes unused.
    char* chunk = new (std::nothrow) char[kChunk];
    if (chunk == nullptr) return nullptr;
    chunks_.emplace_back(chunk);
    next_ = chunk;
    left_ = kChunk;
  }
  void* block = next_;
  next_ += bytes;
  left_ -= bytes;
  return block;
}

void SmallBlocks::Give(void* block, size_t size) {
  auto* f = static_cast<Free*>(block);
  const size_t c = ClassOf(size);
  f->next = free_[c];
  free_[c] = f;
}

}  // namespace siphon
