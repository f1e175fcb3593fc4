#pragma once
#include <string>

namespace siphon {

/// Why `path` is not a file whose contents this process can read: "" when it is one (a
/// regular file, links followed, that opens and is not empty), else the reason as a phrase
/// ("No such file or directory", "it is a folder, not a file", "it is empty"). Certificate and
/// key files are checked with it at start-up, so a wrong path stops the script there with
/// its name rather than failing every connection later.
std::string UnreadableFileReason(const std::string& path);

}  // namespace siphon
