#include "runtime/base/readable_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace siphon {

std::string UnreadableFileReason(const std::string& path) {
  if (path.empty()) return "no file named";
  // Looked at before it is opened: opening a folder read-only succeeds (only reading it
  // fails), and opening a FIFO would wait for a writer.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "it is a folder, not a file";
  if (!S_ISREG(st.st_mode)) return "it is not a regular file";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::strerror(errno);
  char byte;
  const ssize_t n = ::read(fd, &byte, 1);
  const int read_errno = errno;
  ::close(fd);
  if (n < 0) return std::strerror(read_errno);
  if (n == 0) return "it is empty";
  return "";
}

}  // namespace siphon
