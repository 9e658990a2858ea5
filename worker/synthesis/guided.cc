#include "worker/synthesis/guided.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>

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

Result<GuidanceGrad> parse_guidance_grad(const std::string& s) {
  if (s == "x0") return GuidanceGrad::kX0;
  if (s == "unet") return GuidanceGrad::kUnet;
  return Status::InvalidArgument("job.yaml: params.guidance_grad: expected x0 or unet, got \"" + s + "\"");
}

const char* guidance_grad_name(GuidanceGrad g) { return g == GuidanceGrad::kX0 ? "x0" : "unet"; }

GuidedBatch GuidedBatch::slice(int64_t begin, int64_t end) const {
  GuidedBatch s;
  s.x_source = x_source.slice(0, begin, end);
  s.z_cand = z_cand.slice(0, begin, end);
  s.group = group.slice(0, begin, end);
  s.gamma = gamma.slice(0, begin, end);
  s.noise_seed.assign(noise_seed.begin() + begin, noise_seed.begin() + end);
  s.z_pool = z_pool;
  if (target_row.defined()) s.target_row = target_row.slice(0, begin, end);
  if (!negative_seed.empty()) s.negative_seed.assign(negative_seed.begin() + begin, negative_seed.begin() + end);
  return s;
}

GuidedBatch GuidedBatch::select(const std::vector<int64_t>& rows) const {
  const auto idx = torch::tensor(rows, torch::kLong);
  GuidedBatch s;
  s.x_source = x_source.index_select(0, idx);
  s.z_cand = z_cand.index_select(0, idx);
  s.group = group.index_select(0, idx);
  s.gamma = gamma.index_select(0, idx);
  s.z_pool = z_pool;
  if (target_row.defined()) s.target_row = target_row.index_select(0, idx);
  for (int64_t r : rows) {
    s.noise_seed.push_back(noise_seed[r]);
    if (!negative_seed.empty()) s.negative_seed.push_back(negative_seed[r]);
  }
  return s;
}

NegativeSampler::NegativeSampler(const GuidedBatch& b) {
  const int64_t n = b.size();
  TORCH_CHECK(b.z_pool.defined() && b.z_pool.dim() == 2 && b.target_row.defined() && b.target_row.numel() == n &&
                  static_cast<int64_t>(b.negative_seed.size()) == n,
              "resample_negatives needs the batch's z_pool [N, G*R], target_row [B] and negative_seed [B]");
  TORCH_CHECK(b.z_cand.size(1) - 1 < b.z_pool.size(0), "resample_negatives: K = ", b.z_cand.size(1) - 1,
              " negatives need more than K rows in z_pool (", b.z_pool.size(0), ")");
  const auto gm = b.gamma.ne(0);
  for (int64_t i = 0; i < n; ++i) {
    gens_.push_back(at::detail::createCPUGenerator(b.negative_seed[i]));
    if (gm[i].item<bool>()) guided_.push_back(i);
  }
}

torch::Tensor NegativeSampler::next(const GuidedBatch& b) {
  // z_cand: [B, 1 + K, R]; z_pool: [N, G * R]
  const int64_t k = b.z_cand.size(1) - 1, r = b.z_cand.size(2), n_pool = b.z_pool.size(0);
  if (guided_.empty()) return b.z_cand;
  auto out = b.z_cand.clone();
  auto pool = b.z_pool.to(out.dtype());
  // Index bookkeeping on the host whatever the grid's device.
  auto tgt_cpu = b.target_row.cpu(), grp_cpu = b.group.cpu();
  auto tgt = tgt_cpu.accessor<int64_t, 1>();
  auto grp = grp_cpu.accessor<int64_t, 1>();
  for (int64_t i : guided_) {
    // K of the N - 1 rows other than the target: a permutation of 0..N-2 with
    // indices at or above the target shifted up by one.
    auto rows = torch::randperm(n_pool - 1, gens_[i], torch::kLong).slice(0, 0, k);
    rows = rows + (rows >= tgt[i]).to(torch::kLong);
    out[i].slice(0, 1, 1 + k).copy_(pool.index_select(0, rows).slice(1, grp[i] * r, (grp[i] + 1) * r));
  }
  return out;
}

DedupedGrid dedup_unguided(const GuidedBatch& grid) {
  DedupedGrid d;
  const int64_t n = grid.size();
  d.slot.assign(n, -1);
  std::vector<int64_t> keep;
  std::map<uint64_t, std::vector<int64_t>> by_seed;  // noise seed -> kept gamma == 0 grid items
  auto gm = grid.gamma.ne(0);
  for (int64_t i = 0; i < n; ++i) {
    if (!gm[i].item<bool>()) {
      auto& kept = by_seed[grid.noise_seed[i]];
      int64_t same = -1;
      for (int64_t j : kept)
        if (torch::equal(grid.x_source[j], grid.x_source[i])) { same = j; break; }
      if (same >= 0) {
        d.slot[i] = d.slot[same];
        continue;
      }
      kept.push_back(i);
    }
    d.slot[i] = static_cast<int64_t>(keep.size());
    keep.push_back(i);
  }
  d.unique = static_cast<int64_t>(keep.size()) == n ? grid : grid.select(keep);
  return d;
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
                     const torch::Tensor& x_t, int64_t t, const GuidedBatch& b, bool clip_x0, GuidanceGrad grad) {
  // x_t: [B, C, H, W]
  GuidedEps out;
  const auto guided = b.gamma.ne(0);                         // [B] bool
  const int64_t n_guided = guided.sum().item<int64_t>();
  if (n_guided == 0) {
    c10::InferenceMode im;
    out.eps_model = model(x_t, t);
    out.eps = out.eps_model;
    out.grad = torch::zeros_like(x_t);
    return out;
  }
  const bool mixed = n_guided < b.size();
  const auto gi = mixed ? guided.nonzero().squeeze(1) : torch::Tensor();      // [Bg] int64
  const auto ui = mixed ? guided.logical_not().nonzero().squeeze(1) : torch::Tensor();  // [Bu]
  auto pick = [&](const torch::Tensor& v) { return mixed ? v.index_select(0, gi) : v; };
  // L_i at x0_hat of the guided items (the gamma == 0 items' loss is never needed).
  auto losses = [&](const torch::Tensor& x0_hat) {
    return guidance_losses(critic, clip_x0 ? x0_hat.clamp(-1, 1) : x0_hat, pick(b.z_cand), pick(b.group));
  };
  // Results of the guided subset, scattered back into [B] tensors below.
  torch::Tensor grad_g, loss_g;
  if (grad == GuidanceGrad::kX0) {
    // eps is a constant of the guidance: one forward for every item, no
    // autograd record (inference mode), and the critic is differentiated w.r.t.
    // x0_hat alone; dx0_hat/dx_t = 1/sqrt(abar).
    {
      c10::InferenceMode im;
      out.eps_model = model(x_t, t);
    }
    torch::AutoGradMode ag(true);
    auto x0 = diffusion::predict_x0(s, pick(x_t), pick(out.eps_model), t).detach().requires_grad_(true);  // [Bg, ...]
    auto loss = losses(x0);                                   // [Bg]
    grad_g = torch::autograd::grad({loss.sum()}, {x0})[0].detach() / std::sqrt(s.abar(t));
    loss_g = loss.detach();
  } else {
    // Items with gamma == 0 need eps only: in a mixed batch they run one forward
    // without autograd and the guided subset runs forward + backward, so the
    // backward pass (about twice a forward) is paid only for guided items. Items
    // are independent, so splitting the batch changes results only by float
    // rounding (tests/worker/synthesis/guided_test.cc: MixedBatchEqualsItemsAlone).
    torch::Tensor eps_g;
    {
      torch::AutoGradMode ag(true);
      auto x = pick(x_t).detach().requires_grad_(true);       // [Bg, C, H, W]
      auto eps = model(x, t);                                 // [Bg, C, H, W]
      auto loss = losses(diffusion::predict_x0(s, x, eps, t));  // [Bg]
      // Items are independent, so d(sum L)/dx_t holds each item's own gradient.
      grad_g = torch::autograd::grad({loss.sum()}, {x})[0].detach();
      eps_g = eps.detach();
      loss_g = loss.detach();
    }
    if (!mixed) {
      out.eps_model = eps_g;
    } else {
      torch::Tensor eps_u;
      {
        c10::InferenceMode im;
        eps_u = model(x_t.index_select(0, ui), t);
      }
      out.eps_model = torch::empty_like(x_t).index_copy_(0, gi, eps_g).index_copy_(0, ui, eps_u);
    }
  }
  torch::NoGradGuard ng;
  if (!mixed) {
    out.grad = grad_g;
    out.loss = loss_g;
  } else {
    out.grad = torch::zeros_like(x_t).index_copy_(0, gi, grad_g);
    out.loss = torch::full({b.size()}, std::numeric_limits<double>::quiet_NaN(), loss_g.options()).index_copy_(0, gi, loss_g);
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
    torch::NoGradGuard ng;  // not inference mode: x is later an autograd leaf (kUnet)
    x = b.x_source;
    for (int64_t i = static_cast<int64_t>(ts.size()) - 2; i >= 0; --i)
      x = diffusion::ddim_invert_step(s, x, model(x, ts[i]), ts[i + 1], ts[i]);
  }
  std::optional<NegativeSampler> negatives;
  if (o.resample_negatives) negatives.emplace(b);
  GuidedBatch step = b;  // b with this step's candidates
  for (size_t i = 0; i + 1 < ts.size(); ++i) {
    const int64_t t = ts[i], t_prev = ts[i + 1];
    if (negatives) step.z_cand = negatives->next(b);
    auto ge = guided_eps(model, critic, s, x, t, step, o.clip_x0, o.grad);
    torch::NoGradGuard ng;
    const bool noisy = t_prev >= 0 && (o.ddpm || o.eta > 0);
    torch::Tensor noise = noisy ? draw(gens, x) : torch::Tensor();
    x = o.ddpm ? diffusion::ddpm_step(s, x, ge.eps, t, noise, /*clip_x0=*/true)
               : diffusion::ddim_step(s, x, ge.eps, t, t_prev, o.eta, noise, /*clip_x0=*/true);
  }
  return x.clamp(-1, 1);
}

torch::Tensor reached_mi(critic::Critic& critic, const torch::Tensor& x0, const GuidedBatch& b) {
  torch::NoGradGuard ng;
  auto l = guidance_losses(critic, x0, b.z_cand, b.group);
  return std::log(static_cast<double>(b.z_cand.size(1))) - l;
}

}  // namespace migvis::worker::synthesis
