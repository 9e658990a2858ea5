#include "worker/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

namespace migvis::metrics {

namespace {

using torch::Tensor;
constexpr auto kF64 = torch::kFloat64;

// Seeds LibTorch's global generator for a scope and restores its state after,
// so metrics never perturb a training run's random stream.
class ScopedSeed {
 public:
  explicit ScopedSeed(uint64_t seed) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    saved_ = gen.get_state();
    gen.set_current_seed(seed);
  }
  ~ScopedSeed() {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(saved_);
  }

 private:
  Tensor saved_;
};

Tensor f64(const Tensor& x) { return x.detach().to(kF64).contiguous(); }

// Squared distances [N, k] between rows of x [N, F] and c [k, F].
Tensor sq_dist(const Tensor& x, const Tensor& c) {
  return (x.pow(2).sum(1, true) - 2 * x.matmul(c.t()) + c.pow(2).sum(1).unsqueeze(0)).clamp_min(0);
}

// A seeded 80/20 split of n rows: (train, test) int64 index tensors.
std::pair<Tensor, Tensor> split_rows(int64_t n, uint64_t seed, double test_fraction = 0.2) {
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  int64_t n_test = std::max<int64_t>(1, static_cast<int64_t>(std::round(test_fraction * n)));
  std::vector<int64_t> test(idx.begin(), idx.begin() + n_test), train(idx.begin() + n_test, idx.end());
  return {torch::tensor(train, torch::kInt64), torch::tensor(test, torch::kInt64)};
}

Tensor standardise_cols(const Tensor& x, const Tensor& ref) {
  auto mean = ref.mean(0);
  auto sd = ref.std(0, /*unbiased=*/false).clamp_min(1e-12);
  return (x - mean) / sd;
}

// Linear discriminant analysis (Gaussian classes, shared covariance + shrinkage):
// a linear classifier that, unlike one-vs-rest least squares, also separates a
// class lying inside the others' hull. x: [N, F] float64; y: [N] int64 in [0, k).
struct Lda {
  Tensor w;  // [F, k]
  Tensor b;  // [k]
  Tensor predict(const Tensor& x) const { return (x.matmul(w) + b).argmax(1); }
};
Lda fit_lda(const Tensor& x, const Tensor& y, int64_t k, double shrink = 1e-3) {
  auto onehot = torch::one_hot(y, k).to(kF64);             // [N, k]
  auto counts = onehot.sum(0);                             // [k]
  auto means = onehot.t().matmul(x) / counts.clamp_min(1).unsqueeze(1);  // [k, F]
  auto resid = x - means.index({y});
  auto cov = resid.t().matmul(resid) / static_cast<double>(std::max<int64_t>(1, x.size(0) - k));
  cov = cov + shrink * torch::eye(x.size(1), x.options());
  auto prec_means = torch::linalg::solve(cov, means.t(), true);  // [F, k]
  auto log_prior = (counts.clamp_min(0.5) / static_cast<double>(x.size(0))).log();
  // Absent classes can never win.
  auto absent = torch::where(counts > 0, torch::zeros_like(counts), torch::full_like(counts, -1e30));
  Lda l;
  l.w = prec_means;
  l.b = -0.5 * (means * prec_means.t()).sum(1) + log_prior + absent;
  return l;
}

// Held-out linear decodability of one factor from standardised features xs [N, F]:
// ridge R^2 (continuous) or LDA chance-corrected accuracy (categorical), clamped to [0, 1].
double factor_score(const Tensor& xs, const FactorLabels& f, const Tensor& train, const Tensor& test);

}  // namespace

// ------------------------------------------------------------- k-means, PCA

KMeansResult kmeans(const Tensor& x_in, int64_t k, uint64_t seed, int64_t n_init, int64_t max_iter) {
  Tensor x = f64(x_in);
  const int64_t n = x.size(0);
  TORCH_CHECK(n >= k && k > 0, "kmeans: need N >= k > 0, got N = ", n, ", k = ", k);
  std::mt19937_64 rng(seed);
  KMeansResult best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int64_t init = 0; init < std::max<int64_t>(1, n_init); ++init) {
    // k-means++ seeding: each next centre drawn with probability ~ squared distance.
    std::vector<int64_t> chosen{std::uniform_int_distribution<int64_t>(0, n - 1)(rng)};
    Tensor d2 = sq_dist(x, x.index({torch::tensor(chosen)})).squeeze(1);
    while (static_cast<int64_t>(chosen.size()) < k) {
      auto acc = d2.accessor<double, 1>();
      std::vector<double> w(acc.data(), acc.data() + n);
      double total = 0;
      for (double v : w) total += v;
      int64_t next;
      if (total <= 0) next = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
      else next = std::discrete_distribution<int64_t>(w.begin(), w.end())(rng);
      chosen.push_back(next);
      d2 = torch::minimum(d2, sq_dist(x, x[next].unsqueeze(0)).squeeze(1));
    }
    Tensor centers = x.index({torch::tensor(chosen)}).clone();
    Tensor labels;
    for (int64_t it = 0; it < max_iter; ++it) {
      Tensor new_labels = sq_dist(x, centers).argmin(1);
      if (labels.defined() && torch::equal(new_labels, labels)) break;
      labels = new_labels;
      auto onehot = torch::one_hot(labels, k).to(kF64);  // [N, k]
      auto counts = onehot.sum(0);                       // [k]
      auto sums = onehot.t().matmul(x);                  // [k, F]
      auto nonempty = counts > 0;
      centers = torch::where(nonempty.unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1), centers);
    }
    labels = sq_dist(x, centers).argmin(1);
    double inertia = sq_dist(x, centers).gather(1, labels.unsqueeze(1)).sum().item<double>();
    if (inertia < best.inertia) best = {labels, centers, inertia};
  }
  return best;
}

PcaResult pca(const Tensor& x_in, int64_t k) {
  Tensor x = f64(x_in);
  const int64_t n = x.size(0), f = x.size(1);
  TORCH_CHECK(k > 0 && k <= std::min(n, f), "pca: need 0 < k <= min(N, F), got k = ", k);
  PcaResult r;
  r.mean = x.mean(0);
  Tensor xc = x - r.mean;
  Tensor comps, var;
  if (f <= n) {
    auto [evals, evecs] = torch::linalg::eigh(xc.t().matmul(xc) / static_cast<double>(n - 1), "L");  // ascending
    var = evals.flip(0).slice(0, 0, k);
    comps = evecs.flip(1).slice(1, 0, k).t();  // [k, F]
  } else {
    auto [evals, evecs] = torch::linalg::eigh(xc.matmul(xc.t()), "L");  // [N], [N, N]
    auto top = evals.flip(0).slice(0, 0, k).clamp_min(1e-300);
    auto u = evecs.flip(1).slice(1, 0, k);                               // [N, k]
    comps = (xc.t().matmul(u) / top.sqrt()).t();                         // [k, F]
    var = top / static_cast<double>(n - 1);
  }
  // Deterministic signs: the entry of largest magnitude in each component is positive.
  auto idx = comps.abs().argmax(1, true);
  auto sign = comps.gather(1, idx).sign();
  sign = torch::where(sign == 0, torch::ones_like(sign), sign);
  r.components = comps * sign;
  r.explained_variance = var;
  r.projected = xc.matmul(r.components.t());
  return r;
}

// ----------------------------------------------------------------- ridge

Ridge fit_ridge(const Tensor& x_in, const Tensor& y_in, double alpha, const Tensor& sample_weight) {
  Tensor x = f64(x_in);
  Tensor y = f64(y_in);
  if (y.dim() == 1) y = y.unsqueeze(1);
  Tensor w = sample_weight.defined() ? f64(sample_weight).flatten().unsqueeze(1)
                                     : torch::ones({x.size(0), 1}, x.options());
  auto xm = (w * x).sum(0) / w.sum(), ym = (w * y).sum(0) / w.sum();
  auto xc = x - xm, yc = y - ym;
  auto a = (w * xc).t().matmul(xc) + alpha * torch::eye(x.size(1), x.options());
  Ridge r;
  r.w = torch::linalg::solve(a, (w * xc).t().matmul(yc), /*left=*/true);  // [F, T]
  r.b = ym - xm.matmul(r.w);
  return r;
}

RidgeClassifier fit_ridge_classifier(const Tensor& x, const Tensor& y_in, int64_t n_classes, double alpha,
                                     bool balanced) {
  auto y = y_in.to(torch::kInt64);
  auto targets = torch::one_hot(y, n_classes).to(kF64) * 2 - 1;  // {-1, +1}
  Tensor w;
  if (balanced) {  // sklearn's class_weight="balanced": n / (n_classes_present * count(class))
    auto counts = torch::bincount(y, {}, n_classes).to(kF64);
    double present = (counts > 0).sum().item<double>();
    w = (static_cast<double>(y.size(0)) / (present * counts.clamp_min(1))).index({y});
  }
  return RidgeClassifier{fit_ridge(x, targets, alpha, w)};
}

double accuracy(const Tensor& pred, const Tensor& y) {
  return (pred.to(torch::kInt64) == y.to(torch::kInt64)).to(kF64).mean().item<double>();
}

double balanced_accuracy(const Tensor& pred, const Tensor& y_in) {
  auto y = y_in.to(torch::kInt64), p = pred.to(torch::kInt64);
  auto classes = std::get<0>(torch::_unique(y));
  double sum = 0;
  for (int64_t i = 0; i < classes.size(0); ++i) {
    auto mask = y == classes[i];
    sum += (p.masked_select(mask) == classes[i]).to(kF64).mean().item<double>();
  }
  return classes.size(0) ? sum / static_cast<double>(classes.size(0)) : 0.0;
}

// ------------------------------------------------------------ information

Tensor discretize(const Tensor& v_in, int64_t bins) {
  Tensor v = f64(v_in).flatten();
  double lo = v.min().item<double>(), hi = v.max().item<double>();
  if (!(hi > lo)) return torch::zeros({v.size(0)}, torch::kInt64);
  return ((v - lo) / (hi - lo) * static_cast<double>(bins)).floor().clamp(0, bins - 1).to(torch::kInt64);
}

double entropy(const Tensor& labels) {
  auto l = labels.to(torch::kInt64).flatten();
  auto counts = torch::bincount(l - l.min()).to(kF64);
  auto p = counts.masked_select(counts > 0) / static_cast<double>(l.size(0));
  return -(p * p.log()).sum().item<double>();
}

double mutual_info(const Tensor& a_in, const Tensor& b_in) {
  auto a = a_in.to(torch::kInt64).flatten(), b = b_in.to(torch::kInt64).flatten();
  TORCH_CHECK(a.size(0) == b.size(0), "mutual_info: lengths differ");
  a = a - a.min();
  b = b - b.min();
  int64_t nb = b.max().item<int64_t>() + 1, na = a.max().item<int64_t>() + 1;
  auto joint = torch::bincount(a * nb + b, {}, na * nb).to(kF64).view({na, nb}) / static_cast<double>(a.size(0));
  auto pa = joint.sum(1, true), pb = joint.sum(0, true);
  auto mask = joint > 0;
  auto terms = joint * (joint.log() - pa.log() - pb.log());
  return std::max(0.0, terms.masked_select(mask).sum().item<double>());
}

std::vector<Tensor> unit_codes(const Tensor& z_in, int64_t unit_size, uint64_t seed, int64_t bins) {
  Tensor z = f64(z_in);
  TORCH_CHECK(unit_size > 0 && z.size(1) % unit_size == 0, "unit_codes: D not divisible by unit size");
  std::vector<Tensor> out;
  for (int64_t u = 0; u < z.size(1) / unit_size; ++u) {
    Tensor block = z.slice(1, u * unit_size, (u + 1) * unit_size);
    if (unit_size == 1) out.push_back(discretize(block.squeeze(1), bins));
    else out.push_back(kmeans(standardise_cols(block, block), std::min<int64_t>(bins, z.size(0)), seed + u).labels);
  }
  return out;
}

Tensor FactorLabels::codes(int64_t bins) const {
  return categorical ? values.to(torch::kInt64) : discretize(values, bins);
}

double mig(const std::vector<Tensor>& codes, const std::vector<FactorLabels>& factors) {
  TORCH_CHECK(codes.size() >= 2, "mig: needs at least 2 units");
  double sum = 0;
  int n = 0;
  for (const auto& f : factors) {
    Tensor fc = f.codes();
    double h = entropy(fc);
    if (h <= 1e-12) continue;
    std::vector<double> mi;
    for (const auto& c : codes) mi.push_back(mutual_info(c, fc));
    std::sort(mi.rbegin(), mi.rend());
    sum += (mi[0] - mi[1]) / h;
    ++n;
  }
  return n ? sum / n : 0.0;
}

// ----------------------------------------------------- disentanglement scores

double factorvae_score(const Tensor& z_in, int64_t unit_size, const LatentMap& reencode, uint64_t seed,
                       int64_t n_pairs, int64_t epochs) {
  Tensor z = f64(z_in);
  const int64_t n = z.size(0), d = z.size(1);
  TORCH_CHECK(unit_size > 0 && d % unit_size == 0, "factorvae_score: D not divisible by unit size");
  const int64_t units = d / unit_size;
  ScopedSeed scoped(seed);
  torch::AutoGradMode grad_on(true);  // callers may evaluate under NoGradGuard; the probe MLP trains
  auto i = torch::randint(n, {n_pairs}, torch::kInt64);
  auto j = torch::randint(n, {n_pairs}, torch::kInt64);
  auto k = torch::randint(units, {n_pairs}, torch::kInt64);
  Tensor z1 = z.index({i});
  // mask[p, dim] = 1 where dim belongs to unit k[p]
  auto unit_of_dim = torch::arange(d, torch::kInt64).floor_divide(unit_size);
  auto mask = (unit_of_dim.unsqueeze(0) == k.unsqueeze(1)).to(kF64);
  Tensor z2 = z1 * (1 - mask) + z.index({j}) * mask;
  Tensor r1 = z1, r2 = z2;
  if (reencode) {
    torch::NoGradGuard ng;
    r1 = f64(reencode(z1.to(torch::kFloat32)));
    r2 = f64(reencode(z2.to(torch::kFloat32)));
  }
  auto sd = z.std(0, false).clamp_min(1e-8);
  Tensor feat = ((r1 - r2).abs() / sd).to(torch::kFloat32);
  const int64_t n_train = n_pairs * 4 / 5;
  auto xtr = feat.slice(0, 0, n_train), ytr = k.slice(0, 0, n_train);
  auto xte = feat.slice(0, n_train), yte = k.slice(0, n_train);
  torch::nn::Sequential mlp(torch::nn::Linear(d, 256), torch::nn::ReLU(), torch::nn::Linear(256, units));
  torch::optim::Adam opt(mlp->parameters(), torch::optim::AdamOptions(1e-3));
  const int64_t batch = 128;
  for (int64_t e = 0; e < epochs; ++e) {
    auto perm = torch::randperm(n_train, torch::kInt64);
    for (int64_t s = 0; s < n_train; s += batch) {
      auto idx = perm.slice(0, s, std::min(n_train, s + batch));
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(mlp->forward(xtr.index({idx})), ytr.index({idx}));
      loss.backward();
      opt.step();
    }
  }
  torch::NoGradGuard ng;
  return accuracy(mlp->forward(xte).argmax(1), yte);
}

Tensor image_pseudo_factor(const Tensor& images, uint64_t seed, int64_t n_components, int64_t n_clusters) {
  Tensor x = f64(images).flatten(1);
  int64_t k = std::min({n_components, x.size(0), x.size(1)});
  auto p = pca(x, k);
  return kmeans(p.projected, std::min<int64_t>(n_clusters, x.size(0)), seed).labels;
}

double sap_score(const Tensor& z_in, const Tensor& pseudo, int64_t unit_size, uint64_t seed) {
  Tensor z = f64(z_in);
  const int64_t n = z.size(0), d = z.size(1);
  TORCH_CHECK(unit_size > 0 && d % unit_size == 0, "sap_score: D not divisible by unit size");
  const int64_t units = d / unit_size;
  TORCH_CHECK(units >= 2, "sap_score: needs at least 2 units");
  auto [train, test] = split_rows(n, seed);
  auto y = pseudo.to(torch::kInt64);
  auto classes = std::get<0>(torch::_unique(y));
  double sum = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < classes.size(0); ++c) {
    auto target = (y == classes[c]).to(torch::kInt64);
    if (target.index({train}).sum().item<int64_t>() == 0) continue;
    std::vector<double> accs;
    for (int64_t u = 0; u < units; ++u) {
      auto xu = z.slice(1, u * unit_size, (u + 1) * unit_size);
      auto xs = standardise_cols(xu, xu.index({train}));
      // Balanced class weights: unweighted least squares on a ~10%-positive target
      // never crosses the decision threshold from one unit, so every unit scored 0.5.
      auto clf = fit_ridge_classifier(xs.index({train}), target.index({train}), 2, 1.0, /*balanced=*/true);
      accs.push_back(balanced_accuracy(clf.predict(xs.index({test})), target.index({test})));
    }
    std::sort(accs.rbegin(), accs.rend());
    sum += accs[0] - accs[1];
    ++count;
  }
  return count ? sum / static_cast<double>(count) : 0.0;
}

namespace {

double factor_score(const Tensor& xs, const FactorLabels& f, const Tensor& train, const Tensor& test) {
  auto xtr = xs.index({train}), xte = xs.index({test});
  double s;
  if (f.categorical) {
    auto y = f.values.to(torch::kInt64);
    int64_t k = y.max().item<int64_t>() + 1;
    auto ytr = y.index({train});
    double p_major = torch::bincount(ytr, {}, k).max().item<double>() / static_cast<double>(ytr.size(0));
    auto clf = fit_lda(xtr, ytr, k);
    double acc = accuracy(clf.predict(xte), y.index({test}));
    s = p_major < 1 ? (acc - p_major) / (1 - p_major) : 0.0;
  } else {
    auto y = f64(f.values).unsqueeze(1);
    auto ridge = fit_ridge(xtr, y.index({train}));
    s = r2_score(ridge.predict(xte), y.index({test}));
  }
  return std::clamp(s, 0.0, 1.0);
}

// Factors that vary on the training rows (the others carry nothing to score).
std::vector<const FactorLabels*> varying(const std::vector<FactorLabels>& factors, const Tensor& rows) {
  std::vector<const FactorLabels*> out;
  for (const auto& f : factors)
    if (entropy(f.codes().index({rows})) > 1e-12) out.push_back(&f);
  return out;
}

}  // namespace

Tensor unit_factor_scores(const Tensor& z_in, int64_t unit_size, const std::vector<FactorLabels>& factors,
                          const Tensor& train, const Tensor& test) {
  Tensor z = f64(z_in);
  TORCH_CHECK(unit_size > 0 && z.size(1) % unit_size == 0, "unit_factor_scores: D not divisible by unit size");
  const int64_t units = z.size(1) / unit_size;
  Tensor out = torch::zeros({units, static_cast<int64_t>(factors.size())}, kF64);
  for (int64_t u = 0; u < units; ++u) {
    auto zu = z.slice(1, u * unit_size, (u + 1) * unit_size);
    auto xs = standardise_cols(zu, zu.index({train}));
    for (size_t c = 0; c < factors.size(); ++c)
      out[u][static_cast<int64_t>(c)] = factor_score(xs, factors[c], train, test);
  }
  return out;
}

double sap_factors(const Tensor& z, int64_t unit_size, const std::vector<FactorLabels>& factors, const Tensor& train,
                   const Tensor& test) {
  auto used = varying(factors, train);
  if (used.empty()) return 0.0;
  std::vector<FactorLabels> fs;
  for (auto* f : used) fs.push_back(*f);
  auto s = unit_factor_scores(z, unit_size, fs, train, test);  // [U, F]
  TORCH_CHECK(s.size(0) >= 2, "sap_factors: needs at least 2 units");
  auto top2 = std::get<0>(s.topk(2, 0));  // [2, F]
  return (top2[0] - top2[1]).mean().item<double>();
}

double factorvae_factors(const Tensor& z_in, int64_t unit_size, const std::vector<FactorLabels>& factors,
                         uint64_t seed, int64_t n_train_votes, int64_t n_eval_votes, int64_t batch) {
  Tensor z = f64(z_in);
  const int64_t n = z.size(0), d = z.size(1);
  TORCH_CHECK(unit_size > 0 && d % unit_size == 0, "factorvae_factors: D not divisible by unit size");
  const int64_t units = d / unit_size;
  auto sd = z.std(0, /*unbiased=*/false);
  auto active = sd >= 0.05;  // collapsed dimensions would always win the argmin
  if (active.sum().item<int64_t>() == 0) return 0.0;
  Tensor zn = z / sd.clamp_min(1e-12);
  // Rows sharing each factor's value (class id, or one of 20 bins of a continuous factor).
  std::vector<std::vector<int64_t>> code_of(factors.size());                       // [factor][row]
  std::vector<std::map<int64_t, std::vector<int64_t>>> rows_with(factors.size());  // [factor][code] -> rows
  std::vector<int64_t> usable;
  for (size_t k = 0; k < factors.size(); ++k) {
    auto codes = factors[k].codes().contiguous();
    code_of[k].assign(codes.data_ptr<int64_t>(), codes.data_ptr<int64_t>() + n);
    for (int64_t i = 0; i < n; ++i) rows_with[k][code_of[k][i]].push_back(i);
    bool repeats = false;  // some value shared by two rows (else no vote can fix this factor)
    for (const auto& kv : rows_with[k]) repeats = repeats || kv.second.size() >= 2;
    if (rows_with[k].size() >= 2 && repeats) usable.push_back(static_cast<int64_t>(k));
  }
  if (usable.empty()) return 0.0;
  std::mt19937_64 rng(seed);
  const int64_t votes = n_train_votes + n_eval_votes;
  std::vector<int64_t> idx, vote_factor;
  idx.reserve(votes * batch);
  while (static_cast<int64_t>(vote_factor.size()) < votes) {
    int64_t k = usable[std::uniform_int_distribution<size_t>(0, usable.size() - 1)(rng)];
    const auto& same = rows_with[k][code_of[k][std::uniform_int_distribution<int64_t>(0, n - 1)(rng)]];
    if (same.size() < 2) continue;  // a value seen once fixes nothing measurable
    std::uniform_int_distribution<size_t> pick(0, same.size() - 1);
    for (int64_t l = 0; l < batch; ++l) idx.push_back(same[pick(rng)]);
    vote_factor.push_back(k);
  }
  auto var = zn.index({torch::tensor(idx, torch::kInt64)}).view({votes, batch, d}).var(1, /*unbiased=*/false);
  // A unit's variance: mean over its active dimensions; a unit without any never wins.
  auto act = active.to(kF64);
  auto unit_act = act.view({units, unit_size}).sum(1);
  auto unit_var = (var * act).view({votes, units, unit_size}).sum(2) / unit_act.clamp_min(1);
  unit_var = torch::where(unit_act > 0, unit_var, torch::full_like(unit_var, std::numeric_limits<double>::infinity()));
  auto winner = unit_var.argmin(1);
  auto wa = winner.accessor<int64_t, 1>();
  // Majority-vote classifier unit -> factor on the training votes, accuracy on the others.
  std::vector<std::vector<int64_t>> counts(units, std::vector<int64_t>(factors.size(), 0));
  for (int64_t v = 0; v < n_train_votes; ++v) ++counts[wa[v]][vote_factor[v]];
  std::vector<int64_t> label(units, -1);
  for (int64_t u = 0; u < units; ++u) {
    int64_t best = 0;
    for (size_t k = 0; k < factors.size(); ++k)
      if (counts[u][k] > best) { best = counts[u][k]; label[u] = static_cast<int64_t>(k); }
  }
  int64_t right = 0;
  for (int64_t v = n_train_votes; v < votes; ++v) right += label[wa[v]] == vote_factor[v];
  return static_cast<double>(right) / static_cast<double>(std::max<int64_t>(1, n_eval_votes));
}

Readout linear_readout(const Tensor& z_in, const Tensor& y_in, const Tensor& train, const Tensor& test, double alpha) {
  Tensor z = f64(z_in), y = f64(y_in);
  if (y.dim() == 1) y = y.unsqueeze(1);
  Readout out;
  if (y.size(1) == 0) return out;
  auto xs = standardise_cols(z, z.index({train}));
  auto ridge = fit_ridge(xs.index({train}), y.index({train}), alpha);
  auto pred = ridge.predict(xs.index({test}));
  out.r2 = r2_score(pred, y.index({test}));
  out.rmse = std::sqrt(mse(pred, y.index({test})));
  return out;
}

// --------------------------------------------------------- neural responses

double r2_score(const Tensor& pred_in, const Tensor& target_in) {
  Tensor p = f64(pred_in), t = f64(target_in);
  auto ss_res = (t - p).pow(2).sum(0);
  auto ss_tot = (t - t.mean(0)).pow(2).sum(0);
  auto ok = ss_tot > 1e-12;
  if (ok.sum().item<int64_t>() == 0) return 0.0;
  return (1 - ss_res.masked_select(ok) / ss_tot.masked_select(ok)).mean().item<double>();
}

double mse(const Tensor& pred, const Tensor& target) { return (f64(pred) - f64(target)).pow(2).mean().item<double>(); }

double bits_per_spike(const Tensor& rate_in, const Tensor& counts_in, const Tensor& mean_rate_in) {
  Tensor r = f64(rate_in).clamp_min(1e-8), y = f64(counts_in), m = f64(mean_rate_in).clamp_min(1e-8).unsqueeze(0);
  double ll_model = (y * r.log() - r).sum().item<double>();
  double ll_mean = (y * m.log() - m.expand_as(y)).sum().item<double>();  // same [N, M] entries
  double spikes = y.sum().item<double>();
  if (spikes <= 0) return 0.0;
  return (ll_model - ll_mean) / (spikes * std::log(2.0));
}

// -------------------------------------------------------------- planted truth

const std::vector<std::string>& factor_roles() {
  static const std::vector<std::string> r = {"pose", "category", "identity", "position", "size"};
  return r;
}

GroupFactorMatrix group_factor_matrix(const Tensor& z_in, int64_t group_rank, const std::vector<FactorLabels>& factors,
                                      const Tensor& train, const Tensor& test) {
  Tensor z = f64(z_in);
  const int64_t g_count = z.size(1) / group_rank;
  GroupFactorMatrix m;
  for (const auto& role : factor_roles())
    for (const auto& f : factors)
      if (f.role == role) { m.roles.push_back(role); break; }
  m.scores = torch::zeros({g_count, static_cast<int64_t>(m.roles.size())}, kF64);
  for (int64_t g = 0; g < g_count; ++g) {
    auto zg = z.slice(1, g * group_rank, (g + 1) * group_rank);
    auto xs = standardise_cols(zg, zg.index({train}));
    for (size_t c = 0; c < m.roles.size(); ++c) {
      double sum = 0;
      int n = 0;
      for (const auto& f : factors) {
        if (f.role != m.roles[c]) continue;
        double s = factor_score(xs, f, train, test);
        sum += s;
        ++n;
      }
      m.scores[g][static_cast<int64_t>(c)] = n ? sum / n : 0.0;
    }
  }
  return m;
}

Recovery recovery_score(const GroupFactorMatrix& m, const std::vector<std::string>& planted) {
  Recovery out;
  std::vector<int64_t> cols;
  for (const auto& p : planted) {
    auto it = std::find(m.roles.begin(), m.roles.end(), p);
    if (it != m.roles.end()) cols.push_back(it - m.roles.begin());
  }
  if (cols.empty()) return out;
  const int64_t g_count = m.scores.size(0);
  auto s = m.scores.accessor<double, 2>();
  // Exhaustive search over injective assignments (G <= ~8, planted roles <= 5);
  // when there are more roles than groups, groups may repeat.
  const bool injective = static_cast<int64_t>(cols.size()) <= g_count;
  std::vector<int64_t> cur(cols.size(), 0), best;
  double best_sum = -1;
  std::function<void(size_t)> search = [&](size_t pos) {
    if (pos == cols.size()) {
      double sum = 0;
      for (size_t i = 0; i < cols.size(); ++i) sum += s[cur[i]][cols[i]];
      if (sum > best_sum) { best_sum = sum; best = cur; }
      return;
    }
    for (int64_t g = 0; g < g_count; ++g) {
      if (injective && std::find(cur.begin(), cur.begin() + pos, g) != cur.begin() + pos) continue;
      cur[pos] = g;
      search(pos + 1);
    }
  };
  search(0);
  double total = 0;
  for (size_t i = 0; i < cols.size(); ++i) {
    double other = 0;
    for (int64_t g = 0; g < g_count; ++g)
      if (g != best[i]) other = std::max(other, s[g][cols[i]]);
    total += std::clamp(s[best[i]][cols[i]] - other, 0.0, 1.0);
  }
  out.score = total / static_cast<double>(cols.size());
  out.assignment = best;
  return out;
}

}  // namespace migvis::metrics
