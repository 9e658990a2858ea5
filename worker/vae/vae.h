// Stage 1 of MIG-Vis: the partially disentangled neural VAE family
// (shared/MIGVIS_METHOD.md, "Stage 1") and its losses.
//
// One module covers the single-session model and the pooled multi-session one:
// every session has its own read-in layer (neurons -> hidden) and its own linear
// read-out (latent -> neurons); the ReLU, the (mu, logvar) heads and the latent
// space are shared. A single-session model is the pooled model with one session.
// The weak-supervision heads (a per-dimension pose scale on group 1, a linear
// category classifier on group 2) live in the module so they train and
// checkpoint with it. Baselines (vae, beta_vae, tcvae, migvis_unsup) use the same
// module; only the loss weights differ (vae_loss below).
//
// Thread-compatible (a LibTorch module); not thread-safe.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/status.h"

namespace migvis::vae {

enum class Recon { kMse, kPoisson };
enum class ModelKind { kVae, kBetaVae, kTcVae, kMigVis, kMigVisUnsup };

Result<Recon> parse_recon(const std::string& s);        // "mse" | "poisson"
Result<ModelKind> parse_model(const std::string& s);    // "vae" | "beta_vae" | "tcvae" | "migvis" | "migvis_unsup"
std::string model_name(ModelKind k);

struct VaeOptions {
  std::vector<int64_t> session_neurons{58};  // M_s of each session (one entry: single session)
  int64_t groups = 4;                        // G
  int64_t group_rank = 6;                    // R; latent D = G * R
  int64_t hidden = 64;
  Recon recon = Recon::kMse;
  int64_t pose_dims = 6;   // number of pose labels read from group 1 (0: no pose head); <= group_rank
  int64_t n_classes = 8;   // category classes read from group 2 (0: no category head)
  int64_t latent_dim() const { return groups * group_rank; }
};

struct VaeOutput {
  torch::Tensor mu;            // [B, D] posterior mean
  torch::Tensor logvar;        // [B, D] posterior log-variance
  torch::Tensor z;             // [B, D] sample (= mu when not sampling)
  torch::Tensor recon;         // [B, M_s]: MSE: predicted z-scored response; Poisson: log-rate
  torch::Tensor pose_hat;      // [B, pose_dims] = z[:, :pose_dims] * pose_scale (undefined if no head)
  torch::Tensor class_logits;  // [B, n_classes] from z[:, R:2R] (undefined if no head)
};

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(const VaeOptions& o);

  // x: [B, M_s] float (z-scored responses or counts) of session `session`.
  // sample: reparameterised z = mu + eps * exp(logvar / 2), else z = mu.
  VaeOutput forward(const torch::Tensor& x, int64_t session = 0, bool sample = true);
  // x: [B, M_s] -> (mu, logvar) each [B, D].
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x, int64_t session = 0);
  // z: [B, D] -> [B, M_s] (MSE: response; Poisson: log-rate).
  torch::Tensor decode(const torch::Tensor& z, int64_t session = 0);

  const VaeOptions& options() const { return opts_; }
  int64_t num_sessions() const { return static_cast<int64_t>(opts_.session_neurons.size()); }

 private:
  VaeOptions opts_;
  torch::nn::ModuleList read_in_{nullptr};   // Linear(M_s -> hidden) per session
  torch::nn::ModuleList read_out_{nullptr};  // Linear(D -> M_s) per session
  torch::nn::Linear mu_head_{nullptr}, logvar_head_{nullptr};  // hidden -> D
  torch::Tensor pose_scale_;                 // [pose_dims], init N(0, 0.01)
  torch::nn::Linear classifier_{nullptr};    // R -> n_classes
};
TORCH_MODULE(Vae);

// ------------------------------------------------------------------- losses

// Mean squared error; recon, x: [B, M] -> scalar.
torch::Tensor recon_mse(const torch::Tensor& recon, const torch::Tensor& x);
// Poisson NLL with a log-rate prediction, without the log(x!) constant:
// mean of exp(log_rate) - x * log_rate. log_rate, x: [B, M] -> scalar.
torch::Tensor recon_poisson(const torch::Tensor& log_rate, const torch::Tensor& x);
// Mean per-dimension KL(N(mu, exp(logvar)) || N(0, I)); mu, logvar: [B, D] -> scalar >= 0.
torch::Tensor kl_normal(const torch::Tensor& mu, const torch::Tensor& logvar);

// Total correlation between consecutive blocks of `group_size` latent dimensions,
// TC = E[log q(z) - sum_g log q(z_g)], estimated on one minibatch by
// minibatch-weighted sampling: each sample's z_i is scored under every sample's
// Gaussian q(z | x_j), log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(B * N), and
// each group marginal the same way with the per-dimension log-densities summed
// within the group. N = dataset_size, or 1 (the batch alone is the sample of the
// aggregate posterior) when dataset_size <= 0: then identical posteriors give
// exactly 0 and independent groups give ~0. group_size = 1 is the per-dimension
// TC of beta-TCVAE. z, mu, logvar: [B, D], D divisible by group_size -> scalar.
//
// Computed without the [B, B, D] tensor of per-dimension log-densities: a
// group's log q(z_i | x_j) = -1/2 [z_i^2 . (1/sigma_j^2) - 2 z_i . (mu_j/sigma_j^2)
// + sum(mu_j^2/sigma_j^2 + log sigma_j^2 + log 2 pi)] is one batched matmul, so
// the largest temporary is [G, B, B]. The matmul runs in float64 (the expansion
// cancels in float32 when |z| >> |z - mu|; see docs/METRICS.md), the
// logsumexps in z's dtype.
torch::Tensor group_tc(const torch::Tensor& z, const torch::Tensor& mu, const torch::Tensor& logvar,
                       int64_t group_size, int64_t dataset_size = 0);
// The same estimator in the reference code's formulation: elementwise over a
// [B, B, D] tensor in z's dtype. Kept as the oracle for tests and bench_vae.
torch::Tensor group_tc_reference(const torch::Tensor& z, const torch::Tensor& mu, const torch::Tensor& logvar,
                                 int64_t group_size, int64_t dataset_size = 0);

struct LossWeights {
  ModelKind model = ModelKind::kMigVis;
  double w_guid = 0.2;   // supervision (migvis only)
  double w_kl = 0.002;
  double w_tc = 0.02;    // group TC (migvis, migvis_unsup); chosen by bench_vae_tc, docs/METRICS.md
  double beta = 4.0;     // beta_vae: beta * w_kl * KL; tcvae: w_kl * (KL + (beta - 1) * TC_dim / D)
};

struct LossParts {
  torch::Tensor total;   // scalar, the training objective
  torch::Tensor recon;   // scalar
  torch::Tensor kl;      // scalar
  torch::Tensor tc;      // scalar: group TC (migvis*), per-dim TC (tcvae), else 0
  torch::Tensor tc_term; // scalar: TC's weighted contribution to total (w_tc * tc; tcvae: w_kl * (beta - 1) * tc / D)
  torch::Tensor pose;    // scalar MSE of the pose read-out (0 when off)
  torch::Tensor ce;      // scalar category cross entropy (0 when off)
};

// The model's loss (MIGVIS_METHOD.md):
//   migvis:       recon + w_guid * (MSE_pose + 0.1 * CE) + w_kl * KL + w_tc * TC_group
//   migvis_unsup: recon + w_kl * KL + w_tc * TC_group
//   vae:          recon + w_kl * KL;  beta_vae: recon + beta * w_kl * KL
//   tcvae:        recon + w_kl * (KL + (beta - 1) * TC_dim / D)   (KL = MI + TC + dim-KL, TC up-weighted)
// x: [B, M] target; pose: [B, pose_dims] standardised labels or undefined;
// category: [B] int64 or undefined. Supervision terms are skipped when the label
// or the head is missing.
LossParts vae_loss(const VaeOutput& out, const torch::Tensor& x, const torch::Tensor& pose,
                   const torch::Tensor& category, const VaeOptions& o, const LossWeights& w);

// ||d term / d params|| / ||d total / d params|| (the term's share of the
// gradient norm; 0 when total's gradient is 0). Uses autograd::grad with the
// graph retained, so total.backward() still works afterwards. Parameters a
// term does not reach count as zero gradient.
double grad_norm_share(const torch::Tensor& term, const torch::Tensor& total, const std::vector<torch::Tensor>& params);

}  // namespace migvis::vae
