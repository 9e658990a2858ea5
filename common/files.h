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
// If commit() was not called, the destructor removes the temporary file.
class AtomicPath {
 public:
  explicit AtomicPath(fs::path dest);
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const fs::path& temp() const { return temp_; }
  const fs::path& dest() const { return dest_; }
  Status commit();

 private:
  fs::path dest_;
  fs::path temp_;
  bool committed_ = false;
};

}  // namespace migvis
