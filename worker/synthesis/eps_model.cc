#include "worker/synthesis/eps_model.h"

#include <torch/script.h>

#include "results/h5.h"

namespace migvis::worker::synthesis {

Result<EpsModel> load_eps_model(const fs::path& dir) {
  fs::path ts = dir / kScriptedEpsFile;
  if (!fs::exists(ts))
    return Status::NotFound(dir.string() + ": no " + kScriptedEpsFile +
                            " (loading the diffusion stage's model.pt needs worker/diffusion, not merged yet)");
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(dir / "out.h5"));
  MIGVIS_ASSIGN_OR_RETURN(auto ac, f.read_vector<double>("schedule/alphas_cumprod"));
  if (ac.size() < 2) return Status::InvalidArgument(f.where("/schedule/alphas_cumprod") + ": need at least 2 steps");
  EpsModel m;
  m.alphas_cumprod = torch::tensor(ac, torch::kFloat64);
  auto mod = std::make_shared<torch::jit::Module>();
  try {
    *mod = torch::jit::load(ts.string());
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(ts.string() + ": not a TorchScript module: " + e.what_without_backtrace());
  }
  mod->eval();
  for (auto p : mod->parameters()) p.set_requires_grad(false);
  MIGVIS_ASSIGN_OR_RETURN(m.image_size_px, f.attr<int64_t>("schedule", "image_size"));
  MIGVIS_ASSIGN_OR_RETURN(m.channels, f.attr<int64_t>("schedule", "channels"));
  m.owner = mod;
  m.eps = [mod](const torch::Tensor& x, int64_t t) {
    return mod->forward({x, torch::full({x.size(0)}, t, torch::kLong)}).toTensor();
  };
  return m;
}

}  // namespace migvis::worker::synthesis
