#include "orchestrator/data/synth.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "common/hash.h"
#include "schemas/dataset_names.h"

namespace migvis::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Random numbers whose sequence depends only on the seed: the engine is fully
// specified by the standard; the transforms below are ours (the standard
// library's distributions differ between implementations).
class Rng {
 public:
  explicit Rng(uint64_t seed) : eng_(seed) {}
  double uniform() { return static_cast<double>(eng_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  int uniform_int(int lo, int hi) {  // [lo, hi]
    return lo + static_cast<int>(std::floor(uniform() * (hi - lo + 1)));
  }
  double normal() {  // Box-Muller, both halves used
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - uniform();  // (0, 1]
    double u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * kPi * u2);
    has_spare_ = true;
    return r * std::cos(2 * kPi * u2);
  }
  // Poisson by inversion (sequential search of the CDF); exact for the means
  // used here (capped at 500, far above any planted rate).
  int poisson(double lambda) {
    lambda = std::min(std::max(lambda, 0.0), 500.0);
    if (lambda == 0) return 0;
    double u = uniform();
    int k = 0;
    double p = std::exp(-lambda), cdf = p;
    const int kmax = static_cast<int>(lambda * 10 + 100);
    while (u > cdf && k < kmax) {
      ++k;
      p *= lambda / k;
      cdf += p;
    }
    return k;
  }
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(uniform() * i)]);
  }

 private:
  std::mt19937_64 eng_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Independent streams for independent purposes, so e.g. changing the neuron
// range does not change the images.
// (splitmix64 adds the golden-ratio increment once more: tag + 1 of them.)
uint64_t stream_seed(uint64_t seed, uint64_t tag) { return splitmix64(seed + 0x9e3779b97f4a7c15ULL * tag); }

struct View {
  int category = 0, object = 0;  // object: index within the category
  double rxy_deg = 0, ryz_deg = 0, tx = 0, ty = 0, size = 0;
};

// Inside test for the shape families in object coordinates (radius ~1).
bool inside_family(int family, int param, double u, double v) {
  switch (family) {
    case 0: return u * u + v * v <= 1.0;                                        // disc
    case 1: { double e = 0.8 - 0.08 * param; return std::abs(u) <= 0.82 && std::abs(v) <= e; }  // box
    case 2: {                                                                    // triangle (regular n-gon, n = 3 + param)
      int n = 3 + param;
      double a = std::atan2(v, u) - kPi / 2, w = 2 * kPi / n;
      double r = std::sqrt(u * u + v * v);
      double m = std::fmod(a + 8 * kPi, w) - w / 2;
      return r <= std::cos(kPi / n) / std::cos(m);
    }
    case 3: {                                                                    // star, 5 + param points
      int n = 5 + param;
      double a = std::atan2(v, u), r = std::sqrt(u * u + v * v);
      double c = 0.5 + 0.5 * std::cos(n * a);
      return r <= 0.42 + 0.58 * c * c;
    }
    case 4: {                                                                    // cross
      double t = 0.28 + 0.05 * param;
      return (std::abs(u) <= t && std::abs(v) <= 0.95) || (std::abs(v) <= t && std::abs(u) <= 0.95);
    }
    case 5: {                                                                    // crescent
      double off = 0.45 + 0.1 * param;
      return u * u + v * v <= 1.0 && (u - off) * (u - off) + v * v > 0.72;
    }
    case 6:                                                                      // L shape
      return (u >= -0.9 && u <= -0.3 && std::abs(v) <= 0.9) || (std::abs(u) <= 0.9 && v >= 0.3 && v <= 0.9);
    case 7:                                                                      // bowtie
      return std::abs(u) <= std::abs(v) * (0.9 - 0.1 * param) + 0.12 && std::abs(v) <= 0.95 && std::abs(u) <= 0.95;
    // Families only an explicit `families` option selects (no preset uses them).
    case 8: {                                                                    // ring, thicker with param
      double r2 = u * u + v * v, in = 0.5 - 0.06 * param;
      return r2 <= 1.0 && r2 >= in * in;
    }
    case 9: {                                                                    // arrow pointing to +v
      double shaft = 0.2 + 0.04 * param;
      if (v >= -0.95 && v <= 0.15) return std::abs(u) <= shaft;
      return v > 0.15 && v <= 0.95 && std::abs(u) <= 0.85 * (0.95 - v) / 0.8;
    }
    case 10: {                                                                   // chevron (a V opening to -v)
      double w = 0.24 + 0.04 * param;
      return std::abs(u) <= 0.9 && std::abs(v - (0.55 - 0.95 * std::abs(u))) <= w;
    }
    case 11: {                                                                   // teardrop, point at +v
      if (u * u + (v + 0.3) * (v + 0.3) <= 0.42) return true;
      double half = 0.65 * (0.95 - v) / 1.25 + 0.02 * param;
      return v >= -0.3 && v <= 0.95 && std::abs(u) <= half;
    }
  }
  return false;
}

// Object intensity at object coordinate (u, v) or -1 outside the object.
double object_value(int family, int variant, double u, double v, double base) {
  const bool elongated = variant & 1, hole = variant & 2, stripes = variant & 4;
  const int param = variant >> 3;
  double vv = elongated ? v * 1.7 : v;
  if (!inside_family(family, param, u, vv)) return -1;
  if (hole && u * u + vv * vv < 0.12) return -1;
  // A darker cap at the object's +v end marks its orientation: without it most
  // families are rotationally symmetric (a disc entirely, a cross every 90 deg)
  // and the planted in-plane pose would be invisible in the image, as real
  // objects' pose is not.
  if (vv > 0.45) return base * 0.72;
  if (stripes && std::sin(u * kPi * 3.5) > 0) return base * 0.62;
  return base;
}

// Smooth value noise: bilinear interpolation of a random `cells` x `cells` grid.
std::vector<double> value_noise(Rng& rng, int cells) {
  std::vector<double> g(static_cast<size_t>(cells + 1) * (cells + 1));
  for (auto& x : g) x = rng.uniform(-1, 1);
  return g;
}
double sample_noise(const std::vector<double>& g, int cells, double x01, double y01) {
  double fx = x01 * cells, fy = y01 * cells;
  int ix = std::min(static_cast<int>(fx), cells - 1), iy = std::min(static_cast<int>(fy), cells - 1);
  double ax = fx - ix, ay = fy - iy;
  auto at = [&](int x, int y) { return g[static_cast<size_t>(y) * (cells + 1) + x]; };
  return (1 - ay) * ((1 - ax) * at(ix, iy) + ax * at(ix + 1, iy)) + ay * ((1 - ax) * at(ix, iy + 1) + ax * at(ix + 1, iy + 1));
}

struct ImageStats {
  double bg_min = 0.22, bg_max = 0.38, texture = 1.0, pixel_noise = 0.02;
};

// `family` indexes shape_family_names() (the view's category maps through the
// chosen families).
void render(const View& vw, int family, const ImageStats& st_opts, int size_px, Rng& rng, float* out) {
  const int ss = size_px <= 64 ? 4 : 2;  // supersampling factor per axis
  const double th = vw.rxy_deg * kPi / 180, ph = vw.ryz_deg * kPi / 180;
  const double ct = std::cos(th), st = std::sin(th), squash = std::cos(ph), shade = 0.35 * std::sin(ph);
  const double radius = vw.size;  // diameter as fraction of image = radius in [-1, 1] coordinates
  const double base = 0.72 + 0.26 * (((vw.object * 5 + vw.category * 3) % 7) / 6.0);
  auto coarse = value_noise(rng, 4), fine = value_noise(rng, 9);
  const double bg_mean = rng.uniform(st_opts.bg_min, st_opts.bg_max);
  const double tex = st_opts.texture;
  for (int py = 0; py < size_px; ++py) {
    for (int px = 0; px < size_px; ++px) {
      double acc = 0;
      for (int sy = 0; sy < ss; ++sy) {
        for (int sx = 0; sx < ss; ++sx) {
          double x = ((px + (sx + 0.5) / ss) / size_px) * 2 - 1;
          double y = ((py + (sy + 0.5) / ss) / size_px) * 2 - 1;
          double xo = x - 2 * vw.tx, yo = -(y - 2 * vw.ty);  // y up in object space
          double u = (ct * xo + st * yo) / radius, v = (-st * xo + ct * yo) / radius;
          u /= squash;  // out-of-plane rotation foreshortens the object's u axis
          double val = object_value(family, vw.object, u, v, base);
          if (val >= 0) {
            acc += std::clamp(val * (1 + shade * u), 0.0, 1.0);
          } else {
            double x01 = (x + 1) / 2, y01 = (y + 1) / 2;
            acc += bg_mean + tex * (0.12 * sample_noise(coarse, 4, x01, y01) + 0.06 * sample_noise(fine, 9, x01, y01));
          }
        }
      }
      double pix = acc / (ss * ss) + st_opts.pixel_noise * rng.normal();
      out[static_cast<size_t>(py) * size_px + px] = static_cast<float>(std::clamp(pix, 0.0, 1.0));
    }
  }
}

Status check_range(const char* name, int v, int lo, int hi) {
  if (v < lo || v > hi)
    return Status::InvalidArgument(fmt::format("synth option {}: expected {}..{}, got {}", name, lo, hi, v));
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>& shape_family_names() {
  static const std::vector<std::string> names = {"disc",     "box",    "triangle", "star", "cross",   "crescent",
                                                 "lshape",   "bowtie", "ring",     "arrow", "chevron", "teardrop"};
  return names;
}

Result<SynthOptions> resolve_synth_options(const SynthOptions& in) {
  SynthOptions p;
  p.preset = in.preset;
  p.seed = in.seed;
  p.animals = 2;
  p.sessions_per_animal = 3;
  p.repeats = 3;
  p.min_neurons = 60;
  p.max_neurons = 200;
  if (in.preset == "tiny") {
    p.image_size_px = 32;
    p.categories = 4;
    p.objects_per_category = 4;
    p.poses_per_object = 4;
    p.max_neurons = 120;
  } else if (in.preset == "default") {
    p.image_size_px = 32;
    p.categories = 8;
    p.objects_per_category = 4;
    p.poses_per_object = 16;
  } else if (in.preset == "paper") {
    p.image_size_px = 128;
    p.categories = 8;
    p.objects_per_category = 8;
    p.poses_per_object = 90;
  } else {
    return Status::InvalidArgument("synth option preset: expected tiny, default or paper, got '" + in.preset + "'");
  }
  auto over = [](int& dst, int v) { if (v > 0) dst = v; };
  p.families = in.families;
  if (!p.families.empty()) {
    const auto& known = shape_family_names();
    for (size_t i = 0; i < p.families.size(); ++i) {
      if (std::find(known.begin(), known.end(), p.families[i]) == known.end())
        return Status::InvalidArgument(fmt::format("synth option families: unknown family '{}' (expected some of: {})",
                                                   p.families[i], fmt::join(known, ", ")));
      if (std::find(p.families.begin(), p.families.begin() + i, p.families[i]) != p.families.begin() + i)
        return Status::InvalidArgument(fmt::format("synth option families: '{}' listed twice", p.families[i]));
    }
    if (in.categories > 0 && in.categories != static_cast<int>(p.families.size()))
      return Status::InvalidArgument(fmt::format("synth options: categories = {} but families lists {}", in.categories,
                                                 p.families.size()));
    p.categories = static_cast<int>(p.families.size());
  }
  auto over_d = [](double& dst, double v, double def) { dst = v >= 0 ? v : def; };
  over_d(p.background_min, in.background_min, 0.22);
  over_d(p.background_max, in.background_max, 0.38);
  over_d(p.background_texture, in.background_texture, 1.0);
  over_d(p.pixel_noise, in.pixel_noise, 0.02);
  over(p.image_size_px, in.image_size_px);
  over(p.categories, in.categories);
  over(p.objects_per_category, in.objects_per_category);
  over(p.poses_per_object, in.poses_per_object);
  over(p.animals, in.animals);
  over(p.sessions_per_animal, in.sessions_per_animal);
  over(p.min_neurons, in.min_neurons);
  over(p.max_neurons, in.max_neurons);
  over(p.repeats, in.repeats);
  MIGVIS_RETURN_IF_ERROR(check_range("image_size", p.image_size_px, 8, 512));
  MIGVIS_RETURN_IF_ERROR(check_range("categories", p.categories, 2, p.families.empty() ? 8 : 12));
  if (!(p.background_max <= 1.0 && p.background_min <= p.background_max))
    return Status::InvalidArgument(fmt::format(
        "synth options background_min, background_max: expected 0 <= min <= max <= 1, got {} and {}", p.background_min,
        p.background_max));
  if (p.background_texture > 4.0)
    return Status::InvalidArgument(fmt::format("synth option background_texture: expected 0..4, got {}", p.background_texture));
  if (p.pixel_noise > 0.5)
    return Status::InvalidArgument(fmt::format("synth option pixel_noise: expected 0..0.5, got {}", p.pixel_noise));
  MIGVIS_RETURN_IF_ERROR(check_range("objects_per_category", p.objects_per_category, 1, 16));
  MIGVIS_RETURN_IF_ERROR(check_range("poses_per_object", p.poses_per_object, 1, 10000));
  MIGVIS_RETURN_IF_ERROR(check_range("animals", p.animals, 1, 9));
  MIGVIS_RETURN_IF_ERROR(check_range("sessions_per_animal", p.sessions_per_animal, 1, 100));
  MIGVIS_RETURN_IF_ERROR(check_range("repeats", p.repeats, 1, 100));
  MIGVIS_RETURN_IF_ERROR(check_range("min_neurons", p.min_neurons, 1, 100000));
  MIGVIS_RETURN_IF_ERROR(check_range("max_neurons", p.max_neurons, p.min_neurons, 100000));
  if (p.max_neurons - p.min_neurons + 1 < p.sessions_per_animal)
    return Status::InvalidArgument(fmt::format(
        "synth options: {} sessions need {} distinct neuron counts but min_neurons..max_neurons = {}..{} has fewer",
        p.sessions_per_animal, p.sessions_per_animal, p.min_neurons, p.max_neurons));
  return p;
}

Result<Dataset> synthesize(const SynthOptions& opts) {
  MIGVIS_ASSIGN_OR_RETURN(SynthOptions o, resolve_synth_options(opts));
  const int n_cat = o.categories, n_obj = o.objects_per_category, n_pose = o.poses_per_object;
  const int n_img = n_cat * n_obj * n_pose, px = o.image_size_px;
  Dataset d;
  d.source = fmt::format("synth:{}:seed={}", o.preset, o.seed);
  d.description = fmt::format(
      "migvis synthetic IT experiment (preset {}): {} categories x {} objects x {} views, {}x{} px; {} animals x {} "
      "sessions, {}-{} neurons per session, {} repeats; planted latent groups pose|category|identity|position",
      o.preset, n_cat, n_obj, n_pose, px, px, o.animals, o.sessions_per_animal, o.min_neurons, o.max_neurons,
      o.repeats);
  if (!o.families.empty()) d.description += fmt::format("; shape families {}", fmt::join(o.families, ", "));
  if (o.background_min != 0.22 || o.background_max != 0.38 || o.background_texture != 1.0 || o.pixel_noise != 0.02)
    d.description += fmt::format("; background grey U[{}, {}], texture x{}, pixel noise sd {}", o.background_min,
                                 o.background_max, o.background_texture, o.pixel_noise);

  // ---- stimuli
  Rng view_rng(stream_seed(o.seed, 1)), pix_rng(stream_seed(o.seed, 2));
  std::vector<View> views;
  views.reserve(static_cast<size_t>(n_img));
  for (int c = 0; c < n_cat; ++c)
    for (int k = 0; k < n_obj; ++k)
      for (int p = 0; p < n_pose; ++p) {
        View v;
        v.category = c;
        v.object = k;
        v.rxy_deg = view_rng.uniform(-180, 180);
        v.ryz_deg = view_rng.uniform(-60, 60);
        v.tx = view_rng.uniform(-0.15, 0.15);
        v.ty = view_rng.uniform(-0.15, 0.15);
        v.size = view_rng.uniform(0.35, 0.6);
        views.push_back(v);
      }
  d.images = h5::Array<float>({static_cast<hsize_t>(n_img), 1, static_cast<hsize_t>(px), static_cast<hsize_t>(px)});
  // Category c draws family family_of[c] (the classic order unless `families`).
  const auto& all_families = shape_family_names();
  std::vector<int> family_of(static_cast<size_t>(n_cat));
  std::vector<std::string> fam(static_cast<size_t>(n_cat));
  for (int c = 0; c < n_cat; ++c) {
    family_of[c] = o.families.empty()
                       ? c
                       : static_cast<int>(std::find(all_families.begin(), all_families.end(), o.families[c]) -
                                          all_families.begin());
    fam[c] = all_families[family_of[c]];
  }
  const ImageStats stats{o.background_min, o.background_max, o.background_texture, o.pixel_noise};
  for (int i = 0; i < n_img; ++i) {
    const View& v = views[i];
    render(v, family_of[v.category], stats, px, pix_rng, d.images.data.data() + static_cast<size_t>(i) * px * px);
    d.stimulus_ids.push_back(fmt::format("{}{}_p{:03d}", fam[v.category], v.object, i % n_pose));
  }

  // ---- factors (schemas/dataset.md standard names)
  namespace names = schema::dataset;
  Factor cat{"category", FactorKind::kCategorical, names::kRoleCategory, {}, "", {}};
  Factor obj{"object", FactorKind::kCategorical, names::kRoleIdentity, {}, "", {}};
  for (int c = 0; c < n_cat; ++c) {
    cat.classes.push_back(fam[c]);
    for (int k = 0; k < n_obj; ++k) obj.classes.push_back(fmt::format("{}{}", fam[c], k));
  }
  auto cont = [&](const char* name, const char* role, const char* units, auto get) {
    Factor f{name, FactorKind::kContinuous, role, {}, units, {}};
    for (auto& v : views) f.values.push_back(static_cast<float>(get(v)));
    return f;
  };
  for (auto& v : views) {
    cat.values.push_back(static_cast<float>(v.category));
    obj.values.push_back(static_cast<float>(v.category * n_obj + v.object));
  }
  d.factors.push_back(std::move(cat));
  d.factors.push_back(std::move(obj));
  d.factors.push_back(cont("rxy", names::kRolePose, "deg", [](const View& v) { return v.rxy_deg; }));
  d.factors.push_back(cont("ryz", names::kRolePose, "deg", [](const View& v) { return v.ryz_deg; }));
  d.factors.push_back(cont("size", names::kRoleSize, "fraction_of_image", [](const View& v) { return v.size; }));
  d.factors.push_back(cont("tx", names::kRolePosition, "fraction_of_image", [](const View& v) { return v.tx; }));
  d.factors.push_back(cont("ty", names::kRolePosition, "fraction_of_image", [](const View& v) { return v.ty; }));

  // ---- planted latents: pose 3 | category 4 | identity 4 | position 3
  constexpr int kPoseDims = 3, kCatDims = 4, kIdDims = 4, kPosDims = 3;
  constexpr int kD = kPoseDims + kCatDims + kIdDims + kPosDims;
  Truth t;
  t.group_names = {"pose", "category", "identity", "position"};
  t.group_factor = {"pose", "category", "identity", "position"};
  const int group_start[5] = {0, kPoseDims, kPoseDims + kCatDims, kPoseDims + kCatDims + kIdDims, kD};
  for (int g = 0; g < 4; ++g)
    for (int j = group_start[g]; j < group_start[g + 1]; ++j) t.group_of_dim.push_back(g);
  Rng emb_rng(stream_seed(o.seed, 3));
  std::vector<double> cat_emb(static_cast<size_t>(n_cat) * kCatDims), obj_emb(static_cast<size_t>(n_cat) * n_obj * kIdDims);
  for (auto& x : cat_emb) x = emb_rng.normal();
  for (auto& x : obj_emb) x = emb_rng.normal();
  t.latents = h5::Array<float>({static_cast<hsize_t>(n_img), kD});
  const double sqrt2 = std::sqrt(2.0), sqrt3 = std::sqrt(3.0);
  for (int i = 0; i < n_img; ++i) {
    const View& v = views[i];
    float* z = t.latents.data.data() + static_cast<size_t>(i) * kD;
    double th = v.rxy_deg * kPi / 180;
    z[0] = static_cast<float>(sqrt2 * std::cos(th));
    z[1] = static_cast<float>(sqrt2 * std::sin(th));
    z[2] = static_cast<float>(v.ryz_deg / 60 * sqrt3);  // uniform [-60, 60] -> unit variance
    for (int j = 0; j < kCatDims; ++j) z[kPoseDims + j] = static_cast<float>(cat_emb[v.category * kCatDims + j]);
    const int oi = v.category * n_obj + v.object;
    for (int j = 0; j < kIdDims; ++j) z[kPoseDims + kCatDims + j] = static_cast<float>(obj_emb[oi * kIdDims + j]);
    z[11] = static_cast<float>(v.tx / 0.15 * sqrt3);
    z[12] = static_cast<float>(v.ty / 0.15 * sqrt3);
    z[13] = static_cast<float>((v.size - 0.475) / 0.125 * sqrt3);
  }

  // ---- animals, their populations and sessions
  Rng pop_rng(stream_seed(o.seed, 4)), sess_rng(stream_seed(o.seed, 5)), spike_rng(stream_seed(o.seed, 6));
  const int pop_size = o.max_neurons + o.max_neurons / 2;  // sessions sample (and overlap) from this
  for (int a = 0; a < o.animals; ++a) {
    const std::string animal = fmt::format("a{}", a + 1);
    Truth::AnimalTruth at;
    at.loadings = h5::Array<float>({static_cast<hsize_t>(pop_size), kD});
    std::vector<double> base(static_cast<size_t>(pop_size)), norm2(static_cast<size_t>(pop_size));
    for (int m = 0; m < pop_size; ++m) {
      at.neuron_ids.push_back(fmt::format("{}.n{:04d}", animal, m));
      const int g1 = pop_rng.uniform_int(0, 3);
      int g2 = -1;
      if (pop_rng.uniform() < 0.4) g2 = (g1 + pop_rng.uniform_int(1, 3)) % 4;
      float* l = at.loadings.data.data() + static_cast<size_t>(m) * kD;
      double ss = 0;
      for (int j = 0; j < kD; ++j) {
        int g = t.group_of_dim[j];
        double w = g == g1 ? pop_rng.normal() : (g == g2 ? 0.35 * pop_rng.normal() : 0.0);
        l[j] = static_cast<float>(w);
        ss += w * w;
      }
      const double gain = pop_rng.uniform(0.7, 1.1) / std::sqrt(std::max(ss, 1e-12));
      norm2[m] = 0;
      for (int j = 0; j < kD; ++j) {
        l[j] = static_cast<float>(l[j] * gain);
        norm2[m] += static_cast<double>(l[j]) * l[j];
      }
      base[m] = pop_rng.uniform(1.5, 6.0);  // mean count in the 100 ms window
    }
    // Expected count of every neuron for every image.
    std::vector<double> lambda(static_cast<size_t>(n_img) * pop_size);
    for (int i = 0; i < n_img; ++i) {
      const float* z = t.latents.data.data() + static_cast<size_t>(i) * kD;
      for (int m = 0; m < pop_size; ++m) {
        const float* l = at.loadings.data.data() + static_cast<size_t>(m) * kD;
        double dot = 0;
        for (int j = 0; j < kD; ++j) dot += static_cast<double>(l[j]) * z[j];
        lambda[static_cast<size_t>(i) * pop_size + m] = base[m] * std::exp(dot - norm2[m] / 2);
      }
    }
    // Distinct neuron counts: one per equal slice of the range, jittered inside it.
    const int n_sess = o.sessions_per_animal;
    std::vector<int> counts(static_cast<size_t>(n_sess));
    const double span = static_cast<double>(o.max_neurons - o.min_neurons + 1) / n_sess;
    for (int s = 0; s < n_sess; ++s) {
      int lo = o.min_neurons + static_cast<int>(std::ceil(s * span - 1e-9));
      int hi = o.min_neurons + static_cast<int>(std::ceil((s + 1) * span - 1e-9)) - 1;
      counts[s] = sess_rng.uniform_int(lo, std::max(lo, hi));
    }
    sess_rng.shuffle(counts);
    for (int s = 0; s < n_sess; ++s) {
      Session sess;
      sess.animal = animal;
      sess.name = fmt::format("s{}", s + 1);
      std::vector<int> pool(static_cast<size_t>(pop_size));
      std::iota(pool.begin(), pool.end(), 0);
      sess_rng.shuffle(pool);
      pool.resize(static_cast<size_t>(counts[s]));
      std::sort(pool.begin(), pool.end());
      for (int m : pool) sess.neuron_ids.push_back(at.neuron_ids[m]);
      std::vector<int32_t> order;
      for (int r = 0; r < o.repeats; ++r)
        for (int i = 0; i < n_img; ++i) order.push_back(i);
      sess_rng.shuffle(order);
      sess.image_index = order;
      const size_t mm = pool.size();
      sess.counts = h5::Array<float>({static_cast<hsize_t>(order.size()), static_cast<hsize_t>(mm)});
      for (size_t p = 0; p < order.size(); ++p)
        for (size_t j = 0; j < mm; ++j)
          sess.counts.data[p * mm + j] =
              static_cast<float>(spike_rng.poisson(lambda[static_cast<size_t>(order[p]) * pop_size + pool[j]]));
      sess.value_kind = "counts";
      sess.t_start_ms = 70;
      sess.t_stop_ms = 170;
      sess.region = "IT";
      d.sessions.push_back(std::move(sess));
    }
    t.animals[animal] = std::move(at);
  }
  d.truth = std::move(t);
  MIGVIS_RETURN_IF_ERROR(validate_dataset(d, "synth:" + o.preset));
  return d;
}

}  // namespace migvis::data
