#include "results/h5.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <type_traits>

#include <fmt/format.h>

namespace migvis::h5 {
namespace {

template <typename T> struct NativeType;
template <> struct NativeType<float> { static hid_t id() { return H5T_NATIVE_FLOAT; } };
template <> struct NativeType<double> { static hid_t id() { return H5T_NATIVE_DOUBLE; } };
template <> struct NativeType<int32_t> { static hid_t id() { return H5T_NATIVE_INT32; } };
template <> struct NativeType<int64_t> { static hid_t id() { return H5T_NATIVE_INT64; } };
template <> struct NativeType<uint8_t> { static hid_t id() { return H5T_NATIVE_UINT8; } };
template <> struct NativeType<uint16_t> { static hid_t id() { return H5T_NATIVE_UINT16; } };

Handle vlen_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t);
}

// Collects the innermost HDF5 error description into a string.
std::string hdf5_error_text() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD,
           [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
             auto* s = static_cast<std::string*>(data);
             if (s->empty() && e->desc) *s = e->desc;
             return 0;
           },
           &out);
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? "HDF5 error" : out;
}

bool type_kind_matches(H5T_class_t cls, bool want_string, bool want_float) {
  if (want_string) return cls == H5T_STRING;
  if (want_float) return cls == H5T_FLOAT || cls == H5T_INTEGER;
  return cls == H5T_INTEGER || cls == H5T_FLOAT;  // ints may be read from floats (checked below)
}

template <typename T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, int32_t>) return "int32";
  else if constexpr (std::is_same_v<T, int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, uint16_t>) return "uint16";
  else return "string";
}

TypeInfo describe_type(hid_t type) {
  TypeInfo ti;
  ti.cls = H5Tget_class(type);
  ti.size_bytes = H5Tget_size(type);
  if (ti.cls == H5T_INTEGER) ti.is_signed = H5Tget_sign(type) == H5T_SGN_2;
  if (ti.cls == H5T_STRING && H5Tis_variable_str(type) > 0) ti.size_bytes = 0;
  return ti;
}

// Reads `n` strings from a dataset/attribute `obj` whose stored type is `ftype`.
template <typename ReadFn>
Status read_strings(hid_t ftype, size_t n, std::vector<std::string>* out, ReadFn read_fn) {
  out->assign(n, "");
  if (H5Tis_variable_str(ftype) > 0) {
    std::vector<char*> ptrs(n, nullptr);
    Handle mt = vlen_string_type();
    if (read_fn(mt.id(), ptrs.data()) < 0) return Status::DataLoss(hdf5_error_text());
    for (size_t i = 0; i < n; ++i) {
      if (ptrs[i]) (*out)[i] = ptrs[i];
      free(ptrs[i]);  // HDF5 allocated them with the default (malloc) allocator
    }
  } else {
    size_t len = H5Tget_size(ftype);
    Handle mt(H5Tcopy(H5T_C_S1));
    H5Tset_size(mt.id(), len);
    std::vector<char> buf(n * len + 1, '\0');
    if (read_fn(mt.id(), buf.data()) < 0) return Status::DataLoss(hdf5_error_text());
    for (size_t i = 0; i < n; ++i) {
      const char* p = buf.data() + i * len;
      size_t l = strnlen(p, len);
      (*out)[i].assign(p, l);
      // fixed-length strings may be space padded (netCDF, some NWB writers)
      while (!(*out)[i].empty() && (*out)[i].back() == ' ') (*out)[i].pop_back();
    }
  }
  return Status::Ok();
}

}  // namespace

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void Handle::reset() {
  if (id_ >= 0) {
    H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }
}

std::string TypeInfo::describe() const {
  switch (cls) {
    case H5T_FLOAT: return fmt::format("float{}", size_bytes * 8);
    case H5T_INTEGER: return fmt::format("{}int{}", is_signed ? "" : "u", size_bytes * 8);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_REFERENCE: return "reference";
    default: return "other";
  }
}

// ---------------------------------------------------------------- Location

std::string Location::join(const std::string& rel) const {
  if (rel.empty() || rel == ".") return path_;
  if (!rel.empty() && rel[0] == '/') return rel;
  return path_ == "/" ? "/" + rel : path_ + "/" + rel;
}

std::string Location::where(const std::string& rel) const { return file_name_ + ":" + join(rel); }

bool Location::exists(const std::string& path) const {
  silence_hdf5_errors();
  // H5Lexists fails on missing intermediates: check each prefix.
  std::string acc;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    acc += (acc.empty() ? "" : "/") + part;
    if (H5Lexists(h_.id(), acc.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return !acc.empty();
}

bool Location::is_group(const std::string& path) const {
  if (!exists(path)) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name2(h_.id(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_GROUP;
}

bool Location::is_dataset(const std::string& path) const {
  if (!exists(path)) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name2(h_.id(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

Result<std::vector<std::string>> Location::children() const {
  std::vector<std::string> names;
  herr_t rc = H5Literate(h_.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
                          [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
                            static_cast<std::vector<std::string>*>(data)->push_back(name);
                            return 0;
                          },
                          &names);
  if (rc < 0) return Status::DataLoss(where() + ": cannot list children: " + hdf5_error_text());
  std::sort(names.begin(), names.end());
  return names;
}

Result<Group> Location::create_group(const std::string& path) const {
  silence_hdf5_errors();
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  hid_t g = H5Gcreate2(h_.id(), path.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return Status::InvalidArgument(where(path) + ": cannot create group: " + hdf5_error_text());
  return Group(Handle(g), join(path), file_name_);
}

Result<Group> Location::open_group(const std::string& path) const {
  if (!exists(path)) return Status::NotFound(where(path) + ": no such group");
  hid_t g = H5Gopen2(h_.id(), path.c_str(), H5P_DEFAULT);
  if (g < 0) return Status::InvalidArgument(where(path) + ": expected a group: " + hdf5_error_text());
  return Group(Handle(g), join(path), file_name_);
}

Result<Group> Location::require_group(const std::string& path) const {
  if (exists(path)) return open_group(path);
  return create_group(path);
}

Result<std::vector<hsize_t>> Location::shape(const std::string& path) const {
  if (!exists(path)) return Status::NotFound(where(path) + ": no such dataset");
  Handle ds(H5Dopen2(h_.id(), path.c_str(), H5P_DEFAULT));
  if (!ds.valid()) return Status::InvalidArgument(where(path) + ": expected a dataset");
  Handle sp(H5Dget_space(ds.id()));
  int rank = H5Sget_simple_extent_ndims(sp.id());
  if (rank < 0) return Status::DataLoss(where(path) + ": bad dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(sp.id(), dims.data(), nullptr);
  return dims;
}

Result<TypeInfo> Location::type_info(const std::string& path) const {
  if (!exists(path)) return Status::NotFound(where(path) + ": no such dataset");
  Handle ds(H5Dopen2(h_.id(), path.c_str(), H5P_DEFAULT));
  if (!ds.valid()) return Status::InvalidArgument(where(path) + ": expected a dataset");
  Handle t(H5Dget_type(ds.id()));
  return describe_type(t.id());
}

Result<std::vector<std::string>> Location::dimension_scales(const std::string& path) const {
  silence_hdf5_errors();
  if (!exists(path)) return Status::NotFound(where(path) + ": no such dataset");
  Handle ds(H5Dopen2(h_.id(), path.c_str(), H5P_DEFAULT));
  if (!ds.valid()) return Status::InvalidArgument(where(path) + ": expected a dataset");
  std::vector<std::string> out;
  if (H5Aexists(ds.id(), "DIMENSION_LIST") <= 0) return out;
  Handle at(H5Aopen(ds.id(), "DIMENSION_LIST", H5P_DEFAULT));
  Handle space(H5Aget_space(at.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  Handle ftype(H5Aget_type(at.id()));
  if (n < 0 || H5Tget_class(ftype.id()) != H5T_VLEN)
    return Status::InvalidArgument(where(path) + "@DIMENSION_LIST: expected a list of object references");
  Handle mtype(H5Tvlen_create(H5T_STD_REF_OBJ));
  std::vector<hvl_t> buf(static_cast<size_t>(n));
  if (H5Aread(at.id(), mtype.id(), buf.data()) < 0)
    return Status::DataLoss(where(path) + "@DIMENSION_LIST: cannot read: " + hdf5_error_text());
  for (auto& v : buf) {
    std::string name;
    if (v.len > 0 && v.p) {
      Handle obj(H5Rdereference2(ds.id(), H5P_DEFAULT, H5R_OBJECT, static_cast<hobj_ref_t*>(v.p)));
      if (obj.valid()) {
        ssize_t len = H5Iget_name(obj.id(), nullptr, 0);
        if (len > 0) {
          name.resize(static_cast<size_t>(len) + 1);
          H5Iget_name(obj.id(), name.data(), name.size());
          name.resize(static_cast<size_t>(len));
        }
      }
    }
    out.push_back(name);
  }
  H5Dvlen_reclaim(mtype.id(), space.id(), H5P_DEFAULT, buf.data());
  return out;
}

template <typename T>
Status Location::write(const std::string& path, const Array<T>& a, const WriteOptions& o) const {
  silence_hdf5_errors();
  if (a.numel() != a.data.size())
    return Status::Internal(fmt::format("{}: shape holds {} elements but data has {}", where(path),
                                        a.numel(), a.data.size()));
  if (exists(path) && H5Ldelete(h_.id(), path.c_str(), H5P_DEFAULT) < 0)
    return Status::Unavailable(where(path) + ": cannot replace dataset: " + hdf5_error_text());
  Handle space(a.shape.empty() ? H5Screate(H5S_SCALAR)
                               : H5Screate_simple(static_cast<int>(a.shape.size()), a.shape.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  bool chunked = !o.chunk.empty() || o.gzip_level > 0;
  if (chunked && !a.shape.empty() && a.numel() > 0) {
    std::vector<hsize_t> chunk = o.chunk;
    if (chunk.empty()) {
      chunk = a.shape;
      size_t row_elems = a.numel() / std::max<hsize_t>(a.shape[0], 1);
      size_t elem = std::is_same_v<T, std::string> ? sizeof(char*) : sizeof(T);
      hsize_t rows = std::max<hsize_t>(1, (1u << 20) / std::max<size_t>(1, row_elems * elem));
      chunk[0] = std::min(a.shape[0], rows);
    }
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = std::max<hsize_t>(1, std::min(chunk[i], a.shape[i]));
    H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
    if (o.gzip_level > 0) {
      if (o.shuffle) H5Pset_shuffle(dcpl.id());
      H5Pset_deflate(dcpl.id(), static_cast<unsigned>(o.gzip_level));
    }
  }
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  herr_t rc;
  if constexpr (std::is_same_v<T, std::string>) {
    Handle st = vlen_string_type();
    Handle ds(H5Dcreate2(h_.id(), path.c_str(), st.id(), space.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT));
    if (!ds.valid()) return Status::InvalidArgument(where(path) + ": cannot create dataset: " + hdf5_error_text());
    std::vector<const char*> ptrs;
    ptrs.reserve(a.data.size());
    for (auto& s : a.data) ptrs.push_back(s.c_str());
    rc = H5Dwrite(ds.id(), st.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
  } else {
    Handle ds(H5Dcreate2(h_.id(), path.c_str(), NativeType<T>::id(), space.id(), lcpl.id(), dcpl.id(),
                         H5P_DEFAULT));
    if (!ds.valid()) return Status::InvalidArgument(where(path) + ": cannot create dataset: " + hdf5_error_text());
    rc = H5Dwrite(ds.id(), NativeType<T>::id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, a.data.data());
  }
  if (rc < 0) return Status::Unavailable(where(path) + ": write failed: " + hdf5_error_text());
  return Status::Ok();
}

template <typename T>
Status Location::write_scalar(const std::string& path, const T& v) const {
  return write(path, Array<T>({}, {v}));
}

namespace {

template <typename T>
Status check_kind(const std::string& where, hid_t ftype) {
  H5T_class_t cls = H5Tget_class(ftype);
  constexpr bool want_string = std::is_same_v<T, std::string>;
  constexpr bool want_float = std::is_floating_point_v<T>;
  if (!type_kind_matches(cls, want_string, want_float) ||
      (!want_string && !want_float && cls == H5T_FLOAT)) {
    return Status::InvalidArgument(fmt::format("{}: expected {}, found {}", where, type_name<T>(),
                                               describe_type(ftype).describe()));
  }
  return Status::Ok();
}

// A shape read from a file is untrusted: a corrupt or hostile file must not make
// us allocate without bound. Cap = $MIGVIS_MAX_READ_GB (default 16) per array.
Status check_read_size(const std::string& where, const std::vector<hsize_t>& dims, size_t elem_bytes) {
  double gb_cap = 16;
  if (const char* env = std::getenv("MIGVIS_MAX_READ_GB")) {
    char* end = nullptr;
    double v = std::strtod(env, &end);
    if (end != env && v > 0) gb_cap = v;
  }
  const unsigned __int128 cap_bytes = static_cast<unsigned __int128>(gb_cap * 1024.0 * 1024.0 * 1024.0);
  unsigned __int128 bytes = elem_bytes;
  std::string shape;
  for (hsize_t d : dims) {
    shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    bytes *= d;
    if (bytes > cap_bytes) bytes = cap_bytes + 1;  // saturate: no overflow whatever the dims
  }
  if (bytes > cap_bytes)
    return Status::InvalidArgument(fmt::format("{}: shape [{}] needs more than {:g} GiB to read; refusing (a corrupt "
                                               "file?). Set MIGVIS_MAX_READ_GB to allow larger arrays",
                                               where, shape, gb_cap));
  return Status::Ok();
}

}  // namespace

template <typename T>
Result<Array<T>> Location::read_rows(const std::string& path, hsize_t row0, hsize_t nrows) const {
  silence_hdf5_errors();
  if (!exists(path)) return Status::NotFound(where(path) + ": no such dataset");
  Handle ds(H5Dopen2(h_.id(), path.c_str(), H5P_DEFAULT));
  if (!ds.valid()) return Status::InvalidArgument(where(path) + ": expected a dataset, found a group");
  Handle ftype(H5Dget_type(ds.id()));
  MIGVIS_RETURN_IF_ERROR(check_kind<T>(where(path), ftype.id()));
  Handle fspace(H5Dget_space(ds.id()));
  int rank = H5Sget_simple_extent_ndims(fspace.id());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(fspace.id(), dims.data(), nullptr);
  Array<T> out;
  Handle mspace;
  if (rank > 0 && (row0 != 0 || nrows != dims[0])) {
    if (row0 + nrows > dims[0])
      return Status::InvalidArgument(fmt::format("{}: rows [{}, {}) out of range (first dimension {})", where(path),
                                                 row0, row0 + nrows, dims[0]));
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = row0;
    count[0] = nrows;
    H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
    dims = count;
    mspace = Handle(H5Screate_simple(rank, dims.data(), nullptr));
  }
  out.shape = dims;
  MIGVIS_RETURN_IF_ERROR(check_read_size(where(path), dims, sizeof(T)));
  size_t n = out.numel();
  hid_t ms = mspace.valid() ? mspace.id() : H5S_ALL;
  hid_t fs = mspace.valid() ? fspace.id() : H5S_ALL;
  if constexpr (std::is_same_v<T, std::string>) {
    MIGVIS_RETURN_IF_ERROR(read_strings(ftype.id(), n, &out.data, [&](hid_t mt, void* buf) {
      return H5Dread(ds.id(), mt, ms, fs, H5P_DEFAULT, buf);
    }).with_context(where(path)));
  } else {
    out.data.resize(n);
    if (n > 0 && H5Dread(ds.id(), NativeType<T>::id(), ms, fs, H5P_DEFAULT, out.data.data()) < 0)
      return Status::DataLoss(where(path) + ": read failed: " + hdf5_error_text());
  }
  return out;
}

template <typename T>
Result<Array<T>> Location::read(const std::string& path) const {
  MIGVIS_ASSIGN_OR_RETURN(auto dims, shape(path));
  return read_rows<T>(path, 0, dims.empty() ? 0 : dims[0]);
}

template <typename T>
Result<std::vector<T>> Location::read_vector(const std::string& path) const {
  MIGVIS_ASSIGN_OR_RETURN(auto a, read<T>(path));
  return std::move(a.data);
}

// ---------------------------------------------------------------- attributes

bool Location::has_attr(const std::string& obj, const std::string& name) const {
  silence_hdf5_errors();
  if (obj != "." && !exists(obj)) return false;
  return H5Aexists_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

template <typename T>
Status Location::set_attr_vector(const std::string& obj, const std::string& name, const std::vector<T>& v) const {
  silence_hdf5_errors();
  if (obj != "." && !exists(obj)) return Status::NotFound(where(obj) + ": no object to attach attribute " + name);
  if (H5Aexists_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT);
  hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  herr_t rc;
  if constexpr (std::is_same_v<T, std::string>) {
    Handle st = vlen_string_type();
    Handle at(H5Acreate_by_name(h_.id(), obj.c_str(), name.c_str(), st.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT));
    if (!at.valid()) return Status::InvalidArgument(where(obj) + ": cannot create attribute " + name);
    std::vector<const char*> ptrs;
    for (auto& s : v) ptrs.push_back(s.c_str());
    rc = H5Awrite(at.id(), st.id(), ptrs.data());
  } else {
    Handle at(H5Acreate_by_name(h_.id(), obj.c_str(), name.c_str(), NativeType<T>::id(), space.id(), H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT));
    if (!at.valid()) return Status::InvalidArgument(where(obj) + ": cannot create attribute " + name);
    rc = H5Awrite(at.id(), NativeType<T>::id(), v.data());
  }
  if (rc < 0) return Status::Unavailable(where(obj) + ": cannot write attribute " + name + ": " + hdf5_error_text());
  return Status::Ok();
}

template <typename T>
Status Location::set_attr(const std::string& obj, const std::string& name, const T& value) const {
  silence_hdf5_errors();
  if (obj != "." && !exists(obj)) return Status::NotFound(where(obj) + ": no object to attach attribute " + name);
  if (H5Aexists_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT);
  Handle space(H5Screate(H5S_SCALAR));
  herr_t rc;
  if constexpr (std::is_same_v<T, std::string>) {
    Handle st = vlen_string_type();
    Handle at(H5Acreate_by_name(h_.id(), obj.c_str(), name.c_str(), st.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT));
    if (!at.valid()) return Status::InvalidArgument(where(obj) + ": cannot create attribute " + name);
    const char* p = value.c_str();
    rc = H5Awrite(at.id(), st.id(), &p);
  } else {
    Handle at(H5Acreate_by_name(h_.id(), obj.c_str(), name.c_str(), NativeType<T>::id(), space.id(), H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT));
    if (!at.valid()) return Status::InvalidArgument(where(obj) + ": cannot create attribute " + name);
    rc = H5Awrite(at.id(), NativeType<T>::id(), &value);
  }
  if (rc < 0) return Status::Unavailable(where(obj) + ": cannot write attribute " + name + ": " + hdf5_error_text());
  return Status::Ok();
}

template <typename T>
Result<std::vector<T>> Location::attr_vector(const std::string& obj, const std::string& name) const {
  silence_hdf5_errors();
  if (!has_attr(obj, name)) return Status::NotFound(where(obj) + ": no attribute '" + name + "'");
  Handle at(H5Aopen_by_name(h_.id(), obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!at.valid()) return Status::DataLoss(where(obj) + ": cannot open attribute " + name);
  Handle ftype(H5Aget_type(at.id()));
  MIGVIS_RETURN_IF_ERROR(check_kind<T>(where(obj) + "@" + name, ftype.id()));
  Handle space(H5Aget_space(at.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<T> out;
  if constexpr (std::is_same_v<T, std::string>) {
    MIGVIS_RETURN_IF_ERROR(read_strings(ftype.id(), static_cast<size_t>(n), &out, [&](hid_t mt, void* buf) {
      return H5Aread(at.id(), mt, buf);
    }).with_context(where(obj) + "@" + name));
  } else {
    out.resize(static_cast<size_t>(n));
    if (n > 0 && H5Aread(at.id(), NativeType<T>::id(), out.data()) < 0)
      return Status::DataLoss(where(obj) + ": cannot read attribute " + name + ": " + hdf5_error_text());
  }
  return out;
}

template <typename T>
Result<T> Location::attr(const std::string& obj, const std::string& name) const {
  MIGVIS_ASSIGN_OR_RETURN(auto v, attr_vector<T>(obj, name));
  if (v.size() != 1)
    return Status::InvalidArgument(fmt::format("{}@{}: expected a scalar, found {} values", where(obj), name, v.size()));
  return std::move(v[0]);
}

Result<std::vector<std::string>> Location::attr_names(const std::string& obj) const {
  std::vector<std::string> names;
  herr_t rc = H5Aiterate_by_name(h_.id(), obj.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
                                 [](hid_t, const char* name, const H5A_info_t*, void* d) -> herr_t {
                                   static_cast<std::vector<std::string>*>(d)->push_back(name);
                                   return 0;
                                 },
                                 &names, H5P_DEFAULT);
  if (rc < 0) return Status::DataLoss(where(obj) + ": cannot list attributes");
  return names;
}

// ---------------------------------------------------------------- File

Result<File> File::open(const fs::path& path, Mode mode) {
  silence_hdf5_errors();
  if (!fs::exists(path)) return Status::NotFound(path.string() + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    return Status::DataLoss(path.string() + ": not an HDF5 file (or truncated/corrupt)");
  hid_t f = H5Fopen(path.c_str(), mode == Mode::kReadOnly ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return Status::DataLoss(path.string() + ": cannot open HDF5 file: " + hdf5_error_text());
  return File(Handle(f), path);
}

Result<File> File::create(const fs::path& path) {
  silence_hdf5_errors();
  if (path.has_parent_path()) MIGVIS_RETURN_IF_ERROR(make_dirs(path.parent_path()));
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return Status::Unavailable(path.string() + ": cannot create HDF5 file: " + hdf5_error_text());
  return File(Handle(f), path);
}

Status File::close() {
  if (!h_.valid()) return Status::Ok();
  herr_t rc = H5Fflush(h_.id(), H5F_SCOPE_GLOBAL);
  h_.reset();
  if (rc < 0) return Status::Unavailable(fs_path_.string() + ": flush failed: " + hdf5_error_text());
  return Status::Ok();
}

Result<std::unique_ptr<AtomicFile>> AtomicFile::create(const fs::path& dest) {
  std::unique_ptr<AtomicFile> af(new AtomicFile(dest));
  MIGVIS_ASSIGN_OR_RETURN(af->file_, File::create(af->tmp_.temp()));
  return af;
}

Status AtomicFile::commit() {
  MIGVIS_RETURN_IF_ERROR(file_.close());
  return tmp_.commit();
}

// ---------------------------------------------------------------- instantiations

#define MIGVIS_H5_INSTANTIATE(T)                                                                        \
  template Status Location::write<T>(const std::string&, const Array<T>&, const WriteOptions&) const;   \
  template Status Location::write_scalar<T>(const std::string&, const T&) const;                         \
  template Result<Array<T>> Location::read<T>(const std::string&) const;                                 \
  template Result<std::vector<T>> Location::read_vector<T>(const std::string&) const;                    \
  template Result<Array<T>> Location::read_rows<T>(const std::string&, hsize_t, hsize_t) const;          \
  template Status Location::set_attr<T>(const std::string&, const std::string&, const T&) const;         \
  template Status Location::set_attr_vector<T>(const std::string&, const std::string&,                   \
                                               const std::vector<T>&) const;                             \
  template Result<T> Location::attr<T>(const std::string&, const std::string&) const;                    \
  template Result<std::vector<T>> Location::attr_vector<T>(const std::string&, const std::string&) const;

MIGVIS_H5_INSTANTIATE(float)
MIGVIS_H5_INSTANTIATE(double)
MIGVIS_H5_INSTANTIATE(int32_t)
MIGVIS_H5_INSTANTIATE(int64_t)
MIGVIS_H5_INSTANTIATE(uint8_t)
MIGVIS_H5_INSTANTIATE(uint16_t)
MIGVIS_H5_INSTANTIATE(std::string)
#undef MIGVIS_H5_INSTANTIATE

}  // namespace migvis::h5
