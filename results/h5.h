// A small RAII layer over the HDF5 C API, shared by both programs.
//
// Ownership: every HDF5 identifier lives in exactly one Handle, closed by its
// destructor. File, Group and Dataset are move-only value types. Errors never
// print HDF5's error stack to the terminal: they come back as Status with the
// file name, the object path and what was expected.
//
// Thread-safety: Debian's HDF5 is built without thread safety; use one thread
// per process for HDF5 calls (the worker's rank 0 writes, the orchestrator's
// ingest thread reads).
//
// Supported element types: float, double, int32_t, int64_t, uint8_t, uint16_t,
// and std::string (variable-length UTF-8). Arrays are row-major (C order).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/status.h"

namespace migvis::h5 {

// Owns one hid_t; closes it with H5Idec_ref.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) { reset(); id_ = std::exchange(o.id_, H5I_INVALID_HID); }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// An n-dimensional row-major array.
template <typename T>
struct Array {
  std::vector<hsize_t> shape;
  std::vector<T> data;

  Array() = default;
  Array(std::vector<hsize_t> s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {}
  explicit Array(std::vector<hsize_t> s) : shape(std::move(s)), data(numel_of(shape)) {}
  static size_t numel_of(const std::vector<hsize_t>& s) {
    size_t n = 1;
    for (auto d : s) n *= static_cast<size_t>(d);
    return n;
  }
  size_t numel() const { return numel_of(shape); }
  size_t rank() const { return shape.size(); }
  hsize_t dim(size_t i) const { return shape.at(i); }
};

struct WriteOptions {
  // Chunk shape; empty = contiguous unless compression is on (then a chunk
  // covering up to ~1 MiB of leading rows is chosen).
  std::vector<hsize_t> chunk;
  int gzip_level = 0;  // 0 = no compression, 1..9 = deflate level
  bool shuffle = true; // byte shuffle before deflate (helps floats)
};

// Element-type description of an existing dataset or attribute.
struct TypeInfo {
  H5T_class_t cls = H5T_NO_CLASS;  // H5T_INTEGER, H5T_FLOAT, H5T_STRING, ...
  size_t size_bytes = 0;
  bool is_signed = true;
  std::string describe() const;  // "float32", "int64", "string", ...
};

// Common base of File and Group: a location that holds groups, datasets and
// attributes. `path` arguments are relative to this location ("a/b/c").
class Location {
 public:
  hid_t id() const { return h_.id(); }
  // Path of this location inside the file, e.g. "/animals/a1".
  const std::string& path() const { return path_; }
  // Name of the file this location belongs to (for error messages).
  const std::string& file_name() const { return file_name_; }

  bool exists(const std::string& path) const;   // link exists (all intermediate links too)
  bool is_group(const std::string& path) const;
  bool is_dataset(const std::string& path) const;
  // Names of the direct children (groups and datasets), sorted.
  Result<std::vector<std::string>> children() const;

  Result<class Group> create_group(const std::string& path) const;  // creates parents
  Result<class Group> open_group(const std::string& path) const;
  // Opens the group, creating it (and parents) if it does not exist.
  Result<class Group> require_group(const std::string& path) const;

  template <typename T>
  Status write(const std::string& path, const Array<T>& a, const WriteOptions& o = {}) const;
  template <typename T>
  Status write_vector(const std::string& path, const std::vector<T>& v, const WriteOptions& o = {}) const {
    return write(path, Array<T>({static_cast<hsize_t>(v.size())}, v), o);
  }
  template <typename T>
  Status write_scalar(const std::string& path, const T& v) const;

  // Reads a whole dataset; InvalidArgument if the stored type cannot be
  // converted to T without loss of kind (e.g. string <-> number).
  template <typename T>
  Result<Array<T>> read(const std::string& path) const;
  template <typename T>
  Result<std::vector<T>> read_vector(const std::string& path) const;  // any rank, flattened
  // Reads rows [row0, row0 + nrows) along the first dimension.
  template <typename T>
  Result<Array<T>> read_rows(const std::string& path, hsize_t row0, hsize_t nrows) const;

  Result<std::vector<hsize_t>> shape(const std::string& path) const;
  Result<TypeInfo> type_info(const std::string& path) const;

  // netCDF-4 / HDF5 dimension scales (the DIMENSION_LIST attribute written by
  // H5DS and netCDF): for each dimension of the dataset at `path`, the absolute
  // path of the first attached scale ("" where none is attached). Empty vector
  // when the dataset has no DIMENSION_LIST. NotFound if `path` does not exist.
  Result<std::vector<std::string>> dimension_scales(const std::string& path) const;

  // Attributes on the object at `obj` ("." = this location).
  template <typename T>
  Status set_attr(const std::string& obj, const std::string& name, const T& value) const;
  template <typename T>
  Status set_attr_vector(const std::string& obj, const std::string& name, const std::vector<T>& v) const;
  bool has_attr(const std::string& obj, const std::string& name) const;
  template <typename T>
  Result<T> attr(const std::string& obj, const std::string& name) const;
  template <typename T>
  Result<std::vector<T>> attr_vector(const std::string& obj, const std::string& name) const;
  Result<std::vector<std::string>> attr_names(const std::string& obj) const;

  // "file.h5:/group/path" for messages.
  std::string where(const std::string& rel = "") const;

 protected:
  Location() = default;
  Location(Handle h, std::string path, std::string file_name)
      : h_(std::move(h)), path_(std::move(path)), file_name_(std::move(file_name)) {}
  std::string join(const std::string& rel) const;

  Handle h_;
  std::string path_;
  std::string file_name_;
};

class Group : public Location {
 public:
  Group() = default;

 private:
  friend class Location;
  Group(Handle h, std::string path, std::string file_name)
      : Location(std::move(h), std::move(path), std::move(file_name)) {}
};

enum class Mode { kReadOnly, kReadWrite };

class File : public Location {
 public:
  File() = default;
  // Opens an existing file. NotFound if missing; DataLoss if not an HDF5 file.
  static Result<File> open(const fs::path& path, Mode mode = Mode::kReadOnly);
  // Creates (truncates) a file directly at `path`. Prefer AtomicFile for outputs.
  static Result<File> create(const fs::path& path);
  // Flushes and closes; returns the first error.
  Status close();
  const fs::path& fs_path() const { return fs_path_; }

 private:
  File(Handle h, fs::path p) : Location(std::move(h), "/", p.string()), fs_path_(std::move(p)) {}
  fs::path fs_path_;
};

// A file created at `dest.tmp.<pid>` and renamed to `dest` by commit(). If the
// writer dies or commit() is not called, `dest` is untouched and the temporary
// file is removed (by the destructor; after kill -9 the next writer overwrites it).
class AtomicFile {
 public:
  static Result<std::unique_ptr<AtomicFile>> create(const fs::path& dest);
  File& file() { return file_; }
  Status commit();  // closes the file, renames it into place
  const fs::path& dest() const { return tmp_.dest(); }

 private:
  explicit AtomicFile(fs::path dest) : tmp_(std::move(dest)) {}
  AtomicPath tmp_;
  File file_;
};

// Turns HDF5's automatic error printing off for this process (idempotent).
void silence_hdf5_errors();

}  // namespace migvis::h5
