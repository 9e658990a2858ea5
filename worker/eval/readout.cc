#include "worker/eval/readout.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "worker/stages/inputs.h"

namespace migvis::worker::eval {

namespace nn = torch::nn;

JudgeTrunkImpl::JudgeTrunkImpl(int64_t channels, int64_t w) : width(std::max<int64_t>(w, 2)) {
  auto conv_bn = [](nn::Sequential& s, int64_t in, int64_t out, int64_t k, int64_t stride, bool relu) {
    s->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false)));
    s->push_back(nn::BatchNorm2d(out));
    if (relu) s->push_back(nn::ReLU());
  };
  const int64_t w2 = width;
  stem = register_module("stem", nn::Sequential());
  conv_bn(stem, channels, w2, 5, 1, true);
  down = register_module("down", nn::Sequential());
  conv_bn(down, w2, 2 * w2, 3, 2, true);
  res = register_module("res", nn::Sequential());
  conv_bn(res, 2 * w2, 2 * w2, 3, 1, true);
  conv_bn(res, 2 * w2, 2 * w2, 3, 1, false);
  top = register_module("top", nn::Sequential());
  conv_bn(top, 2 * w2, 4 * w2, 3, 2, true);
  reduce = register_module("reduce", nn::Conv2d(nn::Conv2dOptions(4 * w2, w2 / 2, 1)));
}

torch::Tensor JudgeTrunkImpl::forward(const torch::Tensor& x) {
  auto h = down->forward(stem->forward(x));                              // [B, 2w, S/2, S/2]
  h = torch::relu(h + res->forward(h));
  h = top->forward(h);                                                    // [B, 4w, S/4, S/4]
  auto mx = std::get<0>(h.flatten(2).max(2));                             // [B, 4w]
  auto mean = h.mean({2, 3});                                             // [B, 4w]
  auto where = torch::adaptive_avg_pool2d(torch::relu(reduce->forward(h)), {4, 4}).flatten(1);  // [B, 16 * (w/2)]
  return torch::cat({mx, mean, where}, 1);
}

ReadoutImpl::ReadoutImpl(const ReadoutOptions& o, std::vector<FactorHead> h) : options(o), heads(std::move(h)) {
  trunk = register_module("trunk", JudgeTrunk(o.channels, o.width));
  dropout = register_module("dropout", nn::Dropout(0.3));
  out = register_module("out", nn::ModuleList());
  for (auto& fh : heads) out->push_back(nn::Linear(trunk->out_features(), fh.outputs()));
}

ReadoutOutput ReadoutImpl::forward(const torch::Tensor& x) {
  // x: [B, C, H, W] in [0, 1] -> trunk features [B, 20w] -> per-head outputs
  auto f = trunk->forward(resize_images(x, options.image_size_px) * 2 - 1);
  ReadoutOutput r;
  r.features = f;
  auto fd = dropout->forward(f);
  for (size_t i = 0; i < heads.size(); ++i) {
    auto y = out[i]->as<nn::Linear>()->forward(fd);
    r.outputs.push_back(heads[i].categorical || heads[i].periodic ? y : y.squeeze(1));  // [B, K] / [B, 2] / [B]
  }
  return r;
}

bool is_full_circle(const data::Factor& f) {
  if (f.units != "deg" || f.values.empty() || f.kind != data::FactorKind::kContinuous) return false;
  auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
  return *hi - *lo > 270;
}

bool near_constant(const std::vector<float>& values) {
  if (values.empty()) return true;
  std::map<float, size_t> counts;
  for (float v : values) ++counts[v];
  size_t top = 0;
  for (auto& [v, c] : counts) top = std::max(top, c);
  if (top >= 0.95 * values.size()) return true;
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const double scale = std::max(1.0, static_cast<double>(std::max(std::abs(*lo), std::abs(*hi))));
  return *hi - *lo <= 1e-6 * scale;
}

std::vector<FactorHead> heads_for(const data::Dataset& d, std::vector<std::string>* dropped) {
  std::vector<FactorHead> hs;
  for (auto& role : factor_roles())
    for (auto& f : d.factors) {
      if (f.role != role) continue;
      if (near_constant(f.values)) {
        if (dropped) dropped->push_back(f.name);
        continue;
      }
      FactorHead h;
      h.name = f.name;
      h.role = f.role;
      h.categorical = f.kind == data::FactorKind::kCategorical;
      if (h.categorical) {
        h.classes = std::max<int64_t>(f.classes.size(), 1);
      } else {
        double m = 0, s = 0;
        for (float v : f.values) m += v;
        m /= std::max<size_t>(f.values.size(), 1);
        for (float v : f.values) s += (v - m) * (v - m);
        h.mean = m;
        h.std = std::max(1e-6, std::sqrt(s / std::max<size_t>(f.values.size(), 1)));
        h.periodic = is_full_circle(f);
      }
      hs.push_back(h);
    }
  return hs;
}

std::vector<torch::Tensor> targets_for(const data::Dataset& d, const std::vector<FactorHead>& heads) {
  std::vector<torch::Tensor> t;
  for (auto& h : heads) {
    const data::Factor* f = d.factor(h.name);
    auto v = torch::tensor(f->values, torch::kFloat32);
    t.push_back(h.categorical ? v.round().to(torch::kLong) : v);
  }
  return t;
}

std::vector<double> train_readout(Readout& r, const torch::Tensor& images, const std::vector<torch::Tensor>& targets,
                                  const ReadoutTrainOptions& o) {
  auto gen = at::detail::createCPUGenerator(o.seed);
  const int64_t n = images.size(0);
  auto perm = torch::randperm(n, gen, torch::kLong);
  const int64_t n_test = std::clamp<int64_t>(std::llround(n * o.test_fraction), 1, n - 1);
  auto test = perm.slice(0, 0, n_test), train = perm.slice(0, n_test);
  const int64_t n_train = train.size(0), bs = std::min(o.batch, n_train);
  torch::optim::Adam opt(r->parameters(), torch::optim::AdamOptions(o.lr));
  const torch::Device dev = r->parameters().front().device();  // batches move to the read-out's device
  r->train();
  auto loss_of = [&](const ReadoutOutput& out, const torch::Tensor& idx) {
    torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(dev));
    for (size_t i = 0; i < r->heads.size(); ++i) {
      auto& h = r->heads[i];
      auto y = targets[i].index_select(0, idx).to(dev);
      if (h.categorical) {
        loss = loss + torch::nn::functional::cross_entropy(out.outputs[i], y);
      } else if (h.periodic) {
        auto rad = y * (M_PI / 180.0);
        loss = loss + torch::mse_loss(out.outputs[i], torch::stack({rad.cos(), rad.sin()}, 1));  // [B, 2]
      } else {
        loss = loss + torch::mse_loss(out.outputs[i], (y - h.mean) / h.std);
      }
    }
    return loss;
  };
  BestParameters best;  // keep_best: the epoch with the lowest held-out loss
  for (int64_t e = 0; e < o.epochs; ++e) {
    auto order = train.index_select(0, torch::randperm(n_train, gen, torch::kLong));
    for (int64_t b0 = 0; b0 + bs <= n_train; b0 += bs) {
      auto idx = order.slice(0, b0, b0 + bs);
      auto x = augment_images(images.index_select(0, idx), o.augment_noise, o.augment_blur, gen).to(dev);
      auto loss = loss_of(r->forward(x), idx);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    if (o.keep_best) {
      torch::NoGradGuard ng;
      r->eval();
      const double l = loss_of(r->forward(images.index_select(0, test).to(dev)), test).item<double>();
      r->train();
      best.offer(-l, *r);
    }
  }
  best.restore(*r);
  r->eval();
  auto pred = predict(r, images.index_select(0, test));
  std::vector<torch::Tensor> y;
  for (auto& t : targets) y.push_back(t.index_select(0, test));
  return score_predictions(r->heads, pred.values, y);
}

std::vector<double> score_predictions(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& values,
                                      const std::vector<torch::Tensor>& targets) {
  std::vector<double> score;
  for (size_t i = 0; i < heads.size(); ++i) {
    const auto& y = targets[i];
    if (heads[i].categorical) {
      score.push_back((values[i] == y).to(torch::kFloat64).mean().item<double>());
    } else if (heads[i].periodic) {
      auto err = (values[i] - y).to(torch::kFloat64) * (M_PI / 180.0);
      score.push_back(err.cos().mean().item<double>());
    } else {
      auto yd = y.to(torch::kFloat64), pd = values[i].to(torch::kFloat64);
      double ss_res = (yd - pd).pow(2).sum().item<double>(), ss_tot = (yd - yd.mean()).pow(2).sum().item<double>();
      score.push_back(1 - ss_res / std::max(ss_tot, 1e-12));
    }
  }
  return score;
}

double chance_corrected(const FactorHead& h, double score) {
  const double chance = h.categorical ? 1.0 / std::max<int64_t>(h.classes, 1) : 0.0;
  return chance < 1 ? (score - chance) / (1.0 - chance) : 0.0;
}

std::vector<torch::Tensor> decode_scores(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& scores) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < heads.size(); ++i) {
    const auto& h = heads[i];
    const auto& sc = scores.at(i);
    if (h.categorical) out.push_back(sc.argmax(1));
    else if (h.periodic) out.push_back((torch::atan2(sc.select(1, 1), sc.select(1, 0)) * (180.0 / M_PI)).to(torch::kFloat32));
    else out.push_back((sc * h.std + h.mean).to(torch::kFloat32));
  }
  return out;
}

Predictions predict(Readout& r, const torch::Tensor& images, int64_t batch) {
  torch::NoGradGuard ng;
  std::vector<std::vector<torch::Tensor>> parts(r->heads.size());
  std::vector<torch::Tensor> feats;
  // Batches move to the read-out's device; predictions come back to the host.
  const torch::Device dev = r->parameters().front().device();
  std::vector<std::vector<torch::Tensor>> score_parts(r->heads.size());
  for (int64_t b0 = 0; b0 < images.size(0); b0 += batch) {
    auto out = r->forward(images.slice(0, b0, std::min(images.size(0), b0 + batch)).to(dev));
    feats.push_back(out.features.cpu());
    auto values = decode_scores(r->heads, out.outputs);  // categorical: argmax of the logits
    for (size_t i = 0; i < r->heads.size(); ++i) {
      parts[i].push_back(values[i].cpu());
      score_parts[i].push_back((r->heads[i].categorical ? out.outputs[i].softmax(1) : out.outputs[i]).cpu());
    }
  }
  Predictions p;
  for (auto& v : parts) p.values.push_back(torch::cat(v));
  for (auto& v : score_parts) p.scores.push_back(torch::cat(v));
  p.features = torch::cat(feats);
  return p;
}

Predictions average_predictions(const std::vector<Predictions>& members, const std::vector<FactorHead>& heads) {
  if (members.size() == 1) return members.front();
  Predictions p;
  p.features = members.front().features;
  for (size_t i = 0; i < heads.size(); ++i) {
    auto mean = members.front().scores.at(i).to(torch::kFloat64).clone();
    for (size_t k = 1; k < members.size(); ++k) mean += members[k].scores.at(i).to(torch::kFloat64);
    mean /= static_cast<double>(members.size());
    p.scores.push_back(mean);
  }
  p.values = decode_scores(heads, p.scores);
  for (auto& sc : p.scores) sc = sc.to(torch::kFloat32);
  return p;
}

std::vector<torch::Tensor> role_distances(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& a,
                                          const std::vector<torch::Tensor>& b, const std::vector<std::string>& roles) {
  std::vector<torch::Tensor> out;
  for (auto& role : roles) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < heads.size(); ++i)
      if (heads[i].role == role) idx.push_back(i);
    if (idx.empty()) { out.emplace_back(); continue; }
    auto per_item = torch::zeros({a[idx[0]].size(0)}, torch::kFloat64);
    if (heads[idx[0]].categorical) {
      // 1 where any of the role's categorical heads differs.
      for (size_t i : idx) per_item = torch::maximum(per_item, (a[i] != b[i]).to(torch::kFloat64));
    } else if (role == "position") {
      for (size_t i : idx) per_item = per_item + (a[i] - b[i]).to(torch::kFloat64).pow(2);
      per_item = per_item.sqrt();
    } else {
      for (size_t i : idx) {
        auto d = (a[i] - b[i]).to(torch::kFloat64).abs();
        if (heads[i].periodic) d = torch::minimum(torch::remainder(d, 360.0), 360.0 - torch::remainder(d, 360.0));
        per_item = per_item + d / static_cast<double>(idx.size());
      }
    }
    out.push_back(per_item);
  }
  return out;
}

std::vector<double> role_changes(const std::vector<FactorHead>& heads, const std::vector<torch::Tensor>& a,
                                 const std::vector<torch::Tensor>& b, const std::vector<std::string>& roles) {
  std::vector<double> out;
  for (auto& d : role_distances(heads, a, b, roles))
    out.push_back(d.defined() ? d.mean().item<double>() : std::numeric_limits<double>::quiet_NaN());
  return out;
}

PixelReadout::PixelReadout(const PixelReadoutOptions& o, std::vector<FactorHead> heads) : o_(o), heads_(std::move(heads)) {}

torch::Tensor PixelReadout::conv_features(const torch::Tensor& images) const {
  namespace F = torch::nn::functional;
  // In chunks: [chunk, filters, s - 4, s - 4] float32 is the largest tensor.
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += 256) {
    auto x = resize_images(images.slice(0, i, std::min(images.size(0), i + 256)), o_.conv_size_px)
                 .to(torch::kFloat32);
    x = x - x.mean({1, 2, 3}, /*keepdim=*/true);  // each image's own mean grey removed
    auto r = torch::relu(F::conv2d(x, conv_w_, F::Conv2dFuncOptions().bias(conv_b_)));
    auto grid = F::adaptive_avg_pool2d(r, F::AdaptiveAvgPool2dFuncOptions(4)).flatten(1);   // [b, 16 * filters]
    auto peak = std::get<0>(r.flatten(2).max(2));                                         // [b, filters]
    parts.push_back(torch::cat({grid, peak}, 1).to(torch::kFloat64));
  }
  return torch::cat(parts, 0);
}

torch::Tensor PixelReadout::features(const torch::Tensor& images) const {
  auto x = resize_images(images, o_.image_size_px).flatten(1).to(torch::kFloat64);  // [B, P]
  x = (x - pix_mean_) / pix_sd_;
  auto rf = torch::relu(x.matmul(proj_) + bias_);                                  // [B, features]
  if (o_.conv_filters <= 0) return torch::cat({x, rf}, 1);
  return torch::cat({x, rf, (conv_features(images) - conv_mean_) / conv_sd_}, 1);
}

torch::Tensor PixelReadout::encode(const std::vector<torch::Tensor>& targets, const torch::Tensor& idx) const {
  std::vector<torch::Tensor> cols;
  for (size_t i = 0; i < heads_.size(); ++i) {
    auto& h = heads_[i];
    auto y = targets[i].index_select(0, idx);
    if (h.categorical) {
      cols.push_back(torch::one_hot(y.clamp(0, h.classes - 1), h.classes).to(torch::kFloat64));
    } else if (h.periodic) {
      auto rad = y.to(torch::kFloat64) * (M_PI / 180.0);
      cols.push_back(torch::stack({rad.cos(), rad.sin()}, 1));
    } else {
      cols.push_back(((y.to(torch::kFloat64) - h.mean) / h.std).unsqueeze(1));
    }
  }
  return torch::cat(cols, 1);
}

std::vector<torch::Tensor> PixelReadout::split(const torch::Tensor& y) const {
  std::vector<torch::Tensor> out;
  int64_t c = 0;
  for (auto& h : heads_) {
    auto part = y.slice(1, c, c + h.outputs());
    c += h.outputs();
    out.push_back(h.categorical || h.periodic ? part : part.squeeze(1));
  }
  return out;
}

std::vector<double> PixelReadout::fit(const torch::Tensor& images, const std::vector<torch::Tensor>& targets) {
  auto gen = at::detail::createCPUGenerator(o_.seed ^ 0x706978656cull);
  const int64_t n = images.size(0);
  auto px = resize_images(images, o_.image_size_px).flatten(1).to(torch::kFloat64);
  pix_mean_ = px.mean(0);
  pix_sd_ = px.std(0).clamp_min(1e-3);
  const int64_t p = px.size(1);
  proj_ = torch::randn({p, o_.features}, gen, torch::kFloat64) / std::sqrt(static_cast<double>(p));
  bias_ = torch::randn({o_.features}, gen, torch::kFloat64) * 0.5;
  if (o_.conv_filters > 0) {
    const int64_t c = images.size(1);
    conv_w_ = torch::randn({o_.conv_filters, c, 5, 5}, gen, torch::kFloat32);
    conv_w_ = (conv_w_ - conv_w_.mean({1, 2, 3}, /*keepdim=*/true)) / std::sqrt(25.0 * c);  // zero-mean: edges, bars
    conv_b_ = torch::randn({o_.conv_filters}, gen, torch::kFloat32) * 0.05;
    auto cf = conv_features(images);
    conv_mean_ = cf.mean(0);
    conv_sd_ = cf.std(0).clamp_min(1e-6);
  }
  auto phi = features(images);
  feat_mean_ = phi.mean(0);
  phi = phi - feat_mean_;
  auto all = torch::arange(n, torch::kLong);
  auto y = encode(targets, all);
  auto y_mean = y.mean(0);
  // Dual ridge (n << D): w = phi^T (phi phi^T + lambda I)^-1 (y - mean).
  auto solve = [&](const torch::Tensor& idx, double lambda) {
    auto f = phi.index_select(0, idx);
    auto yc = y.index_select(0, idx) - y_mean;
    auto k = f.matmul(f.t()) + lambda * torch::eye(idx.size(0), torch::kFloat64);
    return f.t().matmul(at::linalg_solve(k, yc));  // [D, K]
  };
  auto perm = torch::randperm(n, gen, torch::kLong);
  const int64_t n_test = std::clamp<int64_t>(std::llround(n * o_.test_fraction), 1, std::max<int64_t>(n - 1, 1));
  auto test = perm.slice(0, 0, n_test), train = perm.slice(0, n_test);
  // Strengths relative to the mean squared feature norm (the kernel's diagonal).
  const double scale = phi.pow(2).sum(1).mean().item<double>();
  std::vector<double> best_scores;
  double best = -std::numeric_limits<double>::infinity();
  for (double rel : {1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
    auto w = solve(train, rel * scale);
    auto pred = decode_scores(heads_, split(phi.index_select(0, test).matmul(w) + y_mean));
    std::vector<torch::Tensor> yt;
    for (auto& t : targets) yt.push_back(t.index_select(0, test));
    auto sc = score_predictions(heads_, pred, yt);
    double mean = 0;
    for (size_t i = 0; i < sc.size(); ++i) mean += chance_corrected(heads_[i], sc[i]) / sc.size();
    if (mean > best) { best = mean; best_scores = sc; ridge_ = rel * scale; }
  }
  w_ = solve(all, ridge_);
  feat_mean_ = feat_mean_.clone();
  y_mean_ = y_mean;
  return best_scores;
}

Predictions PixelReadout::predict(const torch::Tensor& images) const {
  torch::NoGradGuard ng;
  Predictions p;
  p.features = features(images);
  auto parts = split((p.features - feat_mean_).matmul(w_) + y_mean_);
  p.values = decode_scores(heads_, parts);
  for (auto& part : parts) p.scores.push_back(part.to(torch::kFloat32));
  p.features = p.features.to(torch::kFloat32);
  return p;
}

}  // namespace migvis::worker::eval
