// migvis data ...: dataset commands (schemas/dataset.md).
#include <fmt/format.h>

#include "orchestrator/cli.h"
#include "results/dataset_io.h"

namespace migvis::orch {
namespace {

Status inspect(const std::string& path) {
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset d, data::read_dataset(path));
  fmt::print("dataset  {}\n", path);
  fmt::print("source   {}\n", d.source);
  fmt::print("images   {} x {} x {} x {} (N x C x H x W)\n", d.images.dim(0), d.images.dim(1), d.images.dim(2),
             d.images.dim(3));
  fmt::print("factors  {}\n", d.factors.size());
  for (auto& f : d.factors) {
    if (f.kind == data::FactorKind::kCategorical)
      fmt::print("  {:<10} categorical ({} classes)  role={}\n", f.name, f.classes.size(), f.role);
    else
      fmt::print("  {:<10} continuous [{}]  role={}\n", f.name, f.units, f.role);
  }
  fmt::print("animals  {}\n", d.animals().size());
  for (auto& a : d.animals()) {
    fmt::print("  {}\n", a);
    for (auto& s : d.sessions) {
      if (s.animal != a) continue;
      auto avg = data::average_repeats(s);
      fmt::print("    {:<8} {:>5} neurons  {:>6} presentations  {:>5} images  {} {}-{} ms\n", s.name, s.num_neurons(),
                 s.num_presentations(), avg.image_index.size(), s.value_kind, s.t_start_ms, s.t_stop_ms);
    }
  }
  if (d.truth) {
    fmt::print("truth    {} latent dims in {} groups:", d.truth->latents.dim(1), d.truth->group_names.size());
    for (size_t g = 0; g < d.truth->group_names.size(); ++g)
      fmt::print(" {}->{}", d.truth->group_names[g], d.truth->group_factor[g]);
    fmt::print("\n");
  }
  fmt::print("valid    yes (schema migvis-dataset/1)\n");
  return Status::Ok();
}

}  // namespace

void register_data_commands(CLI::App& app, CommandStatus* out) {
  auto* data = app.add_subcommand("data", "Create, import and inspect neural datasets");
  data->require_subcommand(1);

  auto* insp = data->add_subcommand("inspect", "Print a dataset's animals, sessions and factors, and validate it");
  auto path = std::make_shared<std::string>();
  insp->add_option("file", *path, "dataset HDF5 file")->required();
  insp->callback([out, path] { out->set(inspect(*path)); });
}

}  // namespace migvis::orch
