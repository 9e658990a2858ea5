#include "orchestrator/data/import.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "orchestrator/data/import_util.h"
#include "schemas/dataset_names.h"

namespace migvis::data {

std::string sanitize_name(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    out += ok ? c : '_';
    if (out.size() == 64) break;
  }
  return out.empty() ? "x" : out;
}

namespace detail {

std::string Column::text(size_t i) const {
  if (is_string) return s[i];
  double v = d[i];
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

Result<Column> read_column(const h5::Location& loc, const std::string& path, const std::string& expect_dim) {
  Column c;
  c.name = path.substr(path.find_last_of('/') + 1);
  MIGVIS_ASSIGN_OR_RETURN(auto shape, loc.shape(path));
  MIGVIS_ASSIGN_OR_RETURN(h5::TypeInfo ti, loc.type_info(path));
  if (ti.cls == H5T_STRING) {
    c.is_string = true;
    if (shape.size() == 1) {
      MIGVIS_ASSIGN_OR_RETURN(c.s, loc.read_vector<std::string>(path));
      return c;
    }
    if (shape.size() == 2 && ti.size_bytes == 1) {  // netCDF char array [n, len]
      MIGVIS_ASSIGN_OR_RETURN(auto chars, loc.read_vector<std::string>(path));
      for (hsize_t i = 0; i < shape[0]; ++i) {
        std::string row;
        for (hsize_t j = 0; j < shape[1]; ++j) row += chars[i * shape[1] + j];
        while (!row.empty() && (row.back() == ' ' || row.back() == '\0')) row.pop_back();
        c.s.push_back(row);
      }
      return c;
    }
  } else if ((ti.cls == H5T_INTEGER || ti.cls == H5T_FLOAT) && shape.size() == 1) {
    MIGVIS_ASSIGN_OR_RETURN(c.d, loc.read_vector<double>(path));
    return c;
  } else if (ti.cls != H5T_INTEGER && ti.cls != H5T_FLOAT) {
    return Status::InvalidArgument(fmt::format("{}: expected a coordinate of numbers or strings over {}, found type {}",
                                               loc.where(path), expect_dim, ti.describe()));
  }
  return Status::InvalidArgument(fmt::format("{}: expected a 1-D coordinate over {}, found rank {} ({})",
                                             loc.where(path), expect_dim, shape.size(), ti.describe()));
}

std::vector<Factor> factors_from_columns(const std::vector<Column>& cols, const std::vector<int64_t>& first) {
  namespace names = schema::dataset;
  std::set<std::string> have;
  for (auto& c : cols) have.insert(c.name);
  const bool hvm_position = have.count("tz") && !have.count("tx");  // HvM: ty horizontal, tz vertical
  std::vector<Factor> out;
  std::set<std::string> used;
  for (auto& c : cols) {
    Factor f;
    f.name = c.name;
    f.role = names::kRoleOther;
    if (c.name == "category_name" || c.name == "category") { f.name = "category"; f.role = names::kRoleCategory; }
    else if (c.name == "object_name" || c.name == "object") { f.name = "object"; f.role = names::kRoleIdentity; }
    else if (c.name == "rxy" || c.name == "ryz" || c.name == "rxz") { f.role = names::kRolePose; f.units = "deg"; }
    else if (c.name == "s" || c.name == "size") { f.name = "size"; f.role = names::kRoleSize; f.units = "scale"; }
    else if (hvm_position && c.name == "ty") { f.name = "tx"; f.role = names::kRolePosition; f.units = "hvm"; }
    else if (hvm_position && c.name == "tz") { f.name = "ty"; f.role = names::kRolePosition; f.units = "hvm"; }
    else if (c.name == "tx" || c.name == "ty") { f.role = names::kRolePosition; f.units = "fraction_of_image"; }
    f.name = sanitize_name(f.name);
    if (!used.insert(f.name).second) continue;
    const bool categorical = c.is_string || f.role == names::kRoleCategory || f.role == names::kRoleIdentity;
    f.kind = categorical ? FactorKind::kCategorical : FactorKind::kContinuous;
    if (categorical) {
      std::set<std::string> cls;
      for (auto p : first)
        if (p >= 0) cls.insert(c.text(static_cast<size_t>(p)));
      f.classes.assign(cls.begin(), cls.end());
      if (f.classes.empty()) f.classes.push_back("unknown");
      for (auto p : first) {
        std::string v = p >= 0 ? c.text(static_cast<size_t>(p)) : f.classes[0];
        f.values.push_back(static_cast<float>(std::lower_bound(f.classes.begin(), f.classes.end(), v) - f.classes.begin()));
      }
    } else {
      bool finite = true;
      for (auto p : first) {
        float v = p >= 0 ? static_cast<float>(c.d[static_cast<size_t>(p)]) : 0.f;
        finite = finite && std::isfinite(v);
        f.values.push_back(v);
      }
      if (!finite) continue;  // a factor with missing values is dropped (validation rejects non-finite)
    }
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const Factor& a, const Factor& b) { return a.name < b.name; });
  return out;
}

std::vector<float> to_gray(const h5::Array<float>& img, int* h, int* w) {
  const int c = static_cast<int>(img.dim(1));
  *h = static_cast<int>(img.dim(2));
  *w = static_cast<int>(img.dim(3));
  const size_t plane = static_cast<size_t>(*h) * *w;
  std::vector<float> g(plane);
  for (size_t p = 0; p < plane; ++p)
    g[p] = c == 3 ? 0.299f * img.data[p] + 0.587f * img.data[plane + p] + 0.114f * img.data[2 * plane + p] : img.data[p];
  return g;
}

std::vector<float> resample(const std::vector<float>& src, int h, int w, int oh, int ow) {
  if (oh == h && ow == w) return src;
  std::vector<float> out(static_cast<size_t>(oh) * ow);
  if (h % oh == 0 && w % ow == 0) {  // integer shrink: box filter
    const int fy = h / oh, fx = w / ow;
    for (int y = 0; y < oh; ++y)
      for (int x = 0; x < ow; ++x) {
        double acc = 0;
        for (int dy = 0; dy < fy; ++dy)
          for (int dx = 0; dx < fx; ++dx) acc += src[static_cast<size_t>(y * fy + dy) * w + x * fx + dx];
        out[static_cast<size_t>(y) * ow + x] = static_cast<float>(acc / (fy * fx));
      }
    return out;
  }
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      double sy = std::clamp((y + 0.5) * h / oh - 0.5, 0.0, h - 1.0), sx = std::clamp((x + 0.5) * w / ow - 0.5, 0.0, w - 1.0);
      int y0 = static_cast<int>(sy), x0 = static_cast<int>(sx);
      int y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
      double ay = sy - y0, ax = sx - x0;
      auto at = [&](int yy, int xx) { return src[static_cast<size_t>(yy) * w + xx]; };
      out[static_cast<size_t>(y) * ow + x] = static_cast<float>(
          (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) + ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1)));
    }
  return out;
}

}  // namespace detail

namespace {

Result<Dataset> import_hdf5(const ImportOptions& o) {
  MIGVIS_ASSIGN_OR_RETURN(Dataset d, read_dataset(o.input));  // validates
  d.description = (d.description.empty() ? "" : d.description + "; ") + "copied from " + o.input.string();
  return d;
}

}  // namespace

Result<Dataset> import_dataset(const ImportOptions& o) {
  if (o.format == "hdf5") return import_hdf5(o);
  if (o.format == "brainscore") return import_brainscore(o);
  if (o.format == "nwb") return import_nwb(o);
  return Status::InvalidArgument("import format: expected brainscore, nwb or hdf5, got '" + o.format + "'");
}

}  // namespace migvis::data
