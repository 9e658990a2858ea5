#include "orchestrator/data/data_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "orchestrator/data/synth.h"
#include "results/dataset_io.h"
#include "results/png.h"
#include "schemas/job_spec.h"

namespace migvis::data {
namespace {

const std::vector<std::string> kSynthKeys = {"preset",          "seed",        "image_size",  "categories",
                                             "objects_per_category", "poses_per_object", "animals",
                                             "sessions_per_animal",  "min_neurons", "max_neurons", "repeats"};

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
  MIGVIS_RETURN_IF_ERROR(resolve_synth_options(o).status().with_context("job.yaml: params"));
  return o;
}

Result<Dataset> make_dataset(const schema::JobSpec& spec, const fs::path& dir) {
  schema::Params p(spec.params, (dir / schema::kJobFile).string());
  std::vector<std::string> known = kSynthKeys;
  known.push_back("import");
  MIGVIS_RETURN_IF_ERROR(p.check_known(known));
  if (p.has("import")) {
    return Status::InvalidArgument((dir / schema::kJobFile).string() +
                                   ": params.import: importing is not available in this build yet");
  }
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

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

Status run_data_job(const fs::path& dir_in, const std::map<std::string, std::string>& versions) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = fs::absolute(dir_in);
  schema::JobResult result;
  result.started_at = schema::utc_now_iso8601();
  result.host = hostname();
  result.versions = versions;
  result.layout = {{"threads", "1"}, {"ranks", "1"}, {"device", "cpu"}};
  MIGVIS_ASSIGN_OR_RETURN(schema::JobSpec spec, schema::read_job_spec(dir));
  result.job_id = spec.job_id;
  result.stage = spec.stage;

  Status st;
  if (spec.stage != "data") {
    st = Status::InvalidArgument(fmt::format("{}: stage: expected 'data' (migvis data run-job runs only data jobs), got '{}'",
                                             (dir / schema::kJobFile).string(), spec.stage));
  } else {
    auto d = make_dataset(spec, dir);
    st = d.status();
    if (d.ok()) {
      st = write_dataset(*d, dir / kDatasetFile);
      if (st.ok()) st = write_preview(*d, dir / kStimuliGridFile);
      if (st.ok()) {
        fill_metrics(*d, &result);
        result.artifacts.push_back({"dataset", kDatasetFile, ""});
        result.artifacts.push_back({"grid", kStimuliGridFile, ""});
      }
    }
  }
  if (st.code() == StatusCode::kCancelled || st.code() == StatusCode::kUnavailable) return st;
  result.finished_at = schema::utc_now_iso8601();
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.status = st.ok() ? "ok" : "failed";
  result.error = st.ok() ? "" : st.to_string();
  result.exit_code = exit_code_for(st);
  if (!st.ok()) result.metrics.clear();
  MIGVIS_RETURN_IF_ERROR(schema::write_job_result(result, dir));
  return st;
}

}  // namespace migvis::data
