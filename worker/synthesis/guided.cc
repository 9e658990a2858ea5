#include "worker/synthesis/guided.h"

#include <cmath>

#include <fmt/format.h>

namespace migvis::worker::synthesis {

namespace {

// Per-item standard normal draws [B, C, H, W] from per-item generators.
torch::Tensor draw(std::vector<at::Generator>& gens, const torch::Tensor& like) {
  std::vector<torch::Tensor> parts;
  parts.reserve(gens.size());
  auto shape = like.sizes().slice(1);
  // CPU generators (the same numbers on any device); the batch moves to like's device.
  for (auto& g : gens) parts.push_back(torch::randn(shape, g, like.options().device(torch::kCPU)));
  return torch::stack(parts, 0).to(like.device());
}

}  // namespace

Result<StartMode> parse_start_mode(const std::string& s) {
  if (s == "sdedit") return StartMode::kSdedit;
  if (s == "invert") return StartMode::kInvert;
  return Status::InvalidArgument("job.yaml: params.mode: expected sdedit or invert, got \"" + s + "\"");
}

GuidedBatch GuidedBatch::slice(int64_t begin, int64_t end) const {
  GuidedBatch s;
  s.x_source = x_source.slice(0, begin, end);
  s.z_cand = z_cand.slice(0, begin, end);
  s.group = group.slice(0, begin, end);
  s.gamma = gamma.slice(0, begin, end);
  s.noise_seed.assign(noise_seed.begin() + begin, noise_seed.begin() + end);
  return s;
}

std::vector<int64_t> edit_timesteps(int64_t edit_t, int64_t steps) {
  return diffusion::ddim_timesteps(edit_t, std::max<int64_t>(1, std::min(steps, edit_t + 1)));
}

torch::Tensor guidance_losses(critic::Critic& critic, const torch::Tensor& x0_hat, const torch::Tensor& z_cand,
                              const torch::Tensor& group) {
  // x0_hat: [B, C, H, W] in [-1, 1]; z_cand: [B, 1 + K, R]; group: [B] -> [B]
  auto h = critic->features((x0_hat + 1) * 0.5);
  return critic->item_losses(h, z_cand.to(h.dtype()), group);
}

GuidedEps guided_eps(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                     const torch::Tensor& x_t, int64_t t, const GuidedBatch& b, bool clip_x0) {
  // x_t: [B, C, H, W]
  GuidedEps out;
  const auto guided = b.gamma.ne(0);                         // [B] bool
  const int64_t n_guided = guided.sum().item<int64_t>();
  if (n_guided == 0) {
    torch::NoGradGuard ng;
    out.eps_model = model(x_t, t);
    out.eps = out.eps_model;
    out.grad = torch::zeros_like(x_t);
    return out;
  }
  // Items with gamma == 0 need eps only: in a mixed batch they run one forward
  // without autograd and the guided subset runs forward + backward, so the
  // backward pass (about twice a forward) is paid only for guided items. Items
  // are independent, so splitting the batch changes results only by float
  // rounding (tests/worker/synthesis/guided_test.cc: MixedBatchEqualsItemsAlone).
  const bool mixed = n_guided < b.size();
  const auto gi = mixed ? guided.nonzero().squeeze(1) : torch::Tensor();      // [Bg] int64
  const auto ui = mixed ? guided.logical_not().nonzero().squeeze(1) : torch::Tensor();  // [Bu]
  auto pick = [&](const torch::Tensor& v) { return mixed ? v.index_select(0, gi) : v; };
  // L_i at x0_hat(x_t) of the items x, with their rows of z_cand and group.
  auto losses = [&](const torch::Tensor& x, const torch::Tensor& eps, const torch::Tensor& z, const torch::Tensor& g) {
    auto x0 = diffusion::predict_x0(s, x, eps, t);
    if (clip_x0) x0 = x0.clamp(-1, 1);
    return guidance_losses(critic, x0, z, g);
  };

  torch::Tensor eps_g, grad_g, loss_g;
  {
    torch::AutoGradMode ag(true);
    auto x = pick(x_t).detach().requires_grad_(true);         // [Bg, C, H, W]
    auto eps = model(x, t);                                   // [Bg, C, H, W]
    auto loss = losses(x, eps, pick(b.z_cand), pick(b.group));  // [Bg]
    // Items are independent, so d(sum L)/dx_t holds each item's own gradient.
    grad_g = torch::autograd::grad({loss.sum()}, {x})[0].detach();
    eps_g = eps.detach();
    loss_g = loss.detach();
  }
  if (!mixed) {
    out.eps_model = eps_g;
    out.grad = grad_g;
    out.loss = loss_g;
  } else {
    torch::NoGradGuard ng;
    auto x_u = x_t.index_select(0, ui);                       // [Bu, C, H, W]
    auto eps_u = model(x_u, t);
    auto loss_u = losses(x_u, eps_u, b.z_cand.index_select(0, ui), b.group.index_select(0, ui));
    out.eps_model = torch::empty_like(x_t).index_copy_(0, gi, eps_g).index_copy_(0, ui, eps_u);
    out.grad = torch::zeros_like(x_t).index_copy_(0, gi, grad_g);
    out.loss = torch::empty({b.size()}, loss_g.options()).index_copy_(0, gi, loss_g).index_copy_(0, ui, loss_u);
  }
  out.eps = out.eps_model + b.gamma.to(x_t.dtype()).view({-1, 1, 1, 1}) * out.grad;
  return out;
}

torch::Tensor guided_edit(const EpsFn& model, critic::Critic& critic, const diffusion::NoiseSchedule& s,
                          const GuidedBatch& b, const GuidedOptions& o) {
  const int64_t T = s.timesteps();
  TORCH_CHECK(o.edit_t >= 0 && o.edit_t < T, "edit_t ", o.edit_t, " outside [0, ", T, ")");
  std::vector<at::Generator> gens;
  for (uint64_t seed : b.noise_seed) gens.push_back(at::detail::createCPUGenerator(seed));
  const auto ts = edit_timesteps(o.edit_t, o.ddpm ? o.edit_t + 1 : o.steps);
  torch::Tensor x;
  if (o.mode == StartMode::kSdedit) {
    const double a = s.abar(o.edit_t);
    x = std::sqrt(a) * b.x_source + std::sqrt(1 - a) * draw(gens, b.x_source);
  } else {
    torch::NoGradGuard ng;
    x = b.x_source;
    for (int64_t i = static_cast<int64_t>(ts.size()) - 2; i >= 0; --i)
      x = diffusion::ddim_invert_step(s, x, model(x, ts[i]), ts[i + 1], ts[i]);
  }
  for (size_t i = 0; i + 1 < ts.size(); ++i) {
    const int64_t t = ts[i], t_prev = ts[i + 1];
    auto ge = guided_eps(model, critic, s, x, t, b, o.clip_x0);
    torch::NoGradGuard ng;
    const bool noisy = t_prev >= 0 && (o.ddpm || o.eta > 0);
    torch::Tensor noise = noisy ? draw(gens, x) : torch::Tensor();
    x = o.ddpm ? diffusion::ddpm_step(s, x, ge.eps, t, noise, o.clip_x0)
               : diffusion::ddim_step(s, x, ge.eps, t, t_prev, o.eta, noise, o.clip_x0);
  }
  return x.clamp(-1, 1);
}

torch::Tensor reached_mi(critic::Critic& critic, const torch::Tensor& x0, const GuidedBatch& b) {
  torch::NoGradGuard ng;
  auto l = guidance_losses(critic, x0, b.z_cand, b.group);
  return std::log(static_cast<double>(b.z_cand.size(1))) - l;
}

}  // namespace migvis::worker::synthesis
