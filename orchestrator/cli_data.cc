// migvis data ...: dataset commands (schemas/dataset.md).
#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "migvis_build_info.h"
#include "orchestrator/cli.h"
#include "orchestrator/data/data_job.h"
#include "orchestrator/data/import.h"
#include "orchestrator/data/synth.h"
#include "results/dataset_io.h"

namespace migvis::orch {
namespace {

// Largest-norm true group of each neuron's loadings: how the planted
// population divides among the groups.
std::vector<int> primary_group_counts(const data::Truth& t, const data::Truth::AnimalTruth& at) {
  const size_t dt = t.latents.dim(1), g = t.group_names.size();
  std::vector<int> counts(g, 0);
  for (size_t m = 0; m < at.neuron_ids.size(); ++m) {
    std::vector<double> norm(g, 0);
    for (size_t j = 0; j < dt; ++j) {
      double v = at.loadings.data[m * dt + j];
      norm[static_cast<size_t>(t.group_of_dim[j])] += v * v;
    }
    counts[std::max_element(norm.begin(), norm.end()) - norm.begin()]++;
  }
  return counts;
}

Status inspect(const std::string& path) {
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset d, data::read_dataset(path));
  fmt::print("dataset  {}\n", path);
  fmt::print("source   {}\n", d.source);
  if (!d.description.empty()) fmt::print("about    {}\n", d.description);
  fmt::print("images   {} x {} x {} x {} (N x C x H x W)\n", d.images.dim(0), d.images.dim(1), d.images.dim(2),
             d.images.dim(3));
  fmt::print("factors  {}\n", d.factors.size());
  for (auto& f : d.factors) {
    if (f.kind == data::FactorKind::kCategorical) {
      std::vector<std::string> head(f.classes.begin(), f.classes.begin() + std::min<size_t>(4, f.classes.size()));
      fmt::print("  {:<14} categorical ({} classes: {}{})  role={}\n", f.name, f.classes.size(), fmt::join(head, ", "),
                 f.classes.size() > 4 ? ", ..." : "", f.role);
    } else {
      auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
      fmt::print("  {:<14} continuous [{}] {:.3g}..{:.3g}  role={}\n", f.name, f.units,
                 f.values.empty() ? 0.f : *lo, f.values.empty() ? 0.f : *hi, f.role);
    }
  }
  fmt::print("animals  {}\n", d.animals().size());
  for (auto& a : d.animals()) {
    fmt::print("  {}\n", a);
    std::map<std::string, int> sessions_of_neuron;
    for (auto& s : d.sessions)
      if (s.animal == a)
        for (auto& id : s.neuron_ids) sessions_of_neuron[id]++;
    for (auto& s : d.sessions) {
      if (s.animal != a) continue;
      auto avg = data::average_repeats(s);
      int rmin = avg.repeats.empty() ? 0 : *std::min_element(avg.repeats.begin(), avg.repeats.end());
      int rmax = avg.repeats.empty() ? 0 : *std::max_element(avg.repeats.begin(), avg.repeats.end());
      double sum = 0;
      size_t zeros = 0;
      for (float v : s.counts.data) {
        sum += v;
        zeros += v == 0.f;
      }
      const double n = std::max<double>(1, static_cast<double>(s.counts.data.size()));
      int shared = 0;
      for (auto& id : s.neuron_ids) shared += sessions_of_neuron[id] > 1;
      fmt::print("    {:<8} {:>5} neurons ({} shared)  {:>6} presentations  {:>5} images x {}{} repeats  {} {}-{} ms "
                 "{}  mean {:.3g}, zeros {:.0f}%\n",
                 s.name, s.num_neurons(), shared, s.num_presentations(), avg.image_index.size(), rmin,
                 rmax != rmin ? fmt::format("-{}", rmax) : "", s.value_kind, s.t_start_ms, s.t_stop_ms, s.region,
                 sum / n, 100.0 * static_cast<double>(zeros) / n);
    }
  }
  if (d.truth) {
    const data::Truth& t = *d.truth;
    fmt::print("truth    {} latent dims in {} groups\n", t.latents.dim(1), t.group_names.size());
    for (size_t g = 0; g < t.group_names.size(); ++g) {
      int dims = static_cast<int>(std::count(t.group_of_dim.begin(), t.group_of_dim.end(), static_cast<int32_t>(g)));
      fmt::print("  group {} {:<10} encodes {:<10} {} dims\n", g + 1, t.group_names[g], t.group_factor[g], dims);
    }
    for (auto& [animal, at] : t.animals) {
      auto counts = primary_group_counts(t, at);
      std::vector<std::string> parts;
      for (size_t g = 0; g < counts.size(); ++g) parts.push_back(fmt::format("{} {}", t.group_names[g], counts[g]));
      fmt::print("  {} population {} neurons, by strongest group: {}\n", animal, at.neuron_ids.size(), fmt::join(parts, ", "));
    }
  }
  fmt::print("valid    yes (schema migvis-dataset/1)\n");
  return Status::Ok();
}

Status synth(const data::SynthOptions& o, const std::string& out) {
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset d, data::synthesize(o));
  MIGVIS_RETURN_IF_ERROR(data::write_dataset(d, out));
  size_t neurons = 0;
  for (auto& s : d.sessions) neurons += s.num_neurons();
  fmt::print("wrote {}: {} images {}x{}, {} animals, {} sessions, {} neuron recordings ({})\n", out, d.num_images(),
             d.images.dim(2), d.images.dim(3), d.animals().size(), d.sessions.size(), neurons, d.source);
  return Status::Ok();
}

Status import_file(const data::ImportOptions& o, const std::string& out) {
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset d, data::import_dataset(o));
  MIGVIS_RETURN_IF_ERROR(data::write_dataset(d, out));
  size_t neurons = 0;
  for (auto& s : d.sessions) neurons += s.num_neurons();
  fmt::print("wrote {}: {} images, {} factors, {} animals, {} sessions, {} neurons ({})\n", out, d.num_images(),
             d.factors.size(), d.animals().size(), d.sessions.size(), neurons, d.source);
  return Status::Ok();
}

Status run_job(const std::string& dir) {
  std::map<std::string, std::string> versions = {{"migvis", MIGVIS_VERSION}, {"git", MIGVIS_GIT_COMMIT}, {"git_dirty", MIGVIS_GIT_DIRTY},
                                                 {"torch", "none"}, {"mpi", "none"}, {"cuda", "none"},
                                                 {"nccl", "none"}};
  Status st = data::run_data_job(dir, versions);
  if (st.ok()) fmt::print("data job {} done: {}\n", dir, (fs::path(dir) / data::kDatasetFile).string());
  return st;
}

}  // namespace

void register_data_commands(CLI::App& app, CommandStatus* out) {
  auto* data = app.add_subcommand("data", "Create, import and inspect neural datasets");
  data->require_subcommand(1);

  auto* insp = data->add_subcommand("inspect", "Print a dataset's animals, sessions and factors, and validate it");
  auto path = std::make_shared<std::string>();
  insp->add_option("file", *path, "dataset HDF5 file")->required();
  insp->callback([out, path] { out->set(inspect(*path)); });

  auto* syn = data->add_subcommand("synth", "Generate a seeded synthetic IT experiment with planted latent structure");
  auto so = std::make_shared<data::SynthOptions>();
  auto syn_out = std::make_shared<std::string>();
  syn->add_option("--out", *syn_out, "output dataset HDF5 file (written atomically)")->required();
  syn->add_option("--seed", so->seed, "random seed (same seed, same file contents)");
  syn->add_option("--preset", so->preset, "tiny (64 images), default (512 images, 32 px) or paper (5760 images, 128 px)")
      ->check(CLI::IsMember({"tiny", "default", "paper"}));
  syn->add_option("--image-size", so->image_size_px, "override: image side in pixels");
  syn->add_option("--categories", so->categories, "override: number of categories (2..8; with --families its length)");
  syn->add_option("--objects", so->objects_per_category, "override: objects per category (1..16)");
  syn->add_option("--poses", so->poses_per_object, "override: views per object");
  syn->add_option("--animals", so->animals, "override: number of animals");
  syn->add_option("--sessions", so->sessions_per_animal, "override: sessions per animal");
  syn->add_option("--min-neurons", so->min_neurons, "override: fewest neurons in a session");
  syn->add_option("--max-neurons", so->max_neurons, "override: most neurons in a session");
  syn->add_option("--repeats", so->repeats, "override: presentations of each image per session");
  syn->add_option("--families", so->families,
                  "shape families, one category each (of: " + fmt::format("{}", fmt::join(data::shape_family_names(), ", ")) +
                      "; default: the first --categories of the first eight)")
      ->delimiter(',');
  syn->add_option("--background-min", so->background_min, "image statistics: lowest background grey level (default 0.22)");
  syn->add_option("--background-max", so->background_max, "image statistics: highest background grey level (default 0.38)");
  syn->add_option("--background-texture", so->background_texture,
                  "image statistics: scale of the background's value noise (0..4, default 1)");
  syn->add_option("--pixel-noise", so->pixel_noise, "image statistics: per-pixel noise sd (0..0.5, default 0.02)");
  syn->callback([out, so, syn_out] { out->set(synth(*so, *syn_out)); });

  auto* imp = data->add_subcommand("import", "Convert a Brain-Score assembly, an NWB file or a migvis file into a "
                                               "migvis dataset (mappings: schemas/import.md)");
  auto io = std::make_shared<data::ImportOptions>();
  auto imp_in = std::make_shared<std::string>();
  auto imp_out = std::make_shared<std::string>();
  imp->add_option("--format", io->format, "brainscore | nwb | hdf5")->required()
      ->check(CLI::IsMember({"brainscore", "nwb", "hdf5"}));
  imp->add_option("input", *imp_in, "input file (netCDF-4 assembly, NWB or migvis HDF5)")->required();
  imp->add_option("--out", *imp_out, "output dataset HDF5 file (written atomically; untouched on error)")->required();
  imp->add_option("--stimuli", io->stimuli_csv, "brainscore: stimulus set CSV (stimulus_id|image_id, filename, ...)");
  imp->add_option("--images", io->images_dir, "brainscore: directory of the image files (default: the CSV's)");
  imp->add_option("--variable", io->variable, "brainscore: data variable name (default: the only one)");
  imp->add_option("--region", io->region, "brainscore: keep neuroids of this region ('' = all); nwb: region label")
      ->capture_default_str();
  imp->add_option("--time-bin", io->time_bin, "brainscore: use this time bin index (default: average all)");
  imp->add_option("--image-size", io->image_size_px, "brainscore: resample images to N x N");
  imp->add_option("--t-start-ms", io->t_start_ms, "nwb: counting window start after each presentation")
      ->capture_default_str();
  imp->add_option("--t-stop-ms", io->t_stop_ms, "nwb: counting window end")->capture_default_str();
  imp->add_option("--intervals", io->intervals, "nwb: /intervals/<name> table of presentations");
  imp->add_option("--stimulus", io->stimulus, "nwb: /stimulus/presentation|templates/<name> images");
  imp->add_option("--stimulus-column", io->stimulus_column, "nwb: intervals column giving the image index or id");
  imp->add_option("--animal", io->animal, "animal name (overrides the file's; brainscore: keep only this animal)");
  imp->add_option("--session", io->session, "session name (overrides the file's)");
  imp->callback([out, io, imp_in, imp_out] {
    io->input = *imp_in;
    out->set(import_file(*io, *imp_out));
  });

  auto* rj = data->add_subcommand("run-job", "Run one `data` stage job directory (schemas/job.md): writes dataset.h5, "
                                             "stimuli.png and result.yaml");
  auto job_dir = std::make_shared<std::string>();
  rj->add_option("dir", *job_dir, "job directory holding job.yaml")->required();
  rj->callback([out, job_dir] { out->set(run_job(*job_dir)); });
}

}  // namespace migvis::orch
