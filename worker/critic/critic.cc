#include "worker/critic/critic.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "common/log.h"
#include "worker/stages/inputs.h"

namespace migvis::worker::critic {

namespace nn = torch::nn;

ConvEncoderImpl::ConvEncoderImpl(const CriticOptions& o) {
  body = register_module("body", ImageTrunk(ImageTrunkOptions{o.channels, o.width}));
  head = register_module("head", nn::Linear(body->out_features(), o.feature_dim));
}

torch::Tensor ConvEncoderImpl::forward(const torch::Tensor& x) {
  // x: [B, C, S, S] in [0, 1] -> [B, F]
  return head(body->forward(x * 2 - 1));
}

GroupHeadImpl::GroupHeadImpl(int64_t rank, int64_t feature_dim, int64_t embed_dim) {
  z_net = register_module("z_net", nn::Sequential(nn::Linear(rank, 64), nn::SiLU(), nn::Linear(64, embed_dim)));
  h_net = register_module("h_net", nn::Linear(feature_dim, embed_dim));
}
torch::Tensor GroupHeadImpl::embed_z(const torch::Tensor& z) { return z_net->forward(z); }
torch::Tensor GroupHeadImpl::embed_h(const torch::Tensor& h) { return h_net(h); }

CriticImpl::CriticImpl(CriticOptions o) : options(std::move(o)) {
  if (options.feature_extractor.empty()) {
    encoder = register_module("encoder", ConvEncoder(options));
  } else {
    extractor = torch::jit::load(options.feature_extractor);
    extractor->eval();
    for (auto p : extractor->parameters()) p.set_requires_grad(false);
    torch::NoGradGuard ng;
    auto probe = torch::rand({1, options.channels, options.image_size_px, options.image_size_px});
    auto out = extractor->forward({probe}).toTensor();
    TORCH_CHECK(out.dim() == 2 && out.size(0) == 1, "feature extractor ", options.feature_extractor,
                ": expected [1, F] features for a [1, C, S, S] input, got ", out.sizes());
    options.feature_dim = out.size(1);
  }
  heads = register_module("heads", nn::ModuleList());
  for (int64_t g = 0; g < options.groups; ++g)
    heads->push_back(GroupHead(options.group_rank, options.feature_dim, options.embed_dim));
  const int64_t d = options.groups * options.group_rank;
  z_mean = register_buffer("z_mean", torch::zeros({d}));
  z_std = register_buffer("z_std", torch::ones({d}));
}

torch::Tensor CriticImpl::features(const torch::Tensor& x) {
  // x: [B, C, H, W] in [0, 1] -> [B, F]
  torch::Tensor in = x.to(device());  // no-op when x is already there
  const int64_t s = options.image_size_px;
  if (x.size(2) != s || x.size(3) != s)
    in = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{s, s}).mode(torch::kBilinear)
               .align_corners(false));
  if (extractor) {
    auto out = extractor->forward({in}).toTensor();
    return out.to(x.dtype());
  }
  return encoder->forward(in);
}

torch::Tensor CriticImpl::standardise(const torch::Tensor& z_group, int64_t g) const {
  const int64_t r = options.group_rank;
  return (z_group - z_mean.slice(0, g * r, (g + 1) * r)) / z_std.slice(0, g * r, (g + 1) * r);
}

torch::Tensor CriticImpl::score_candidates(const torch::Tensor& h, const torch::Tensor& z_cand, int64_t g) {
  // h: [B, F], z_cand: [B, K, R] -> [B, K]
  auto head = heads->ptr<GroupHeadImpl>(g);
  auto ez = head->embed_z(standardise(z_cand, g));  // [B, K, E]
  auto eh = head->embed_h(h);                        // [B, E]
  return (ez * eh.unsqueeze(1)).sum(-1) / std::sqrt(static_cast<double>(options.embed_dim));
}

torch::Tensor CriticImpl::score_matrix(const torch::Tensor& h, const torch::Tensor& z, int64_t g) {
  // h: [Bx, F], z: [Bz, R] -> [Bx, Bz]
  auto head = heads->ptr<GroupHeadImpl>(g);
  auto ez = head->embed_z(standardise(z, g));  // [Bz, E]
  auto eh = head->embed_h(h);                  // [Bx, E]
  return eh.matmul(ez.t()) / std::sqrt(static_cast<double>(options.embed_dim));
}

torch::Tensor CriticImpl::item_losses(const torch::Tensor& h, const torch::Tensor& z_cand, const torch::Tensor& group) {
  // h: [B, F]; z_cand: [B, K, R] (positive at 0); group: [B] -> [B]
  // Every head scores every item (the heads are tiny next to phi), then each
  // item keeps its own group's row; other rows get zero gradient.
  std::vector<torch::Tensor> per_group;
  for (int64_t g = 0; g < options.groups; ++g) {
    auto s = score_candidates(h, z_cand, g);                 // [B, K]
    per_group.push_back(s.logsumexp(1) - s.select(1, 0));    // [B] cross entropy of column 0
  }
  auto all = torch::stack(per_group, 0);                     // [G, B]
  return all.gather(0, group.view({1, -1})).squeeze(0);      // [B]
}

void to_device(Critic& critic, const torch::Device& device) {
  critic->to(device);
  if (critic->extractor) critic->extractor->to(device);
}

void CriticImpl::set_latent_stats(const torch::Tensor& latents) {
  torch::NoGradGuard ng;
  z_mean.copy_(latents.mean(0));
  z_std.copy_(latents.std(0).clamp_min(1e-6));
}

Result<Critic> make_critic(const CriticOptions& o) {
  if (o.groups < 1 || o.group_rank < 1 || o.channels < 1 || o.image_size_px < 8)
    return Status::InvalidArgument(fmt::format("critic: groups {}, group_rank {}, channels {}, image_size {}: "
                                               "expected groups, ranks, channels >= 1 and image_size >= 8",
                                               o.groups, o.group_rank, o.channels, o.image_size_px));
  if (!o.feature_extractor.empty() && !fs::exists(o.feature_extractor))
    return Status::NotFound("feature extractor " + o.feature_extractor + " does not exist (params.feature_extractor)");
  try {
    return Critic(o);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("feature extractor " + o.feature_extractor + ": " + e.what_without_backtrace() +
                                   " (expected a TorchScript module mapping [B, C, S, S] in [0, 1] to [B, F])");
  }
}

InfoNceParts info_nce(const torch::Tensor& scores, const torch::Tensor& positive) {
  // scores: [B, K]; positive: [B] int64
  InfoNceParts p;
  p.loss = torch::nn::functional::cross_entropy(scores, positive);
  p.mi_bound = std::log(static_cast<double>(scores.size(1))) - p.loss;
  p.accuracy = (scores.argmax(1) == positive).to(torch::kFloat32).mean();
  return p;
}

std::vector<double> evaluate_mi(Critic& critic, const torch::Tensor& images, const torch::Tensor& latents,
                                int64_t candidates) {
  torch::NoGradGuard ng;
  const bool was_training = critic->is_training();
  critic->eval();
  const int64_t n = images.size(0), r = critic->options.group_rank, G = critic->options.groups;
  const int64_t k = std::min(candidates, n);
  const int64_t blocks = std::max<int64_t>(1, n / k);
  std::vector<double> mi(G, 0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    const auto dev = critic->device();
    auto x = images.slice(0, b * k, (b + 1) * k).to(dev);
    auto z = latents.slice(0, b * k, (b + 1) * k).to(dev);
    auto h = critic->features(x);
    auto pos = torch::arange(k, torch::TensorOptions(torch::kLong).device(dev));
    for (int64_t g = 0; g < G; ++g) {
      auto s = critic->score_matrix(h, z.slice(1, g * r, (g + 1) * r), g);  // [k, k]
      mi[g] += info_nce(s, pos).mi_bound.item<double>() / blocks;
    }
  }
  critic->train(was_training);
  return mi;
}

Result<TrainReport> train_critic(Critic& critic, const torch::Tensor& images, const torch::Tensor& latents,
                                 const TrainOptions& o, const std::function<bool()>& should_stop) {
  const int64_t n = images.size(0), G = critic->options.groups, r = critic->options.group_rank;
  if (latents.size(0) != n || latents.size(1) != G * r)
    return Status::InvalidArgument(fmt::format("critic: {} images but latents {}x{} (expected {}x{})", n,
                                               latents.size(0), latents.size(1), n, G * r));
  if (n < 8) return Status::InvalidArgument(fmt::format("critic: {} image/latent pairs, need at least 8", n));
  auto gen = at::detail::createCPUGenerator(o.seed);
  auto perm = torch::randperm(n, gen, torch::kLong);
  int64_t n_test = std::clamp<int64_t>(std::llround(n * o.test_fraction), 2, n - 2);
  auto test_idx = perm.slice(0, 0, n_test), train_idx = perm.slice(0, n_test);
  auto x_test = images.index_select(0, test_idx), z_test = latents.index_select(0, test_idx);
  auto x_train = images.index_select(0, train_idx), z_train = latents.index_select(0, train_idx);
  const int64_t n_train = x_train.size(0);
  critic->set_latent_stats(z_train.to(critic->device()));

  TrainReport rep;
  rep.eval_candidates = std::min<int64_t>(n_test, 128);
  rep.mi_test_initial = evaluate_mi(critic, x_test, z_test, rep.eval_candidates);
  torch::optim::Adam opt(critic->parameters(), torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  critic->train();
  const int64_t bs = std::min(o.batch, n_train);
  const torch::Device dev = critic->device();
  BestParameters best;  // keep_best
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    if (should_stop && should_stop()) return Status::Cancelled("critic training stopped on request");
    auto order = torch::randperm(n_train, gen, torch::kLong);
    double sum = 0;
    int64_t batches = 0;
    for (int64_t b0 = 0; b0 + bs <= n_train; b0 += bs) {
      auto idx = order.slice(0, b0, b0 + bs);
      // Batches are drawn from the host copies and moved to the critic's device.
      auto x = augment_images(x_train.index_select(0, idx), o.augment_noise, o.augment_blur, gen).to(dev);  // [B, C, H, W]
      auto z = z_train.index_select(0, idx);                  // [B, G*R]
      auto neg = torch::randint(n_train, {o.negatives}, gen, torch::kLong);
      auto z_all = torch::cat({z, z_train.index_select(0, neg)}, 0).to(dev);  // [B + Nn, G*R]
      auto h = critic->features(x);                           // [B, F]
      auto pos = torch::arange(bs, torch::TensorOptions(torch::kLong).device(dev));
      torch::Tensor loss = torch::zeros({}, x.options());
      for (int64_t g = 0; g < G; ++g)
        loss = loss + info_nce(critic->score_matrix(h, z_all.slice(1, g * r, (g + 1) * r), g), pos).loss;
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.item<double>() / G;
      ++batches;
    }
    rep.train_loss.emplace_back(epoch + 1, batches ? sum / batches : 0.0);
    if (o.keep_best || (epoch + 1) % 5 == 0 || epoch + 1 == o.epochs) {
      auto mi = evaluate_mi(critic, x_test, z_test, rep.eval_candidates);
      double m = 0;
      for (double v : mi) m += v / G;
      rep.test_mi.emplace_back(epoch + 1, m);
      if (o.keep_best && best.offer(m, *critic)) rep.best_epoch = epoch + 1;
    }
    if (o.on_epoch) o.on_epoch(epoch + 1, o.epochs);
  }
  best.restore(*critic);  // no-op unless an epoch was kept
  if (rep.best_epoch == 0) rep.best_epoch = o.epochs;
  rep.mi_test = evaluate_mi(critic, x_test, z_test, rep.eval_candidates);
  critic->eval();
  return rep;
}

Status save_critic(Critic& critic, const fs::path& dir) {
  AtomicPath pt(dir / kCriticFile);
  torch::save(critic, pt.temp().string());
  MIGVIS_RETURN_IF_ERROR(pt.commit());
  if (critic->extractor) {
    fs::path src = critic->options.feature_extractor, dst = dir / kExtractorFile;
    if (fs::absolute(src) != fs::absolute(dst)) {
      AtomicPath cp(dst);
      std::error_code ec;
      fs::copy_file(src, cp.temp(), fs::copy_options::overwrite_existing, ec);
      if (ec) return Status::Unavailable("cannot copy " + src.string() + " to " + cp.temp().string() + ": " + ec.message());
      MIGVIS_RETURN_IF_ERROR(cp.commit());
    }
  }
  return Status::Ok();
}

Status write_critic_config(const h5::Location& out, const CriticOptions& o) {
  MIGVIS_ASSIGN_OR_RETURN(auto cfg, out.require_group("config"));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "groups", o.groups));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "group_rank", o.group_rank));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "channels", o.channels));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "image_size", o.image_size_px));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "width", o.width));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "feature_dim", o.feature_dim));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<int64_t>(".", "embed_dim", o.embed_dim));
  MIGVIS_RETURN_IF_ERROR(cfg.set_attr<std::string>(".", "feature_extractor", o.feature_extractor.empty() ? "" : kExtractorFile));
  return Status::Ok();
}

Result<Critic> load_critic(const fs::path& dir) {
  MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(dir / "out.h5"));
  if (!f.is_group("config")) return Status::InvalidArgument(f.where("/config") + ": missing (not a critic job?)");
  CriticOptions o;
  MIGVIS_ASSIGN_OR_RETURN(o.groups, f.attr<int64_t>("config", "groups"));
  MIGVIS_ASSIGN_OR_RETURN(o.group_rank, f.attr<int64_t>("config", "group_rank"));
  MIGVIS_ASSIGN_OR_RETURN(o.channels, f.attr<int64_t>("config", "channels"));
  MIGVIS_ASSIGN_OR_RETURN(o.image_size_px, f.attr<int64_t>("config", "image_size"));
  MIGVIS_ASSIGN_OR_RETURN(o.width, f.attr<int64_t>("config", "width"));
  MIGVIS_ASSIGN_OR_RETURN(o.feature_dim, f.attr<int64_t>("config", "feature_dim"));
  MIGVIS_ASSIGN_OR_RETURN(o.embed_dim, f.attr<int64_t>("config", "embed_dim"));
  MIGVIS_ASSIGN_OR_RETURN(std::string ext, f.attr<std::string>("config", "feature_extractor"));
  if (!ext.empty()) o.feature_extractor = (dir / ext).string();
  fs::path pt = dir / kCriticFile;
  if (!fs::exists(pt)) return Status::NotFound(pt.string() + ": missing (the critic job did not finish?)");
  MIGVIS_ASSIGN_OR_RETURN(auto critic, make_critic(o));
  try {
    torch::load(critic, pt.string(), torch::Device(torch::kCPU));  // any node; callers move it
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(pt.string() + ": does not match out.h5:/config: " + e.what_without_backtrace());
  }
  critic->eval();
  return critic;
}

}  // namespace migvis::worker::critic
