#include "results/dataset_io.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "schemas/dataset_names.h"

namespace migvis::data {
namespace names = schema::dataset;

std::vector<std::string> Dataset::animals() const {
  std::set<std::string> s;
  for (auto& x : sessions) s.insert(x.animal);
  return {s.begin(), s.end()};
}

const Factor* Dataset::factor(const std::string& name) const {
  for (auto& f : factors)
    if (f.name == name) return &f;
  return nullptr;
}

const Session* Dataset::session(const std::string& animal, const std::string& name) const {
  for (auto& s : sessions)
    if (s.animal == animal && s.name == name) return &s;
  return nullptr;
}

namespace {

const std::regex& name_re() {
  static const std::regex re("[A-Za-z0-9_.-]+");
  return re;
}

std::string session_path(const std::string& animal, const std::string& session) {
  return fmt::format("{}/{}/{}/{}", names::kAnimals, animal, names::kSessions, session);
}

}  // namespace

Status validate_dataset(const Dataset& d, const std::string& where) {
  auto bad = [&](const std::string& path, const std::string& what) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}", where, path, what));
  };
  if (d.images.rank() != 4)
    return bad(names::kImages, fmt::format("expected rank 4 [N, C, H, W], found rank {}", d.images.rank()));
  const size_t n = d.images.dim(0);
  if (d.stimulus_ids.size() != n)
    return bad(names::kStimulusIds, fmt::format("expected {} ids (one per image), found {}", n, d.stimulus_ids.size()));
  if (std::set<std::string>(d.stimulus_ids.begin(), d.stimulus_ids.end()).size() != n)
    return bad(names::kStimulusIds, "stimulus ids must be unique");
  for (size_t i = 0; i < d.images.data.size(); ++i) {
    float v = d.images.data[i];
    if (!std::isfinite(v) || v < 0.f || v > 1.f)
      return bad(names::kImages, fmt::format("expected values in [0, 1], found {} at flat index {}", v, i));
  }
  for (auto& f : d.factors) {
    std::string p = std::string(names::kFactors) + "/" + f.name;
    if (!std::regex_match(f.name, name_re())) return bad(p, "factor name must match [A-Za-z0-9_.-]+");
    if (f.values.size() != n) return bad(p, fmt::format("expected {} values, found {}", n, f.values.size()));
    static const std::set<std::string> roles = {"category", "identity", "pose", "position", "size", "other"};
    if (!roles.count(f.role)) return bad(p, "role must be one of category|identity|pose|position|size|other, found '" + f.role + "'");
    for (size_t i = 0; i < n; ++i) {
      float v = f.values[i];
      if (!std::isfinite(v)) return bad(p, fmt::format("non-finite value at index {}", i));
      if (f.kind == FactorKind::kCategorical &&
          (v < 0 || v >= static_cast<float>(f.classes.size()) || v != std::floor(v)))
        return bad(p, fmt::format("expected a class index in [0, {}), found {} at index {}", f.classes.size(), v, i));
    }
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (auto& s : d.sessions) {
    std::string p = session_path(s.animal, s.name);
    if (!std::regex_match(s.animal, name_re()) || !std::regex_match(s.name, name_re()))
      return bad(p, "animal and session names must match [A-Za-z0-9_.-]+");
    if (!seen.insert({s.animal, s.name}).second) return bad(p, "duplicate session");
    if (s.counts.rank() != 2) return bad(p + "/counts", fmt::format("expected rank 2 [P, M], found rank {}", s.counts.rank()));
    const size_t np = s.counts.dim(0), m = s.counts.dim(1);
    if (s.image_index.size() != np)
      return bad(p + "/image_index", fmt::format("expected {} entries (rows of counts), found {}", np, s.image_index.size()));
    if (s.neuron_ids.size() != m)
      return bad(p + "/neuron_ids", fmt::format("expected {} ids (columns of counts), found {}", m, s.neuron_ids.size()));
    if (std::set<std::string>(s.neuron_ids.begin(), s.neuron_ids.end()).size() != m)
      return bad(p + "/neuron_ids", "neuron ids must be unique within a session");
    for (size_t i = 0; i < np; ++i)
      if (s.image_index[i] < 0 || static_cast<size_t>(s.image_index[i]) >= n)
        return bad(p + "/image_index", fmt::format("expected indices in [0, {}), found {} at row {}", n, s.image_index[i], i));
    if (s.value_kind != "counts" && s.value_kind != "rates")
      return bad(p, "value_kind must be 'counts' or 'rates', found '" + s.value_kind + "'");
    for (size_t i = 0; i < s.counts.data.size(); ++i) {
      float v = s.counts.data[i];
      if (!std::isfinite(v)) return bad(p + "/counts", fmt::format("non-finite value at row {}, column {}", i / m, i % m));
      if (s.value_kind == "counts" && (v < 0 || v != std::floor(v)))
        return bad(p + "/counts", fmt::format("expected non-negative integer counts, found {} at row {}, column {}", v, i / m, i % m));
    }
  }
  if (d.truth) {
    const Truth& t = *d.truth;
    if (t.latents.rank() != 2 || t.latents.dim(0) != n)
      return bad("/truth/latents", fmt::format("expected [{}, D_true]", n));
    const size_t dt = t.latents.dim(1);
    if (t.group_of_dim.size() != dt) return bad("/truth/group_of_dim", fmt::format("expected {} entries", dt));
    if (t.group_factor.size() != t.group_names.size())
      return bad("/truth/group_factor", fmt::format("expected {} entries (one per group name)", t.group_names.size()));
    for (auto g : t.group_of_dim)
      if (g < 0 || static_cast<size_t>(g) >= t.group_names.size())
        return bad("/truth/group_of_dim", fmt::format("group index {} out of range [0, {})", g, t.group_names.size()));
    for (auto& [animal, at] : t.animals)
      if (at.loadings.rank() != 2 || at.loadings.dim(0) != at.neuron_ids.size() || at.loadings.dim(1) != dt)
        return bad("/truth/animals/" + animal + "/loadings", fmt::format("expected [{}, {}]", at.neuron_ids.size(), dt));
  }
  return Status::Ok();
}

Status write_dataset(const Dataset& d, const fs::path& path) {
  MIGVIS_RETURN_IF_ERROR(validate_dataset(d, path.string()));
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(path));
  h5::File& f = af->file();
  MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(".", "format", names::kFormat));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<int32_t>(".", "format_version", names::kFormatVersion));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(".", "source", d.source));
  MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(".", "description", d.description));
  h5::WriteOptions img_opts;
  img_opts.gzip_level = 4;
  img_opts.chunk = {1, d.images.dim(1), d.images.dim(2), d.images.dim(3)};
  MIGVIS_RETURN_IF_ERROR(f.write(names::kImages, d.images, img_opts));
  MIGVIS_RETURN_IF_ERROR(f.write_vector(names::kStimulusIds, d.stimulus_ids));
  MIGVIS_RETURN_IF_ERROR(f.require_group(names::kFactors).status());
  for (auto& fac : d.factors) {
    std::string p = std::string(names::kFactors) + "/" + fac.name;
    if (fac.kind == FactorKind::kCategorical) {
      std::vector<int32_t> v(fac.values.begin(), fac.values.end());
      MIGVIS_RETURN_IF_ERROR(f.write_vector(p, v));
      MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "kind", "categorical"));
      MIGVIS_RETURN_IF_ERROR(f.set_attr_vector<std::string>(p, "classes", fac.classes));
    } else {
      MIGVIS_RETURN_IF_ERROR(f.write_vector(p, fac.values));
      MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "kind", "continuous"));
      MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "units", fac.units));
    }
    MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "role", fac.role));
  }
  h5::WriteOptions counts_opts;
  counts_opts.gzip_level = 4;
  for (auto& s : d.sessions) {
    std::string p = session_path(s.animal, s.name);
    MIGVIS_RETURN_IF_ERROR(f.require_group(p).status());
    MIGVIS_RETURN_IF_ERROR(f.write(p + "/" + names::kCounts, s.counts, counts_opts));
    MIGVIS_RETURN_IF_ERROR(f.write_vector(p + "/" + names::kImageIndex, s.image_index));
    MIGVIS_RETURN_IF_ERROR(f.write_vector(p + "/" + names::kNeuronIds, s.neuron_ids));
    MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "value_kind", s.value_kind));
    MIGVIS_RETURN_IF_ERROR(f.set_attr<double>(p, "t_start_ms", s.t_start_ms));
    MIGVIS_RETURN_IF_ERROR(f.set_attr<double>(p, "t_stop_ms", s.t_stop_ms));
    MIGVIS_RETURN_IF_ERROR(f.set_attr<std::string>(p, "region", s.region));
  }
  if (d.truth) {
    const Truth& t = *d.truth;
    MIGVIS_RETURN_IF_ERROR(f.write("/truth/latents", t.latents));
    MIGVIS_RETURN_IF_ERROR(f.write_vector("/truth/group_names", t.group_names));
    MIGVIS_RETURN_IF_ERROR(f.write_vector("/truth/group_factor", t.group_factor));
    MIGVIS_RETURN_IF_ERROR(f.write_vector("/truth/group_of_dim", t.group_of_dim));
    for (auto& [animal, at] : t.animals) {
      std::string p = "/truth/animals/" + animal;
      MIGVIS_RETURN_IF_ERROR(f.write_vector(p + "/neuron_ids", at.neuron_ids));
      MIGVIS_RETURN_IF_ERROR(f.write(p + "/loadings", at.loadings));
    }
  }
  return af->commit();
}

Result<Dataset> read_dataset(const fs::path& path, const ReadOptions& opts) {
  MIGVIS_ASSIGN_OR_RETURN(h5::File f, h5::File::open(path));
  const std::string where = path.string();
  Dataset d;
  auto fmt_attr = f.attr<std::string>(".", "format");
  if (!fmt_attr.ok() || *fmt_attr != names::kFormat)
    return Status::InvalidArgument(where + ":/: expected root attribute format=\"" + names::kFormat +
                                   "\" (is this a migvis dataset? use `migvis data import` for other formats)");
  MIGVIS_ASSIGN_OR_RETURN(int32_t version, f.attr<int32_t>(".", "format_version"));
  if (version != names::kFormatVersion)
    return Status::InvalidArgument(fmt::format("{}:/: format_version {} is not supported (expected {})", where, version,
                                               names::kFormatVersion));
  if (f.has_attr(".", "source")) d.source = *f.attr<std::string>(".", "source");
  if (f.has_attr(".", "description")) d.description = *f.attr<std::string>(".", "description");
  MIGVIS_ASSIGN_OR_RETURN(d.stimulus_ids, f.read_vector<std::string>(names::kStimulusIds));
  if (opts.images) {
    MIGVIS_ASSIGN_OR_RETURN(d.images, f.read<float>(names::kImages));
  } else {
    MIGVIS_ASSIGN_OR_RETURN(auto shape, f.shape(names::kImages));
    d.images.shape = shape;
  }
  if (f.exists(names::kFactors)) {
    MIGVIS_ASSIGN_OR_RETURN(auto fg, f.open_group(names::kFactors));
    MIGVIS_ASSIGN_OR_RETURN(auto fnames, fg.children());
    for (auto& name : fnames) {
      Factor fac;
      fac.name = name;
      MIGVIS_ASSIGN_OR_RETURN(std::string kind, fg.attr<std::string>(name, "kind"));
      if (kind == "categorical") {
        fac.kind = FactorKind::kCategorical;
        MIGVIS_ASSIGN_OR_RETURN(auto v, fg.read_vector<int32_t>(name));
        fac.values.assign(v.begin(), v.end());
        MIGVIS_ASSIGN_OR_RETURN(fac.classes, fg.attr_vector<std::string>(name, "classes"));
      } else if (kind == "continuous") {
        fac.kind = FactorKind::kContinuous;
        MIGVIS_ASSIGN_OR_RETURN(fac.values, fg.read_vector<float>(name));
        if (fg.has_attr(name, "units")) fac.units = *fg.attr<std::string>(name, "units");
      } else {
        return Status::InvalidArgument(fg.where(name) + ": attribute kind must be 'categorical' or 'continuous', found '" + kind + "'");
      }
      if (fg.has_attr(name, "role")) fac.role = *fg.attr<std::string>(name, "role");
      d.factors.push_back(std::move(fac));
    }
  }
  if (f.exists(names::kAnimals)) {
    MIGVIS_ASSIGN_OR_RETURN(auto ag, f.open_group(names::kAnimals));
    MIGVIS_ASSIGN_OR_RETURN(auto animals, ag.children());
    for (auto& animal : animals) {
      std::string sp = animal + "/" + names::kSessions;
      MIGVIS_ASSIGN_OR_RETURN(auto sg, ag.open_group(sp));
      MIGVIS_ASSIGN_OR_RETURN(auto snames, sg.children());
      for (auto& sname : snames) {
        Session s;
        s.animal = animal;
        s.name = sname;
        MIGVIS_ASSIGN_OR_RETURN(auto g, sg.open_group(sname));
        if (opts.sessions) {
          MIGVIS_ASSIGN_OR_RETURN(s.counts, g.read<float>(names::kCounts));
        } else {
          MIGVIS_ASSIGN_OR_RETURN(s.counts.shape, g.shape(names::kCounts));
        }
        MIGVIS_ASSIGN_OR_RETURN(s.image_index, g.read_vector<int32_t>(names::kImageIndex));
        MIGVIS_ASSIGN_OR_RETURN(s.neuron_ids, g.read_vector<std::string>(names::kNeuronIds));
        if (g.has_attr(".", "value_kind")) s.value_kind = *g.attr<std::string>(".", "value_kind");
        if (g.has_attr(".", "t_start_ms")) s.t_start_ms = *g.attr<double>(".", "t_start_ms");
        if (g.has_attr(".", "t_stop_ms")) s.t_stop_ms = *g.attr<double>(".", "t_stop_ms");
        if (g.has_attr(".", "region")) s.region = *g.attr<std::string>(".", "region");
        d.sessions.push_back(std::move(s));
      }
    }
  }
  if (f.exists(names::kTruth)) {
    Truth t;
    MIGVIS_ASSIGN_OR_RETURN(t.latents, f.read<float>("/truth/latents"));
    MIGVIS_ASSIGN_OR_RETURN(t.group_names, f.read_vector<std::string>("/truth/group_names"));
    MIGVIS_ASSIGN_OR_RETURN(t.group_factor, f.read_vector<std::string>("/truth/group_factor"));
    MIGVIS_ASSIGN_OR_RETURN(t.group_of_dim, f.read_vector<int32_t>("/truth/group_of_dim"));
    if (f.exists("/truth/animals")) {
      MIGVIS_ASSIGN_OR_RETURN(auto tg, f.open_group("/truth/animals"));
      MIGVIS_ASSIGN_OR_RETURN(auto tan, tg.children());
      for (auto& a : tan) {
        Truth::AnimalTruth at;
        MIGVIS_ASSIGN_OR_RETURN(at.neuron_ids, tg.read_vector<std::string>(a + "/neuron_ids"));
        MIGVIS_ASSIGN_OR_RETURN(at.loadings, tg.read<float>(a + "/loadings"));
        t.animals[a] = std::move(at);
      }
    }
    d.truth = std::move(t);
  }
  // Validated however much was loaded: shapes, ids, factors and indices always;
  // pixel and count values only when they were read (their loops see empty data).
  MIGVIS_RETURN_IF_ERROR(validate_dataset(d, where));
  return d;
}

AveragedSession average_repeats(const Session& s) {
  AveragedSession out;
  const size_t m = s.num_neurons();
  std::map<int32_t, std::vector<size_t>> rows;
  for (size_t p = 0; p < s.image_index.size(); ++p) rows[s.image_index[p]].push_back(p);
  out.mean = h5::Array<float>({static_cast<hsize_t>(rows.size()), static_cast<hsize_t>(m)});
  size_t r = 0;
  for (auto& [img, ps] : rows) {
    out.image_index.push_back(img);
    out.repeats.push_back(static_cast<int32_t>(ps.size()));
    float* dst = out.mean.data.data() + r * m;
    for (size_t p : ps) {
      const float* src = s.counts.data.data() + p * m;
      for (size_t j = 0; j < m; ++j) dst[j] += src[j];
    }
    for (size_t j = 0; j < m; ++j) dst[j] /= static_cast<float>(ps.size());
    ++r;
  }
  return out;
}

}  // namespace migvis::data
