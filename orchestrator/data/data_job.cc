#include "orchestrator/data/data_job.h"

#include <algorithm>

#include <fmt/format.h>

#include "orchestrator/data/import.h"
#include "orchestrator/data/synth.h"
#include "results/dataset_io.h"
#include "results/png.h"
#include "schemas/job_lifecycle.h"
#include "schemas/job_spec.h"

namespace migvis::data {
namespace {

const std::vector<std::string> kSynthKeys = {"preset",          "seed",        "image_size",  "categories",
                                             "objects_per_category", "poses_per_object", "animals",
                                             "sessions_per_animal",  "min_neurons", "max_neurons", "repeats",
                                             "families", "background_min", "background_max", "background_texture",
                                             "pixel_noise"};

Result<SynthOptions> synth_options_from(const schema::Params& p, uint64_t job_seed) {
  SynthOptions o;
  MIGVIS_ASSIGN_OR_RETURN(o.preset, p.get_string("preset", "default"));
  MIGVIS_ASSIGN_OR_RETURN(int64_t seed, p.get_int("seed", static_cast<int64_t>(job_seed)));
  if (seed < 0) return Status::InvalidArgument(fmt::format("job.yaml: params.seed: expected >= 0, got {}", seed));
  o.seed = static_cast<uint64_t>(seed);
  struct IntKey { const char* key; int* dst; };
  for (auto [key, dst] : {IntKey{"image_size", &o.image_size_px}, IntKey{"categories", &o.categories},
                          IntKey{"objects_per_category", &o.objects_per_category},
                          IntKey{"poses_per_object", &o.poses_per_object}, IntKey{"animals", &o.animals},
                          IntKey{"sessions_per_animal", &o.sessions_per_animal},
                          IntKey{"min_neurons", &o.min_neurons}, IntKey{"max_neurons", &o.max_neurons},
                          IntKey{"repeats", &o.repeats}}) {
    MIGVIS_ASSIGN_OR_RETURN(int64_t v, p.get_int(key, 0));
    *dst = static_cast<int>(v);
  }
  MIGVIS_ASSIGN_OR_RETURN(o.families, p.get_strings("families", {}));
  struct DoubleKey { const char* key; double* dst; };
  for (auto [key, dst] : {DoubleKey{"background_min", &o.background_min}, DoubleKey{"background_max", &o.background_max},
                          DoubleKey{"background_texture", &o.background_texture},
                          DoubleKey{"pixel_noise", &o.pixel_noise}}) {
    MIGVIS_ASSIGN_OR_RETURN(*dst, p.get_double(key, -1));
  }
  MIGVIS_RETURN_IF_ERROR(resolve_synth_options(o).status().with_context("job.yaml: params"));
  return o;
}

const std::vector<std::string> kImportKeys = {"format",    "path",      "stimuli",    "images",     "variable",
                                              "region",    "time_bin",  "image_size", "t_start_ms", "t_stop_ms",
                                              "intervals", "stimulus",  "stimulus_column", "animal", "session"};

Result<Dataset> import_from(const schema::JobSpec& spec, const schema::Params& p, const fs::path& dir) {
  const std::string where = (dir / schema::kJobFile).string();
  for (auto& k : spec.params)
    if (k.first.as<std::string>() != "import")
      return Status::InvalidArgument(fmt::format("{}: params.{}: not allowed together with params.import", where,
                                                 k.first.as<std::string>()));
  const YAML::Node imp = spec.params["import"];
  if (!imp.IsMap()) return Status::InvalidArgument(where + ": params.import: expected a mapping {format, path, ...}");
  for (auto it : imp) {
    const std::string key = it.first.as<std::string>();
    if (std::find(kImportKeys.begin(), kImportKeys.end(), key) == kImportKeys.end())
      return Status::InvalidArgument(fmt::format("{}: params.import.{}: unknown key (expected one of: {})", where, key,
                                                 fmt::join(kImportKeys, ", ")));
  }
  auto path_of = [&](const std::string& s) { return s.empty() ? fs::path() : (fs::path(s).is_absolute() ? fs::path(s) : dir / s); };
  ImportOptions o;
  MIGVIS_ASSIGN_OR_RETURN(o.format, p.get_string("import.format", ""));
  MIGVIS_ASSIGN_OR_RETURN(std::string in, p.get_string("import.path", ""));
  if (o.format.empty() || in.empty())
    return Status::InvalidArgument(where + ": params.import: needs format (brainscore|nwb|hdf5) and path");
  o.input = path_of(in);
  if (!fs::exists(o.input)) return Status::NotFound(fmt::format("{}: params.import.path: {}: no such file", where, o.input.string()));
  MIGVIS_ASSIGN_OR_RETURN(std::string stim, p.get_string("import.stimuli", ""));
  MIGVIS_ASSIGN_OR_RETURN(std::string imgs, p.get_string("import.images", ""));
  o.stimuli_csv = path_of(stim);
  o.images_dir = path_of(imgs);
  MIGVIS_ASSIGN_OR_RETURN(o.variable, p.get_string("import.variable", ""));
  MIGVIS_ASSIGN_OR_RETURN(o.region, p.get_string("import.region", o.region));
  MIGVIS_ASSIGN_OR_RETURN(int64_t tb, p.get_int("import.time_bin", -1));
  MIGVIS_ASSIGN_OR_RETURN(int64_t sz, p.get_int("import.image_size", 0));
  o.time_bin = static_cast<int>(tb);
  o.image_size_px = static_cast<int>(sz);
  MIGVIS_ASSIGN_OR_RETURN(o.t_start_ms, p.get_double("import.t_start_ms", o.t_start_ms));
  MIGVIS_ASSIGN_OR_RETURN(o.t_stop_ms, p.get_double("import.t_stop_ms", o.t_stop_ms));
  MIGVIS_ASSIGN_OR_RETURN(o.intervals, p.get_string("import.intervals", ""));
  MIGVIS_ASSIGN_OR_RETURN(o.stimulus, p.get_string("import.stimulus", ""));
  MIGVIS_ASSIGN_OR_RETURN(o.stimulus_column, p.get_string("import.stimulus_column", ""));
  MIGVIS_ASSIGN_OR_RETURN(o.animal, p.get_string("import.animal", ""));
  MIGVIS_ASSIGN_OR_RETURN(o.session, p.get_string("import.session", ""));
  return import_dataset(o);
}

Result<Dataset> make_dataset(const schema::JobSpec& spec, const fs::path& dir) {
  schema::Params p(spec.params, (dir / schema::kJobFile).string());
  std::vector<std::string> known = kSynthKeys;
  known.push_back("import");
  MIGVIS_RETURN_IF_ERROR(p.check_known(known));
  if (p.has("import")) return import_from(spec, p, dir);
  MIGVIS_ASSIGN_OR_RETURN(SynthOptions o, synth_options_from(p, spec.seed));
  return synthesize(o);
}

void fill_metrics(const Dataset& d, schema::JobResult* r) {
  size_t neurons = 0, presentations = 0;
  for (auto& s : d.sessions) {
    neurons += s.num_neurons();
    presentations += s.num_presentations();
  }
  r->metrics["num_images"] = static_cast<double>(d.num_images());
  r->metrics["num_animals"] = static_cast<double>(d.animals().size());
  r->metrics["num_sessions"] = static_cast<double>(d.sessions.size());
  r->metrics["num_neurons_total"] = static_cast<double>(neurons);
  r->metrics["num_presentations"] = static_cast<double>(presentations);
  r->metrics["image_size_px"] = d.images.rank() == 4 ? static_cast<double>(d.images.dim(3)) : 0.0;
}

// A preview grid of (up to) 64 stimuli spread evenly over the dataset.
Status write_preview(const Dataset& d, const fs::path& path) {
  if (d.images.rank() != 4 || d.images.dim(0) == 0) return Status::Ok();
  const hsize_t total = d.images.dim(0), n = std::min<hsize_t>(64, total);
  const size_t per = d.images.numel() / total;
  h5::Array<float> first({n, d.images.dim(1), d.images.dim(2), d.images.dim(3)});
  for (hsize_t i = 0; i < n; ++i) {
    const size_t src = static_cast<size_t>(i * total / n);
    std::copy_n(d.images.data.begin() + src * per, per, first.data.begin() + i * per);
  }
  const int cols = 8, rows = static_cast<int>((n + cols - 1) / cols);
  const int scale = d.images.dim(3) < 64 ? 2 : 1;
  return png::write_png_grid(path, first, rows, cols, 2, scale);
}

}  // namespace

Status run_data_job(const fs::path& dir_in, const std::map<std::string, std::string>& versions) {
  const fs::path dir = fs::absolute(dir_in);
  MIGVIS_ASSIGN_OR_RETURN(schema::JobSpec spec, schema::read_job_spec(dir));
  schema::JobResult result;
  result.job_id = spec.job_id;
  result.stage = spec.stage;
  result.versions = versions;
  result.layout = {{"threads", "1"}, {"ranks", "1"}, {"device", "cpu"}};
  schema::JobRunOptions opts;
  opts.keep_metrics_on_failure = false;
  const schema::JobRunOutcome out = schema::run_job_lifecycle(dir, result, opts, [&](schema::JobResult& r) -> Status {
    if (spec.stage != "data")
      return Status::InvalidArgument(fmt::format(
          "{}: stage: expected 'data' (migvis data run-job runs only data jobs), got '{}'",
          (dir / schema::kJobFile).string(), spec.stage));
    MIGVIS_ASSIGN_OR_RETURN(Dataset d, make_dataset(spec, dir));
    MIGVIS_RETURN_IF_ERROR(write_dataset(d, dir / kDatasetFile));
    MIGVIS_RETURN_IF_ERROR(write_preview(d, dir / kStimuliGridFile));
    fill_metrics(d, &r);
    r.artifacts.push_back({"dataset", kDatasetFile, ""});
    r.artifacts.push_back({"grid", kStimuliGridFile, ""});
    return Status::Ok();
  });
  MIGVIS_RETURN_IF_ERROR(out.write_status);
  return out.status;
}

}  // namespace migvis::data
