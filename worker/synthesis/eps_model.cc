#include "worker/synthesis/eps_model.h"

#include <torch/script.h>

#include "results/h5.h"
#include "worker/diffusion/train.h"

namespace migvis::worker::synthesis {

namespace {
template <typename Params>
std::string first_device(const Params& ps) {
  for (const auto& p : ps) return p.device().str();
  return "none";
}
}  // namespace

Result<EpsModel> load_eps_model(const fs::path& dir, const torch::Device& device) {
  EpsModel m;
  fs::path ts = dir / kScriptedEpsFile;
  if (!fs::exists(ts)) {
    MIGVIS_ASSIGN_OR_RETURN(auto dm, diffusion::load_diffusion(dir));
    dm.unet->to(device);
    for (auto p : dm.unet->parameters()) p.set_requires_grad(false);
    m.device = first_device(dm.unet->parameters());
    m.schedule = dm.schedule;
    m.image_size_px = dm.unet_options.image_size;
    m.channels = dm.unet_options.channels;
    m.eps = diffusion::unet_eps_fn(dm.unet, dm.schedule, /*no_grad=*/false);
    m.owner = std::make_shared<diffusion::UNet>(dm.unet);
    return m;
  }
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(dir / "out.h5"));
  diffusion::ScheduleOptions so;
  MIGVIS_ASSIGN_OR_RETURN(so.timesteps, f.attr<int64_t>("schedule", "T"));
  MIGVIS_ASSIGN_OR_RETURN(std::string name, f.attr<std::string>("schedule", "schedule"));
  MIGVIS_ASSIGN_OR_RETURN(so.schedule, diffusion::parse_beta_schedule(name));
  if (Status st = diffusion::NoiseSchedule::validate(so); !st.ok()) return st.with_context(f.where("/schedule"));
  m.schedule = diffusion::NoiseSchedule(so);
  MIGVIS_ASSIGN_OR_RETURN(m.image_size_px, f.attr<int64_t>("schedule", "image_size"));
  MIGVIS_ASSIGN_OR_RETURN(m.channels, f.attr<int64_t>("schedule", "channels"));
  auto mod = std::make_shared<torch::jit::Module>();
  try {
    *mod = torch::jit::load(ts.string());
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(ts.string() + ": not a TorchScript module: " + e.what_without_backtrace());
  }
  mod->to(device);
  mod->eval();
  for (auto p : mod->parameters()) p.set_requires_grad(false);
  m.device = first_device(mod->parameters());
  m.owner = mod;
  m.eps = [mod](const torch::Tensor& x, int64_t t) {
    return mod->forward({x, torch::full({x.size(0)}, t, torch::TensorOptions(torch::kLong).device(x.device()))})
        .toTensor();
  };
  return m;
}

}  // namespace migvis::worker::synthesis
