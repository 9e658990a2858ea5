// NWB 2 (units + stimulus presentation intervals + images) -> migvis dataset.
// See schemas/import.md for the mapping.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "orchestrator/data/import.h"
#include "orchestrator/data/import_util.h"

namespace migvis::data {
namespace {

using detail::Column;

Result<std::string> pick_child(const h5::File& f, const std::string& group, const std::string& wanted,
                               const std::string& preferred, const char* option) {
  const std::string file = f.file_name();
  if (!f.is_group(group)) return Status::InvalidArgument(fmt::format("{}:{}: missing group", file, group));
  MIGVIS_ASSIGN_OR_RETURN(auto g, f.open_group(group));
  MIGVIS_ASSIGN_OR_RETURN(auto kids, g.children());
  if (!wanted.empty()) {
    if (std::find(kids.begin(), kids.end(), wanted) == kids.end())
      return Status::InvalidArgument(fmt::format("{}:{}/{}: not found (children: {})", file, group, wanted, fmt::join(kids, ", ")));
    return wanted;
  }
  if (kids.size() == 1) return kids[0];
  if (!preferred.empty() && std::find(kids.begin(), kids.end(), preferred) != kids.end()) return preferred;
  return Status::InvalidArgument(fmt::format("{}:{}: expected one child, found {} ({}); choose with {}", file, group,
                                             kids.size(), fmt::join(kids, ", "), option));
}

struct Images {
  std::vector<std::string> ids;
  h5::Array<float> data;  // [N, 1, H, W]
};

// [N, H, W] or [N, H, W, C] stack, or an NWB Images group of [H, W] / [H, W, C] datasets.
Result<Images> read_images(const h5::File& f, const ImportOptions& o) {
  const std::string file = f.file_name();
  std::string base;
  for (const char* g : {"/stimulus/presentation", "/stimulus/templates"}) {
    if (!f.is_group(g)) continue;
    MIGVIS_ASSIGN_OR_RETURN(auto gg, f.open_group(g));
    MIGVIS_ASSIGN_OR_RETURN(auto kids, gg.children());
    if (kids.empty()) continue;
    if (!o.stimulus.empty() && std::find(kids.begin(), kids.end(), o.stimulus) == kids.end()) continue;
    MIGVIS_ASSIGN_OR_RETURN(std::string name, pick_child(f, g, o.stimulus, "", "--stimulus"));
    base = std::string(g) + "/" + name;
    break;
  }
  if (base.empty())
    return Status::InvalidArgument(fmt::format("{}:/stimulus/presentation: no stimulus images{} (expected "
                                               "/stimulus/presentation/<name>/data or /stimulus/templates/<name>)",
                                               file, o.stimulus.empty() ? "" : " named " + o.stimulus));
  Images im;
  auto to01 = [](std::vector<float>& v) {
    float mx = v.empty() ? 0.f : *std::max_element(v.begin(), v.end());
    if (mx > 1.f) for (auto& x : v) x /= 255.f;  // 8-bit pixel values
    for (auto& x : v) x = std::clamp(x, 0.f, 1.f);
  };
  const std::string stack = f.is_dataset(base + "/data") ? base + "/data" : (f.is_dataset(base) ? base : "");
  if (!stack.empty()) {
    MIGVIS_ASSIGN_OR_RETURN(auto a, f.read<float>(stack));
    if (a.rank() != 3 && !(a.rank() == 4 && (a.dim(3) == 1 || a.dim(3) == 3)))
      return Status::InvalidArgument(fmt::format("{}:{}: expected images [N, H, W] or [N, H, W, 3], found rank {}", file,
                                                 stack, a.rank()));
    const size_t n = a.dim(0), h = a.dim(1), w = a.dim(2), c = a.rank() == 4 ? a.dim(3) : 1;
    im.data = h5::Array<float>({n, 1, h, w});
    for (size_t i = 0; i < n; ++i)
      for (size_t p = 0; p < h * w; ++p) {
        const float* px = a.data.data() + (i * h * w + p) * c;
        im.data.data[i * h * w + p] = c == 3 ? 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2] : px[0];
      }
    to01(im.data.data);
    const std::string name = base.substr(base.find_last_of('/') + 1);
    for (size_t i = 0; i < n; ++i) im.ids.push_back(fmt::format("{}_{}", sanitize_name(name), i));
    return im;
  }
  MIGVIS_ASSIGN_OR_RETURN(auto g, f.open_group(base));
  MIGVIS_ASSIGN_OR_RETURN(auto kids, g.children());
  size_t h = 0, w = 0;
  std::vector<float> pixels;
  for (auto& k : kids) {
    if (!g.is_dataset(k)) continue;
    MIGVIS_ASSIGN_OR_RETURN(auto a, g.read<float>(k));
    if (a.rank() != 2 && !(a.rank() == 3 && (a.dim(2) == 1 || a.dim(2) == 3)))
      return Status::InvalidArgument(fmt::format("{}: expected an image [H, W] or [H, W, 3], found rank {}", g.where(k), a.rank()));
    if (im.ids.empty()) { h = a.dim(0); w = a.dim(1); }
    if (a.dim(0) != h || a.dim(1) != w)
      return Status::InvalidArgument(fmt::format("{}: expected {} x {} like the first image, found {} x {}", g.where(k), h, w,
                                                 a.dim(0), a.dim(1)));
    const size_t c = a.rank() == 3 ? a.dim(2) : 1;
    for (size_t p = 0; p < h * w; ++p) {
      const float* px = a.data.data() + p * c;
      pixels.push_back(c == 3 ? 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2] : px[0]);
    }
    im.ids.push_back(k);
  }
  if (im.ids.empty()) return Status::InvalidArgument(fmt::format("{}:{}: no image datasets", file, base));
  to01(pixels);
  im.data = h5::Array<float>({im.ids.size(), 1, h, w}, std::move(pixels));
  return im;
}

}  // namespace

Result<Dataset> import_nwb(const ImportOptions& o) {
  const std::string file = o.input.string();
  MIGVIS_ASSIGN_OR_RETURN(h5::File f, h5::File::open(o.input));
  if (o.t_stop_ms <= o.t_start_ms)
    return Status::InvalidArgument(fmt::format("nwb import: --t-stop-ms ({}) must exceed --t-start-ms ({})", o.t_stop_ms,
                                               o.t_start_ms));
  // Units: ragged spike times.
  for (const char* p : {"/units/spike_times", "/units/spike_times_index"})
    if (!f.is_dataset(p))
      return Status::InvalidArgument(fmt::format("{}:{}: missing (expected the NWB units table's ragged spike times)", file, p));
  MIGVIS_ASSIGN_OR_RETURN(auto st_shape, f.shape("/units/spike_times"));
  MIGVIS_ASSIGN_OR_RETURN(auto idx_shape, f.shape("/units/spike_times_index"));
  if (st_shape.size() != 1 || idx_shape.size() != 1)
    return Status::InvalidArgument(fmt::format("{}:/units/spike_times{}: expected rank 1, found rank {}", file,
                                               st_shape.size() != 1 ? "" : "_index",
                                               st_shape.size() != 1 ? st_shape.size() : idx_shape.size()));
  MIGVIS_ASSIGN_OR_RETURN(auto spikes, f.read_vector<double>("/units/spike_times"));
  MIGVIS_ASSIGN_OR_RETURN(auto index, f.read_vector<int64_t>("/units/spike_times_index"));
  const size_t nu = index.size();
  for (size_t u = 0; u < nu; ++u) {
    int64_t lo = u == 0 ? 0 : index[u - 1];
    if (index[u] < lo || index[u] > static_cast<int64_t>(spikes.size()))
      return Status::InvalidArgument(fmt::format(
          "{}:/units/spike_times_index: entry {} = {} out of range (expected non-decreasing, within [{}, {}] = spike_times length)",
          file, u, index[u], lo, spikes.size()));
  }
  std::vector<std::string> unit_ids;
  if (f.is_dataset("/units/id")) {
    MIGVIS_ASSIGN_OR_RETURN(Column c, detail::read_column(f, "/units/id", "units"));
    if (c.size() != nu)
      return Status::InvalidArgument(fmt::format("{}:/units/id: expected {} ids (one per unit in spike_times_index), found {}",
                                                 file, nu, c.size()));
    for (size_t u = 0; u < nu; ++u) unit_ids.push_back(c.text(u));
  } else {
    for (size_t u = 0; u < nu; ++u) unit_ids.push_back(fmt::format("{}", u));
  }
  std::vector<std::vector<double>> unit_spikes(nu);
  for (size_t u = 0; u < nu; ++u) {
    unit_spikes[u].assign(spikes.begin() + (u == 0 ? 0 : index[u - 1]), spikes.begin() + index[u]);
    std::sort(unit_spikes[u].begin(), unit_spikes[u].end());
  }

  // Presentations.
  MIGVIS_ASSIGN_OR_RETURN(std::string table, pick_child(f, "/intervals", o.intervals, "presentations", "--intervals"));
  const std::string tp = "/intervals/" + table;
  if (!f.is_dataset(tp + "/start_time"))
    return Status::InvalidArgument(fmt::format("{}:{}/start_time: missing (expected a TimeIntervals table)", file, tp));
  MIGVIS_ASSIGN_OR_RETURN(Column start, detail::read_column(f, tp + "/start_time", "presentations"));
  if (start.is_string)
    return Status::InvalidArgument(fmt::format("{}:{}/start_time: expected numbers (seconds), found strings", file, tp));
  const size_t np = start.size();
  MIGVIS_ASSIGN_OR_RETURN(auto tg, f.open_group(tp));
  MIGVIS_ASSIGN_OR_RETURN(auto colnames, tg.children());
  std::string stim_col = o.stimulus_column;
  if (stim_col.empty())
    for (const char* c : {"image_index", "stimulus_index", "image_id", "stimulus_id", "frame", "image", "stimulus"})
      if (std::find(colnames.begin(), colnames.end(), c) != colnames.end()) { stim_col = c; break; }
  if (stim_col.empty() || !tg.is_dataset(stim_col))
    return Status::InvalidArgument(fmt::format("{}:{}: no column naming the image shown{} (columns: {}); pass --stimulus-column",
                                               file, tp, stim_col.empty() ? "" : " ('" + stim_col + "' not found)",
                                               fmt::join(colnames, ", ")));
  MIGVIS_ASSIGN_OR_RETURN(Column stim, detail::read_column(f, tp + "/" + stim_col, "presentations"));
  if (stim.size() != np)
    return Status::InvalidArgument(fmt::format("{}:{}/{}: expected {} entries (as start_time), found {}", file, tp, stim_col,
                                               np, stim.size()));

  MIGVIS_ASSIGN_OR_RETURN(Images im, read_images(f, o));
  const size_t n_img = im.ids.size();
  std::map<std::string, int32_t> by_id;
  for (size_t i = 0; i < n_img; ++i) by_id[im.ids[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> image_index(np);
  for (size_t p = 0; p < np; ++p) {
    if (stim.is_string) {
      auto it = by_id.find(stim.s[p]);
      if (it == by_id.end())
        return Status::InvalidArgument(fmt::format("{}:{}/{}: presentation {} shows '{}', which is not an image in /stimulus",
                                                   file, tp, stim_col, p, stim.s[p]));
      image_index[p] = it->second;
    } else {
      double v = stim.d[p];
      if (!(v >= 0 && v < static_cast<double>(n_img)) || v != std::floor(v))
        return Status::InvalidArgument(fmt::format("{}:{}/{}: presentation {} shows image {}, expected an index in [0, {})",
                                                   file, tp, stim_col, p, v, n_img));
      image_index[p] = static_cast<int32_t>(v);
    }
  }

  Dataset d;
  d.source = "import:nwb:" + file;
  d.images = std::move(im.data);
  d.stimulus_ids = im.ids;
  std::vector<int64_t> first(n_img, -1);
  for (size_t p = 0; p < np; ++p)
    if (first[image_index[p]] < 0) first[image_index[p]] = static_cast<int64_t>(p);
  std::vector<Column> cols;
  for (auto& c : colnames) {
    if (c == "start_time" || c == "stop_time" || c == "id" || c == stim_col || c == "tags" || c == "timeseries" ||
        (c.size() > 6 && c.compare(c.size() - 6, 6, "_index") == 0) || !tg.is_dataset(c))
      continue;
    auto col = detail::read_column(f, tp + "/" + c, "presentations");
    if (!col.ok() || col->size() != np) continue;  // compound/ragged columns are not factors
    cols.push_back(std::move(*col));
  }
  d.factors = detail::factors_from_columns(cols, first);

  Session s;
  std::string animal = o.animal;
  if (animal.empty() && f.is_dataset("/general/subject/subject_id")) {
    auto v = f.read_vector<std::string>("/general/subject/subject_id");
    if (v.ok() && !v->empty()) animal = (*v)[0];
  }
  std::string session = o.session;
  for (const char* p : {"/session_description", "/identifier"}) {
    if (!session.empty()) break;
    if (!f.is_dataset(p)) continue;
    auto v = f.read_vector<std::string>(p);
    if (v.ok() && !v->empty()) session = (*v)[0];
  }
  s.animal = sanitize_name(animal.empty() ? "a1" : animal);
  s.name = sanitize_name(session.empty() ? "s1" : session);
  s.value_kind = "counts";
  s.t_start_ms = o.t_start_ms;
  s.t_stop_ms = o.t_stop_ms;
  s.region = o.region.empty() ? "IT" : o.region;
  s.image_index = image_index;
  s.neuron_ids = unit_ids;
  s.counts = h5::Array<float>({np, nu});
  for (size_t p = 0; p < np; ++p) {
    const double lo = start.d[p] + o.t_start_ms / 1000.0, hi = start.d[p] + o.t_stop_ms / 1000.0;
    for (size_t u = 0; u < nu; ++u) {
      auto& sp = unit_spikes[u];
      s.counts.data[p * nu + u] = static_cast<float>(std::lower_bound(sp.begin(), sp.end(), hi) -
                                                     std::lower_bound(sp.begin(), sp.end(), lo));
    }
  }
  d.description = fmt::format("NWB {}: units x {} presentations of /intervals/{} binned [{}, {}) ms after start_time",
                              file, np, table, o.t_start_ms, o.t_stop_ms);
  d.sessions.push_back(std::move(s));
  MIGVIS_RETURN_IF_ERROR(validate_dataset(d, file));
  return d;
}

}  // namespace migvis::data
