// Files: atomic writes and small helpers. Every file another process may read
// (job.yaml, result.yaml, HDF5 outputs, the database's exports) is written to a
// temporary sibling and renamed into place, so a reader sees either the old
// file or the whole new one, never half of it, even after kill -9.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace migvis {

namespace fs = std::filesystem;

// The one errno classification (common/status.h): ENOENT/ENOTDIR -> NotFound;
// EINTR, EAGAIN, ESTALE, EBUSY, ETIMEDOUT, ENOLCK -> Unavailable (temporary,
// exit 75, retried); EACCES, EPERM, EROFS -> PermissionDenied (73); ENOSPC,
// EDQUOT, EIO, EFBIG, EMFILE and anything else -> IoError (74, not retried).
// `what` is the message ("cannot write /x/y.h5"); strerror(err) is appended.
Status status_from_errno(int err, std::string_view what);

// Durably flushes a file's data to storage (open + fsync + close). Used before
// renaming a file that a library (HDF5, LibTorch) wrote and closed.
Status fsync_file(const fs::path& path);

// Writes `contents` to `path` atomically: `path.tmp.<pid>` in the same directory,
// fsync, rename over `path`, fsync of the directory. Creates parent directories.
Status write_file_atomic(const fs::path& path, std::string_view contents);

// Reads a whole file. NotFound if it does not exist.
Result<std::string> read_file(const fs::path& path);

// Creates `dir` and its parents; OK if it exists already.
Status make_dirs(const fs::path& dir);

// A temporary sibling path for `path`, unique to this process: `path.tmp.<pid>`.
fs::path temp_path_for(const fs::path& path);

// Renames `from` over `to` and fsyncs the parent directory of `to`.
Status commit_rename(const fs::path& from, const fs::path& to);

// Scoped temporary sibling of a destination: write through temp(), then commit().
// commit() fsyncs the temporary's data, renames it over the destination and
// fsyncs the directory, so after a crash the destination is either the old
// file or the whole new one. If commit() was not called (or failed), the
// destructor removes the temporary file and the destination is untouched.
class AtomicPath {
 public:
  explicit AtomicPath(fs::path dest);
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const fs::path& temp() const { return temp_; }
  const fs::path& dest() const { return dest_; }
  Status commit();

  // Test seam (fault injection): called after the temporary's fsync and before
  // the rename of every AtomicPath commit in this process; a non-OK status
  // aborts that commit. Pass nullptr to clear. Not thread-safe; tests only.
  static void set_before_rename_hook_for_test(Status (*hook)(const fs::path& temp));

 private:
  fs::path dest_;
  fs::path temp_;
  bool committed_ = false;
};

}  // namespace migvis
