// Brain-Score / BrainIO netCDF-4 assembly + stimulus set -> migvis dataset.
// See schemas/import.md for the mapping.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "orchestrator/data/csv.h"
#include "orchestrator/data/import.h"
#include "orchestrator/data/import_util.h"
#include "results/png.h"

namespace migvis::data {
namespace {

using detail::Column;

std::string basename_of(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

bool is_netcdf_phony_dim(const h5::Location& f, const std::string& name) {
  if (!f.has_attr(name, "NAME")) return false;
  auto n = f.attr<std::string>(name, "NAME");
  return n.ok() && n->rfind("This is a netCDF dimension but not a netCDF variable", 0) == 0;
}

bool is_dim_scale(const h5::Location& f, const std::string& name) {
  if (!f.has_attr(name, "CLASS")) return false;
  auto c = f.attr<std::string>(name, "CLASS");
  return c.ok() && *c == "DIMENSION_SCALE";
}

struct Assembly {
  std::string var;
  std::vector<hsize_t> shape;          // of var
  int ax_pres = -1, ax_neur = -1, ax_time = -1;
  std::map<std::string, std::vector<Column>> coords;  // dimension -> coordinates
  const Column* find(const std::string& dim, const std::string& name) const {
    auto it = coords.find(dim);
    if (it == coords.end()) return nullptr;
    for (auto& c : it->second)
      if (c.name == name) return &c;
    return nullptr;
  }
};

Result<Assembly> read_assembly(const h5::File& f, const ImportOptions& o) {
  Assembly a;
  const std::string file = o.input.string();
  MIGVIS_ASSIGN_OR_RETURN(auto names, f.children());
  std::vector<std::string> datasets;
  for (auto& n : names)
    if (f.is_dataset(n)) datasets.push_back(n);
  if (!o.variable.empty()) {
    if (!f.is_dataset(o.variable))
      return Status::InvalidArgument(fmt::format("{}:/{}: no such data variable (root datasets: {})", file, o.variable,
                                                 fmt::join(datasets, ", ")));
    a.var = o.variable;
  } else {
    std::vector<std::string> cands;
    for (auto& n : datasets) {
      if (is_dim_scale(f, n)) continue;
      auto sh = f.shape(n);
      auto ti = f.type_info(n);
      if (sh.ok() && ti.ok() && (sh->size() == 2 || sh->size() == 3) &&
          (ti->cls == H5T_FLOAT || ti->cls == H5T_INTEGER))
        cands.push_back(n);
    }
    if (cands.size() > 1) {  // prefer variables whose dimension scales say presentation and neuroid
      std::vector<std::string> named;
      for (auto& n : cands) {
        auto sc = f.dimension_scales(n);
        if (!sc.ok()) continue;
        std::set<std::string> dn;
        for (auto& x : *sc) dn.insert(basename_of(x));
        if (dn.count("presentation") && dn.count("neuroid")) named.push_back(n);
      }
      if (named.size() == 1) cands = named;
    }
    if (cands.size() != 1)
      return Status::InvalidArgument(fmt::format(
          "{}:/: expected exactly one data variable of rank 2 or 3 (presentation x neuroid [x time_bin]), found {} "
          "({}); root datasets: {}; pass --variable",
          file, cands.size(), fmt::join(cands, ", "), fmt::join(datasets, ", ")));
    a.var = cands[0];
  }
  MIGVIS_ASSIGN_OR_RETURN(a.shape, f.shape(a.var));
  if (a.shape.size() != 2 && a.shape.size() != 3)
    return Status::InvalidArgument(fmt::format("{}:/{}: expected rank 2 or 3 (presentation x neuroid [x time_bin]), found rank {}",
                                               file, a.var, a.shape.size()));
  MIGVIS_ASSIGN_OR_RETURN(auto scales, f.dimension_scales(a.var));
  std::vector<std::string> dims;
  if (scales.empty()) {
    dims = {"presentation", "neuroid", "time_bin"};  // documented default order
    dims.resize(a.shape.size());
  } else {
    for (auto& s : scales) dims.push_back(basename_of(s));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == "presentation") a.ax_pres = static_cast<int>(i);
    else if (dims[i] == "neuroid") a.ax_neur = static_cast<int>(i);
    else if (dims[i] == "time_bin") a.ax_time = static_cast<int>(i);
  }
  if (a.ax_pres < 0 || a.ax_neur < 0 || (a.shape.size() == 3 && a.ax_time < 0))
    return Status::InvalidArgument(fmt::format("{}:/{}: expected dimensions presentation x neuroid [x time_bin], found {}",
                                               file, a.var, fmt::join(dims, " x ")));
  std::map<std::string, hsize_t> dim_len;
  for (size_t i = 0; i < dims.size(); ++i) dim_len[dims[i]] = a.shape[i];
  for (auto& n : datasets) {
    if (n == a.var || is_netcdf_phony_dim(f, n)) continue;
    std::string dim;
    if (is_dim_scale(f, n)) {
      dim = n;
    } else {
      auto sc = f.dimension_scales(n);
      if (sc.ok() && !sc->empty()) dim = basename_of((*sc)[0]);
    }
    auto sh = f.shape(n);
    if (!sh.ok()) continue;
    if (dim.empty()) {  // no dimension scales: match by length when unambiguous
      std::vector<std::string> m;
      for (auto& [d, len] : dim_len)
        if (!sh->empty() && (*sh)[0] == len) m.push_back(d);
      if (m.size() != 1) continue;
      dim = m[0];
    }
    if (!dim_len.count(dim)) continue;
    MIGVIS_ASSIGN_OR_RETURN(Column c, detail::read_column(f, n, dim));
    if (c.size() != dim_len[dim])
      return Status::InvalidArgument(fmt::format("{}:/{}: coordinate over {} must have {} entries, found {}", file, n,
                                                 dim, dim_len[dim], c.size()));
    a.coords[dim].push_back(std::move(c));
  }
  return a;
}

// Stimulus images by id from the stimulus-set CSV.
struct StimulusSet {
  CsvTable csv;
  int id_col = -1, file_col = -1;
  std::map<std::string, size_t> row_of_id;
};

Result<StimulusSet> read_stimulus_set(const ImportOptions& o) {
  if (o.stimuli_csv.empty())
    return Status::InvalidArgument("brainscore import needs the stimulus set: --stimuli CSV (columns stimulus_id or "
                                   "image_id, filename, metadata)");
  StimulusSet s;
  MIGVIS_ASSIGN_OR_RETURN(s.csv, read_csv(o.stimuli_csv));
  s.id_col = s.csv.column("stimulus_id");
  if (s.id_col < 0) s.id_col = s.csv.column("image_id");
  s.file_col = s.csv.column("filename");
  if (s.file_col < 0) s.file_col = s.csv.column("image_file_name");
  if (s.id_col < 0 || s.file_col < 0)
    return Status::InvalidArgument(fmt::format("{}:1: expected columns stimulus_id (or image_id) and filename, found: {}",
                                               o.stimuli_csv.string(), fmt::join(s.csv.header, ", ")));
  for (size_t r = 0; r < s.csv.rows.size(); ++r) {
    const std::string& id = s.csv.rows[r][s.id_col];
    if (!s.row_of_id.emplace(id, r).second)
      return Status::InvalidArgument(fmt::format("{}:{}: duplicate stimulus id '{}'", o.stimuli_csv.string(),
                                                 s.csv.line_of_row[r], id));
  }
  return s;
}

}  // namespace

Result<Dataset> import_brainscore(const ImportOptions& o) {
  const std::string file = o.input.string();
  MIGVIS_ASSIGN_OR_RETURN(h5::File f, h5::File::open(o.input));
  MIGVIS_ASSIGN_OR_RETURN(Assembly a, read_assembly(f, o));
  MIGVIS_ASSIGN_OR_RETURN(StimulusSet ss, read_stimulus_set(o));
  const size_t np = a.shape[a.ax_pres], nn = a.shape[a.ax_neur], nt = a.ax_time >= 0 ? a.shape[a.ax_time] : 1;

  // Presentations -> stimulus ids -> images, by id (never by position).
  const Column* ids = a.find("presentation", "stimulus_id");
  if (!ids) ids = a.find("presentation", "image_id");
  if (!ids)
    return Status::InvalidArgument(fmt::format("{}:/stimulus_id: missing presentation coordinate (expected stimulus_id "
                                               "or image_id over presentation, length {})", file, np));
  std::vector<size_t> csv_rows;        // dataset image i <- CSV row
  std::map<size_t, int32_t> image_of_row;
  std::vector<int32_t> image_index(np);
  for (size_t p = 0; p < np; ++p) {
    std::string id = ids->text(p);
    auto it = ss.row_of_id.find(id);
    if (it == ss.row_of_id.end())
      return Status::InvalidArgument(fmt::format("{}:/{}: presentation {} shows stimulus '{}', which has no row in {}",
                                                 file, ids->name, p, id, o.stimuli_csv.string()));
    image_of_row.emplace(it->second, 0);
  }
  for (auto& [row, idx] : image_of_row) {  // images in stimulus-set (CSV) order
    idx = static_cast<int32_t>(csv_rows.size());
    csv_rows.push_back(row);
  }
  for (size_t p = 0; p < np; ++p) image_index[p] = image_of_row[ss.row_of_id[ids->text(p)]];

  Dataset d;
  d.source = "import:brainscore:" + file;
  d.description = fmt::format("Brain-Score assembly {} (variable {}), stimulus set {}", file, a.var, o.stimuli_csv.string());
  const fs::path img_dir = o.images_dir.empty() ? o.stimuli_csv.parent_path() : o.images_dir;
  int h = 0, w = 0;
  std::vector<float> pixels;
  for (size_t i = 0; i < csv_rows.size(); ++i) {
    const auto& row = ss.csv.rows[csv_rows[i]];
    fs::path p = img_dir / row[ss.file_col];
    auto img = png::read_png(p);
    if (!img.ok())
      return Status(img.status().code() == StatusCode::kNotFound ? StatusCode::kInvalidArgument : img.status().code(),
                    fmt::format("{}:{}: image of stimulus '{}': {}", o.stimuli_csv.string(),
                                ss.csv.line_of_row[csv_rows[i]], row[ss.id_col], img.status().message()));
    int ih, iw;
    std::vector<float> g = detail::to_gray(*img, &ih, &iw);
    if (o.image_size_px > 0) {
      g = detail::resample(g, ih, iw, o.image_size_px, o.image_size_px);
      ih = iw = o.image_size_px;
    }
    if (i == 0) { h = ih; w = iw; }
    if (ih != h || iw != w)
      return Status::InvalidArgument(fmt::format("{}: expected {} x {} like the first image, found {} x {} (use --image-size)",
                                                 p.string(), h, w, ih, iw));
    pixels.insert(pixels.end(), g.begin(), g.end());
    d.stimulus_ids.push_back(row[ss.id_col]);
  }
  d.images = h5::Array<float>({csv_rows.size(), 1, static_cast<hsize_t>(h), static_cast<hsize_t>(w)}, std::move(pixels));

  // Factors: presentation coordinates first, then stimulus-set columns.
  std::vector<int64_t> first(csv_rows.size(), -1);
  for (size_t p = 0; p < np; ++p)
    if (first[image_index[p]] < 0) first[image_index[p]] = static_cast<int64_t>(p);
  static const std::set<std::string> skip = {"stimulus_id", "image_id", "repetition", "rep", "presentation", "id",
                                             "filename", "image_file_name", "image_file_sha1", "stimulus_path"};
  std::vector<Column> cols;
  std::set<std::string> seen;
  if (a.coords.count("presentation"))
    for (auto& c : a.coords["presentation"])
      if (!skip.count(c.name) && seen.insert(c.name).second) cols.push_back(c);
  std::vector<int64_t> csv_first(csv_rows.size());
  for (size_t i = 0; i < csv_rows.size(); ++i) csv_first[i] = static_cast<int64_t>(i);
  std::vector<Column> csv_cols;
  for (size_t j = 0; j < ss.csv.header.size(); ++j) {
    const std::string& name = ss.csv.header[j];
    if (skip.count(name) || seen.count(name)) continue;
    Column c;
    c.name = name;
    bool numeric = true;
    for (size_t i = 0; i < csv_rows.size() && numeric; ++i) {
      const std::string& v = ss.csv.rows[csv_rows[i]][j];
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      numeric = !v.empty() && end && *end == '\0';
      c.d.push_back(x);
    }
    if (!numeric) {
      c.is_string = true;
      c.d.clear();
      for (size_t i = 0; i < csv_rows.size(); ++i) c.s.push_back(ss.csv.rows[csv_rows[i]][j]);
    }
    csv_cols.push_back(std::move(c));
  }
  d.factors = detail::factors_from_columns(cols, first);
  for (auto& f : detail::factors_from_columns(csv_cols, csv_first))
    if (!d.factor(f.name)) d.factors.push_back(std::move(f));
  std::sort(d.factors.begin(), d.factors.end(), [](const Factor& x, const Factor& y) { return x.name < y.name; });

  // Neuroids: region filter, split by animal.
  const Column* region = a.find("neuroid", "region");
  const Column* animal = a.find("neuroid", "animal");
  const Column* nid = a.find("neuroid", "neuroid_id");
  std::map<std::string, std::vector<size_t>> by_animal;
  std::set<std::string> regions_found;
  for (size_t j = 0; j < nn; ++j) {
    if (region) regions_found.insert(region->text(j));
    if (region && !o.region.empty() && region->text(j) != o.region) continue;
    std::string an = animal ? sanitize_name(animal->text(j)) : (o.animal.empty() ? "a1" : sanitize_name(o.animal));
    if (animal && !o.animal.empty() && an != sanitize_name(o.animal)) continue;
    by_animal[an].push_back(j);
  }
  if (by_animal.empty())
    return Status::InvalidArgument(fmt::format("{}:/region: no neuroid in region '{}'{} (regions found: {})", file, o.region,
                                               o.animal.empty() ? "" : " of animal " + o.animal,
                                               fmt::join(regions_found, ", ")));

  // Time window.
  double t0 = 70, t1 = 170;
  const Column* tbs = a.find("time_bin", "time_bin_start");
  const Column* tbe = a.find("time_bin", "time_bin_end");
  if (o.time_bin >= static_cast<int>(nt))
    return Status::InvalidArgument(fmt::format("{}:/{}: --time-bin {} out of range (the assembly has {} time bins)", file,
                                               a.var, o.time_bin, nt));
  if (tbs && tbe && !tbs->is_string && !tbe->is_string) {
    if (o.time_bin >= 0) { t0 = tbs->d[o.time_bin]; t1 = tbe->d[o.time_bin]; }
    else { t0 = *std::min_element(tbs->d.begin(), tbs->d.end()); t1 = *std::max_element(tbe->d.begin(), tbe->d.end()); }
  }

  // Values: read all, average (or pick) time bins.
  MIGVIS_ASSIGN_OR_RETURN(h5::Array<float> vals, f.read<float>(a.var));
  std::vector<size_t> stride(a.shape.size(), 1);
  for (int k = static_cast<int>(a.shape.size()) - 2; k >= 0; --k) stride[k] = stride[k + 1] * a.shape[k + 1];
  auto value = [&](size_t p, size_t j, size_t t) {
    size_t off = p * stride[a.ax_pres] + j * stride[a.ax_neur] + (a.ax_time >= 0 ? t * stride[a.ax_time] : 0);
    return vals.data[off];
  };
  for (auto& [an, cols_j] : by_animal) {
    Session s;
    s.animal = an;
    s.name = o.session.empty() ? "s1" : sanitize_name(o.session);
    s.value_kind = "rates";
    s.t_start_ms = t0;
    s.t_stop_ms = t1;
    s.region = o.region.empty() ? (region ? region->text(cols_j[0]) : "IT") : o.region;
    s.image_index = image_index;
    s.counts = h5::Array<float>({np, cols_j.size()});
    std::set<std::string> used_ids;
    for (size_t k = 0; k < cols_j.size(); ++k) {
      std::string id = nid ? nid->text(cols_j[k]) : fmt::format("{}", cols_j[k]);
      if (!used_ids.insert(id).second)
        return Status::InvalidArgument(fmt::format("{}:/{}: neuroid id '{}' occurs twice for animal {}", file,
                                                   nid ? nid->name : "neuroid", id, an));
      s.neuron_ids.push_back(id);
    }
    for (size_t p = 0; p < np; ++p)
      for (size_t k = 0; k < cols_j.size(); ++k) {
        double acc = 0;
        if (o.time_bin >= 0) acc = value(p, cols_j[k], static_cast<size_t>(o.time_bin));
        else {
          for (size_t t = 0; t < nt; ++t) acc += value(p, cols_j[k], t);
          acc /= static_cast<double>(nt);
        }
        if (!std::isfinite(acc))
          return Status::InvalidArgument(fmt::format("{}:/{}: non-finite value at presentation {}, neuroid {} ('{}')",
                                                     file, a.var, p, cols_j[k], s.neuron_ids[k]));
        s.counts.data[p * cols_j.size() + k] = static_cast<float>(acc);
      }
    d.sessions.push_back(std::move(s));
  }
  MIGVIS_RETURN_IF_ERROR(validate_dataset(d, file));
  return d;
}

}  // namespace migvis::data
