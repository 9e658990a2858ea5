#include "worker/diffusion/sampler.h"

namespace migvis::worker::diffusion {

EpsFn unet_eps_fn(UNet unet, const NoiseSchedule& s, bool no_grad) {
  return [unet, s, no_grad](const at::Tensor& x_t, int64_t t) mutable {
    std::optional<torch::NoGradGuard> guard;
    if (no_grad) guard.emplace();
    at::Tensor tt = at::full({x_t.size(0)}, t, x_t.options().dtype(at::kLong));
    return model_output_to_eps(s, unet->forward(x_t, tt).pred, x_t, t);
  };
}

at::Tensor ddim_sample(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x_start, const DdimOptions& o,
                       std::optional<at::Generator> generator) {
  int64_t t0 = o.t_start == -2 ? s.timesteps() - 1 : o.t_start;
  auto seq = ddim_timesteps(t0, std::min(o.steps, t0 + 1));
  at::Tensor x = x_start;
  for (size_t i = 0; i + 1 < seq.size(); ++i)
    x = ddim_step(s, x, eps_fn(x, seq[i]), seq[i], seq[i + 1], o.eta, generator, o.clip_x0);
  return x;
}

at::Tensor ddpm_sample(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x_T,
                       std::optional<at::Generator> generator, bool clip_x0) {
  at::Tensor x = x_T;
  for (int64_t t = s.timesteps() - 1; t >= 0; --t) x = ddpm_step(s, x, eps_fn(x, t), t, generator, clip_x0);
  return x;
}

at::Tensor ddim_invert(const NoiseSchedule& s, const EpsFn& eps_fn, const at::Tensor& x0, int64_t steps,
                       int64_t t_end) {
  int64_t te = t_end == -2 ? s.timesteps() - 1 : t_end;
  auto seq = ddim_timesteps(te, std::min(steps, te + 1));  // descending; walk it backwards
  at::Tensor x = x0;
  for (size_t i = seq.size() - 1; i > 0; --i) {
    int64_t t_cur = seq[i], t_next = seq[i - 1];
    // eps at the next level's timestep from the current x (the usual DDIM-inversion approximation).
    x = ddim_invert_step(s, x, eps_fn(x, t_next), t_cur, t_next);
  }
  return x;
}

}  // namespace migvis::worker::diffusion
