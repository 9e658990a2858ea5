#include "worker/eval/readout.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "worker/stages/inputs.h"

namespace migvis::worker::eval {

namespace nn = torch::nn;

ReadoutImpl::ReadoutImpl(const ReadoutOptions& o, std::vector<FactorHead> h) : options(o), heads(std::move(h)) {
  trunk = register_module("trunk", ImageTrunk(ImageTrunkOptions{o.channels, o.width}));
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

std::vector<FactorHead> heads_for(const data::Dataset& d) {
  std::vector<FactorHead> hs;
  for (auto& role : factor_roles())
    for (auto& f : d.factors) {
      if (f.role != role) continue;
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
        if (f.units == "deg" && !f.values.empty()) {
          auto [lo, hi] = std::minmax_element(f.values.begin(), f.values.end());
          h.periodic = *hi - *lo > 270;
        }
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
  std::vector<double> score;
  for (size_t i = 0; i < r->heads.size(); ++i) {
    auto y = targets[i].index_select(0, test);
    if (r->heads[i].categorical) {
      score.push_back((pred.values[i] == y).to(torch::kFloat64).mean().item<double>());
    } else if (r->heads[i].periodic) {
      auto err = (pred.values[i] - y).to(torch::kFloat64) * (M_PI / 180.0);
      score.push_back(err.cos().mean().item<double>());
    } else {
      auto yd = y.to(torch::kFloat64), pd = pred.values[i].to(torch::kFloat64);
      double ss_res = (yd - pd).pow(2).sum().item<double>(), ss_tot = (yd - yd.mean()).pow(2).sum().item<double>();
      score.push_back(1 - ss_res / std::max(ss_tot, 1e-12));
    }
  }
  return score;
}

Predictions predict(Readout& r, const torch::Tensor& images, int64_t batch) {
  torch::NoGradGuard ng;
  std::vector<std::vector<torch::Tensor>> parts(r->heads.size());
  std::vector<torch::Tensor> feats;
  // Batches move to the read-out's device; predictions come back to the host.
  const torch::Device dev = r->parameters().front().device();
  for (int64_t b0 = 0; b0 < images.size(0); b0 += batch) {
    auto out = r->forward(images.slice(0, b0, std::min(images.size(0), b0 + batch)).to(dev));
    feats.push_back(out.features.cpu());
    for (size_t i = 0; i < r->heads.size(); ++i) {
      auto& h = r->heads[i];
      if (h.categorical) parts[i].push_back(out.outputs[i].argmax(1).cpu());
      else if (h.periodic) parts[i].push_back((torch::atan2(out.outputs[i].select(1, 1), out.outputs[i].select(1, 0)) * (180.0 / M_PI)).cpu());
      else parts[i].push_back((out.outputs[i] * h.std + h.mean).cpu());
    }
  }
  Predictions p;
  for (auto& v : parts) p.values.push_back(torch::cat(v));
  p.features = torch::cat(feats);
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

}  // namespace migvis::worker::eval
