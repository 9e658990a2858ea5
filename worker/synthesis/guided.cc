#include "worker/synthesis/guided.h"

#include <cmath>

#include <fmt/format.h>

namespace migvis::worker::synthesis {

namespace {

// DDIM pieces. INTERIM: these mirror worker/diffusion's step functions and are
// to be replaced by them once that branch is merged (one implementation only).
double abar_at(const torch::Tensor& alphas_cumprod, int64_t t) {
  return t < 0 ? 1.0 : alphas_cumprod[t].item<double>();
}

// x0 from (x_t, eps); clipped when asked, in which case eps is re-derived so the
// DDIM direction is consistent with the clipped x0.
std::pair<torch::Tensor, torch::Tensor> x0_and_eps(const torch::Tensor& x_t, const torch::Tensor& eps, double a,
                                                   bool clip) {
  auto x0 = (x_t - std::sqrt(1 - a) * eps) / std::sqrt(a);
  if (!clip) return {x0, eps};
  x0 = x0.clamp(-1, 1);
  return {x0, (x_t - std::sqrt(a) * x0) / std::sqrt(1 - a)};
}

// One DDIM update t -> t_prev with noise for eta > 0.
torch::Tensor ddim_update(const torch::Tensor& x_t, const torch::Tensor& eps, double a, double a_prev, double eta,
                          const torch::Tensor& noise, bool clip) {
  auto [x0, e] = x0_and_eps(x_t, eps, a, clip);
  const double sigma = eta * std::sqrt((1 - a_prev) / (1 - a)) * std::sqrt(1 - a / a_prev);
  auto x = std::sqrt(a_prev) * x0 + std::sqrt(std::max(0.0, 1 - a_prev - sigma * sigma)) * e;
  if (sigma > 0) x = x + sigma * noise;
  return x;
}

// Per-item standard normal draws [B, C, H, W] from per-item generators.
torch::Tensor draw(std::vector<at::Generator>& gens, const torch::Tensor& like) {
  std::vector<torch::Tensor> parts;
  parts.reserve(gens.size());
  auto shape = like.sizes().slice(1);
  for (auto& g : gens) parts.push_back(torch::randn(shape, g, like.options()));
  return torch::stack(parts, 0);
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
  const int64_t n = std::max<int64_t>(1, std::min(steps, edit_t + 1));
  std::vector<int64_t> ts;
  for (int64_t i = 0; i <= n; ++i) {
    // Evenly spaced from edit_t to -1, rounded; strictly descending since n <= edit_t + 1.
    ts.push_back(std::llround(edit_t - static_cast<double>(edit_t + 1) * i / n));
  }
  return ts;
}

torch::Tensor guidance_losses(critic::Critic& critic, const torch::Tensor& x0_hat, const torch::Tensor& z_cand,
                              const torch::Tensor& group) {
  // x0_hat: [B, C, H, W] in [-1, 1]; z_cand: [B, 1 + K, R]; group: [B] -> [B]
  auto h = critic->features((x0_hat + 1) * 0.5);
  return critic->item_losses(h, z_cand.to(h.dtype()), group);
}

GuidedEps guided_eps(const EpsFn& model, critic::Critic& critic, const torch::Tensor& x_t, int64_t t, double abar_t,
                     const GuidedBatch& b, bool clip_x0) {
  GuidedEps out;
  const bool guide = b.gamma.ne(0).any().item<bool>();
  if (!guide) {
    torch::NoGradGuard ng;
    out.eps_model = model(x_t, t);
    out.eps = out.eps_model;
    out.grad = torch::zeros_like(x_t);
    return out;
  }
  torch::AutoGradMode ag(true);
  auto x = x_t.detach().requires_grad_(true);
  auto eps = model(x, t);                                   // [B, C, H, W]
  auto x0 = (x - std::sqrt(1 - abar_t) * eps) / std::sqrt(abar_t);
  if (clip_x0) x0 = x0.clamp(-1, 1);
  auto loss = guidance_losses(critic, x0, b.z_cand, b.group);         // [B]
  // Items are independent, so d(sum L)/dx_t holds each item's own gradient.
  auto grad = torch::autograd::grad({loss.sum()}, {x})[0];
  out.eps_model = eps.detach();
  out.grad = grad.detach();
  out.loss = loss.detach();
  out.eps = out.eps_model + b.gamma.to(x_t.dtype()).view({-1, 1, 1, 1}) * out.grad;
  return out;
}

torch::Tensor guided_edit(const EpsFn& model, critic::Critic& critic, const torch::Tensor& alphas_cumprod,
                          const GuidedBatch& b, const GuidedOptions& o) {
  const int64_t T = alphas_cumprod.size(0);
  TORCH_CHECK(o.edit_t >= 0 && o.edit_t < T, "edit_t ", o.edit_t, " outside [0, ", T, ")");
  std::vector<at::Generator> gens;
  for (uint64_t s : b.noise_seed) gens.push_back(at::detail::createCPUGenerator(s));
  const auto ts = edit_timesteps(o.edit_t, o.steps);
  torch::Tensor x;
  if (o.mode == StartMode::kSdedit) {
    const double a = abar_at(alphas_cumprod, o.edit_t);
    x = std::sqrt(a) * b.x_source + std::sqrt(1 - a) * draw(gens, b.x_source);
  } else {
    // Deterministic DDIM inversion along the same timesteps, upward; eps is
    // evaluated at the step being reached (the usual approximation).
    torch::NoGradGuard ng;
    x = b.x_source;
    for (int64_t i = static_cast<int64_t>(ts.size()) - 1; i >= 0; --i) {
      const int64_t t = ts[i], t_from = i + 1 < static_cast<int64_t>(ts.size()) ? ts[i + 1] : -1;
      const double a_from = abar_at(alphas_cumprod, t_from), a = abar_at(alphas_cumprod, t);
      auto eps = model(x, t);
      auto x0 = (x - std::sqrt(1 - a_from) * eps) / std::sqrt(a_from);
      x = std::sqrt(a) * x0 + std::sqrt(1 - a) * eps;
    }
  }
  for (size_t i = 0; i + 1 < ts.size(); ++i) {
    const int64_t t = ts[i], t_prev = ts[i + 1];
    const double a = abar_at(alphas_cumprod, t), a_prev = abar_at(alphas_cumprod, t_prev);
    auto ge = guided_eps(model, critic, x, t, a, b, o.clip_x0);
    torch::NoGradGuard ng;
    torch::Tensor noise;
    if (o.eta > 0 && t_prev >= 0) noise = draw(gens, x);
    x = ddim_update(x, ge.eps, a, a_prev, t_prev >= 0 ? o.eta : 0.0, noise, o.clip_x0);
  }
  return x.clamp(-1, 1);
}

torch::Tensor reached_mi(critic::Critic& critic, const torch::Tensor& x0, const GuidedBatch& b) {
  torch::NoGradGuard ng;
  auto l = guidance_losses(critic, x0, b.z_cand, b.group);
  return std::log(static_cast<double>(b.z_cand.size(1))) - l;
}

}  // namespace migvis::worker::synthesis
