#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace migvis {
namespace {

Status (*g_before_rename_hook)(const fs::path&) = nullptr;

Status errno_status(std::string_view what, const fs::path& p) {
  int e = errno;
  return status_from_errno(e, std::string(what) + " " + p.string());
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

Status status_from_errno(int err, std::string_view what) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(msg);
    case EINTR:
    case EAGAIN:
    case ESTALE:
    case EBUSY:
    case ETIMEDOUT:
    case ENOLCK:
      return Status::Unavailable(msg + " (temporary; retry)");
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(msg + " (check permissions and mounts; not retried)");
    case ENOSPC:
    case EDQUOT:
      return Status::IoError(msg + " (free space or quota first; not retried)");
    default:
      return Status::IoError(msg);
  }
}

Status fsync_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open for fsync", path);
  if (::fsync(fd) != 0) {
    Status st = errno_status("cannot fsync", path);
    ::close(fd);
    return st;
  }
  ::close(fd);
  return Status::Ok();
}

fs::path temp_path_for(const fs::path& path) {
  return fs::path(path.string() + ".tmp." + std::to_string(::getpid()));
}

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return status_from_errno(ec.value(), "cannot create directory " + dir.string());
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
    int e = errno;
    if (!fs::exists(path)) return Status::NotFound(path.string() + ": no such file");
    return status_from_errno(e != 0 ? e : EIO, "cannot open " + path.string() + " for reading");
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

void AtomicPath::set_before_rename_hook_for_test(Status (*hook)(const fs::path&)) { g_before_rename_hook = hook; }

Status AtomicPath::commit() {
  // The writer (HDF5, LibTorch, libpng) closed the file; its data may still be
  // only in the page cache. Without this fsync a crash after the rename could
  // leave a renamed but truncated file behind a durable result.yaml.
  MIGVIS_RETURN_IF_ERROR(fsync_file(temp_));
  if (g_before_rename_hook) MIGVIS_RETURN_IF_ERROR(g_before_rename_hook(temp_));
  MIGVIS_RETURN_IF_ERROR(commit_rename(temp_, dest_));
  committed_ = true;
  return Status::Ok();
}

}  // namespace migvis
