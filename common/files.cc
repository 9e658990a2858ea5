#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace migvis {
namespace {

Status errno_status(std::string_view what, const fs::path& p) {
  int e = errno;
  std::string msg = std::string(what) + " " + p.string() + ": " + std::strerror(e);
  if (e == ENOENT) return Status::NotFound(msg);
  return Status::Unavailable(msg);
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

fs::path temp_path_for(const fs::path& path) {
  return fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
}

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Unavailable("cannot create directory " + dir.string() + ": " + ec.message());
  return Status::Ok();
}

Status commit_rename(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("cannot rename to", to);
  fsync_dir(to.parent_path());
  return Status::Ok();
}

Status write_file_atomic(const fs::path& path, std::string_view contents) {
  if (path.has_parent_path()) MIGVIS_RETURN_IF_ERROR(make_dirs(path.parent_path()));
  fs::path tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("cannot create", tmp);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = errno_status("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return st;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    Status st = errno_status("cannot flush", tmp);
    ::unlink(tmp.c_str());
    return st;
  }
  Status st = commit_rename(tmp, path);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) return Status::NotFound(path.string() + ": no such file");
    return Status::Unavailable(path.string() + ": cannot open for reading");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

AtomicPath::AtomicPath(fs::path dest) : dest_(std::move(dest)), temp_(temp_path_for(dest_)) {}

AtomicPath::~AtomicPath() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

Status AtomicPath::commit() {
  MIGVIS_RETURN_IF_ERROR(commit_rename(temp_, dest_));
  committed_ = true;
  return Status::Ok();
}

}  // namespace migvis
