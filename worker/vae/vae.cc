#include "worker/vae/vae.h"

#include <cmath>

namespace migvis::vae {

Result<Recon> parse_recon(const std::string& s) {
  if (s == "mse") return Recon::kMse;
  if (s == "poisson") return Recon::kPoisson;
  return Status::InvalidArgument("recon: expected mse or poisson, got \"" + s + "\"");
}

Result<ModelKind> parse_model(const std::string& s) {
  if (s == "vae") return ModelKind::kVae;
  if (s == "beta_vae") return ModelKind::kBetaVae;
  if (s == "tcvae") return ModelKind::kTcVae;
  if (s == "migvis") return ModelKind::kMigVis;
  if (s == "migvis_unsup") return ModelKind::kMigVisUnsup;
  return Status::InvalidArgument("model: expected one of vae, beta_vae, tcvae, migvis, migvis_unsup, got \"" + s + "\"");
}

std::string model_name(ModelKind k) {
  switch (k) {
    case ModelKind::kVae: return "vae";
    case ModelKind::kBetaVae: return "beta_vae";
    case ModelKind::kTcVae: return "tcvae";
    case ModelKind::kMigVis: return "migvis";
    case ModelKind::kMigVisUnsup: return "migvis_unsup";
  }
  return "?";
}

VaeImpl::VaeImpl(const VaeOptions& o) : opts_(o) {
  TORCH_CHECK(!o.session_neurons.empty(), "VaeOptions: at least one session");
  TORCH_CHECK(o.pose_dims <= o.group_rank, "VaeOptions: pose_dims (", o.pose_dims, ") > group_rank (", o.group_rank, ")");
  TORCH_CHECK(o.n_classes == 0 || o.groups >= 2, "VaeOptions: a category head needs at least 2 groups");
  const int64_t d = o.latent_dim();
  read_in_ = register_module("read_in", torch::nn::ModuleList());
  read_out_ = register_module("read_out", torch::nn::ModuleList());
  for (int64_t m : o.session_neurons) {
    read_in_->push_back(torch::nn::Linear(m, o.hidden));
    read_out_->push_back(torch::nn::Linear(d, m));
  }
  mu_head_ = register_module("mu", torch::nn::Linear(o.hidden, d));
  logvar_head_ = register_module("logvar", torch::nn::Linear(o.hidden, d));
  if (o.pose_dims > 0) pose_scale_ = register_parameter("pose_scale", torch::randn({o.pose_dims}) * 0.01);
  if (o.n_classes > 0) classifier_ = register_module("classifier", torch::nn::Linear(o.group_rank, o.n_classes));
}

std::pair<torch::Tensor, torch::Tensor> VaeImpl::encode(const torch::Tensor& x, int64_t session) {
  // x: [B, M_s] -> h: [B, hidden] -> mu, logvar: [B, D]
  auto h = torch::relu(read_in_[session]->as<torch::nn::Linear>()->forward(x));
  return {mu_head_->forward(h), logvar_head_->forward(h)};
}

torch::Tensor VaeImpl::decode(const torch::Tensor& z, int64_t session) {
  // z: [B, D] -> [B, M_s]
  return read_out_[session]->as<torch::nn::Linear>()->forward(z);
}

VaeOutput VaeImpl::forward(const torch::Tensor& x, int64_t session, bool sample) {
  VaeOutput out;
  std::tie(out.mu, out.logvar) = encode(x, session);
  out.z = sample ? out.mu + torch::randn_like(out.mu) * torch::exp(0.5 * out.logvar) : out.mu;  // [B, D]
  out.recon = decode(out.z, session);                                                           // [B, M_s]
  const int64_t r = opts_.group_rank;
  if (opts_.pose_dims > 0) out.pose_hat = out.z.slice(1, 0, opts_.pose_dims) * pose_scale_;     // [B, P]
  if (opts_.n_classes > 0) out.class_logits = classifier_->forward(out.z.slice(1, r, 2 * r));   // [B, K]
  return out;
}

torch::Tensor recon_mse(const torch::Tensor& recon, const torch::Tensor& x) { return torch::mse_loss(recon, x); }

torch::Tensor recon_poisson(const torch::Tensor& log_rate, const torch::Tensor& x) {
  return (torch::exp(log_rate) - x * log_rate).mean();
}

torch::Tensor kl_normal(const torch::Tensor& mu, const torch::Tensor& logvar) {
  // 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2), elementwise >= 0; mean over [B, D].
  return (0.5 * (mu.pow(2) + torch::exp(logvar) - 1.0 - logvar)).mean();
}

torch::Tensor group_tc_reference(const torch::Tensor& z, const torch::Tensor& mu, const torch::Tensor& logvar,
                                 int64_t group_size, int64_t dataset_size) {
  const int64_t b = z.size(0), d = z.size(1);
  TORCH_CHECK(group_size > 0 && d % group_size == 0, "group_tc: D = ", d, " not divisible by group size ", group_size);
  const int64_t g = d / group_size;
  // log q(z_i[d] | x_j[d]) for all pairs: [B_i, B_j, D]
  auto zi = z.unsqueeze(1);
  auto mj = mu.unsqueeze(0);
  auto lv = logvar.unsqueeze(0);
  auto log_density = -0.5 * (std::log(2.0 * M_PI) + lv + (zi - mj).pow(2) * torch::exp(-lv));
  const double log_norm = std::log(static_cast<double>(b) * static_cast<double>(std::max<int64_t>(1, dataset_size)));
  // Joint: sum over all dims, logsumexp over j.                                 [B]
  auto log_qz = torch::logsumexp(log_density.sum(2), 1) - log_norm;
  // Group marginals: sum within each group, logsumexp over j, sum over groups.  [B]
  auto per_group = log_density.view({b, b, g, group_size}).sum(3);  // [B, B, G]
  auto log_qzg = (torch::logsumexp(per_group, 1) - log_norm).sum(1);
  return (log_qz - log_qzg).mean();
}

torch::Tensor group_tc(const torch::Tensor& z, const torch::Tensor& mu, const torch::Tensor& logvar,
                       int64_t group_size, int64_t dataset_size) {
  const int64_t b = z.size(0), d = z.size(1);
  TORCH_CHECK(group_size > 0 && d % group_size == 0, "group_tc: D = ", d, " not divisible by group size ", group_size);
  const int64_t g = d / group_size, r = group_size;
  // The matmul in float64: the expansion below subtracts terms of size z^2 / sigma^2
  // to leave (z - mu)^2 / sigma^2, which float32 loses when |z| >> |z - mu|.
  // Centring on the batch mean of mu (a shift of z and mu alike, so the density
  // and its gradient are unchanged) keeps those terms small in the first place.
  auto c = mu.detach().to(torch::kFloat64).mean(0, /*keepdim=*/true);  // [1, D]
  auto z64 = z.to(torch::kFloat64) - c, mu64 = mu.to(torch::kFloat64) - c, lv64 = logvar.to(torch::kFloat64);
  auto prec = torch::exp(-lv64);                                        // [B, D] 1 / sigma^2
  // sum_{k in g} log q(z_ik | x_jk) = -1/2 [ z_i^2 . prec_j - 2 z_i . (mu prec)_j + sum_k (mu^2 prec + lv + log 2 pi)_jk ]
  // as one batched matmul per group: [z^2, z] . [prec, -2 mu prec]^T.
  auto per_group = [&](const torch::Tensor& t) { return t.view({b, g, r}).transpose(0, 1); };  // [G, B, R]
  auto left = torch::cat({per_group(z64 * z64), per_group(z64)}, 2);                              // [G, B_i, 2R]
  auto mp = mu64 * prec;
  auto right = torch::cat({per_group(prec), per_group(-2.0 * mp)}, 2);                           // [G, B_j, 2R]
  auto konst = (mu64 * mp + lv64 + std::log(2.0 * M_PI)).view({b, g, r}).sum(2).transpose(0, 1);  // [G, B_j]
  // -1/2 (konst + left . right^T) in one pass:                                                    [G, B_i, B_j]
  // Rounded back to z's dtype once the cancellation is done: the logsumexps then
  // run at the input's precision (and speed), as in the reference formulation.
  auto log_density = torch::baddbmm(konst.unsqueeze(1), left, right.transpose(1, 2), /*beta=*/-0.5, /*alpha=*/-0.5)
                         .to(z.scalar_type());
  const double log_norm = std::log(static_cast<double>(b) * static_cast<double>(std::max<int64_t>(1, dataset_size)));
  auto log_qz = torch::logsumexp(log_density.sum(0), 1) - log_norm;           // joint: [B]
  auto log_qzg = (torch::logsumexp(log_density, 2) - log_norm).sum(0);        // groups: [G, B] -> [B]
  return (log_qz - log_qzg).mean();
}

LossParts vae_loss(const VaeOutput& out, const torch::Tensor& x, const torch::Tensor& pose,
                   const torch::Tensor& category, const VaeOptions& o, const LossWeights& w) {
  LossParts p;
  auto zero = torch::zeros({}, out.mu.options());
  p.recon = o.recon == Recon::kMse ? recon_mse(out.recon, x) : recon_poisson(out.recon, x);
  p.kl = kl_normal(out.mu, out.logvar);
  p.tc = zero;
  p.tc_term = zero;
  p.pose = zero;
  p.ce = zero;
  const int64_t d = o.latent_dim();
  switch (w.model) {
    case ModelKind::kVae:
      p.total = p.recon + w.w_kl * p.kl;
      break;
    case ModelKind::kBetaVae:
      p.total = p.recon + w.beta * w.w_kl * p.kl;
      break;
    case ModelKind::kTcVae:
      // Chen et al. 2018: KL = MI + TC + dim-KL, so KL + (beta - 1) TC weighs TC by
      // beta. kl is a per-dimension mean, so TC (a per-sample sum) is divided by D.
      p.tc = group_tc(out.z, out.mu, out.logvar, 1);
      p.tc_term = w.w_kl * (w.beta - 1.0) * p.tc / static_cast<double>(d);
      p.total = p.recon + w.w_kl * p.kl + p.tc_term;
      break;
    case ModelKind::kMigVis:
    case ModelKind::kMigVisUnsup: {
      p.tc = group_tc(out.z, out.mu, out.logvar, o.group_rank);
      p.tc_term = w.w_tc * p.tc;
      p.total = p.recon + w.w_kl * p.kl + p.tc_term;
      if (w.model == ModelKind::kMigVis) {
        if (out.pose_hat.defined() && pose.defined() && pose.numel() > 0) p.pose = torch::mse_loss(out.pose_hat, pose);
        if (out.class_logits.defined() && category.defined() && category.numel() > 0)
          p.ce = torch::nn::functional::cross_entropy(out.class_logits, category);
        p.total = p.total + w.w_guid * (p.pose + 0.1 * p.ce);
      }
      break;
    }
  }
  return p;
}

double grad_norm_share(const torch::Tensor& term, const torch::Tensor& total, const std::vector<torch::Tensor>& params) {
  if (!term.requires_grad() || !total.requires_grad()) return 0.0;
  auto norm2 = [&](const torch::Tensor& y) {
    auto grads = torch::autograd::grad({y}, params, /*grad_outputs=*/{}, /*retain_graph=*/true,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    double s = 0;
    for (const auto& g : grads)
      if (g.defined()) s += g.to(torch::kFloat64).pow(2).sum().item<double>();
    return s;
  };
  const double t = norm2(total);
  return t > 0 ? std::sqrt(norm2(term) / t) : 0.0;
}

}  // namespace migvis::vae
