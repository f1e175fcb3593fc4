#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace siphon {

/// A file's identity, its device and inode: the same for every path that names it (a link,
/// another spelling), another for a new file renamed over the old one's path.
struct FileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const FileId&) const = default;
};

/// The file `path` names now (links followed); none when nothing is there or it cannot be
/// looked at.
std::optional<FileId> FileIdOf(const std::string& path);

}  // namespace siphon
