// A small, fully deterministic catalog for the results tests: both animals
// (a1, a2), the five VAE models x 3 seeds (a2 has no tcvae: a missing cell),
// an ablation over w_tc on a1, critic and eval jobs with the convention metric
// names, training curves and one synthesis grid PNG per animal.
#pragma once

#include <png.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "results/catalog.h"
#include "results/png.h"
#include "common/files.h"

namespace migvis::testing {

inline const std::vector<std::string> kDemoModels = {"vae", "beta_vae", "tcvae", "migvis", "migvis_unsup"};
inline const std::vector<std::string> kDemoFactors = {"pose", "category", "identity", "position", "size"};

// Writes a w x h 8-bit grayscale gradient PNG (the report copies it).
inline bool write_demo_png(const std::string& path, int w, int h) {
  FILE* fp = std::fopen(path.c_str(), "wb");
  if (!fp) return false;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_byte> row(w);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) row[x] = static_cast<png_byte>(((x / 8 + y / 8) % 2) ? 40 + (x * 200) / w : 230);
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return std::fclose(fp) == 0;
}

// Fills `cat` (kReadWrite). `root` is where job dirs (for the grid PNGs) go.
inline migvis::Status fill_demo_catalog(catalog::Catalog& cat, const std::filesystem::path& root) {
  using catalog::json;
  using catalog::JobRow;
  using catalog::JobStatus;
  using catalog::Value;
  std::vector<JobRow> rows;
  struct M {
    std::string job, name;
    double value;
    Value step;
  };
  std::vector<M> metrics;
  std::vector<std::vector<std::string>> artifacts;  // job, kind, path
  int n = 0;
  auto id = [&n] { return fmt::format("{:016x}", ++n); };
  auto vae = [&](const std::string& animal, const std::string& model, int seed, double w_tc) {
    JobRow r;
    r.job_id = id();
    r.hash = r.job_id + std::string(48, '0');
    r.sweep = "demo";
    r.stage = "vae";
    r.key = {{"animal", animal}, {"session", "pooled"}};
    r.params = {{"model", model}, {"w_tc", w_tc}, {"w_kl", 1.0}, {"w_guid", model == "migvis" ? 1.0 : 0.0},
                {"group_rank", 2}, {"groups", 4}};
    r.seed = seed;
    r.status = JobStatus::kDone;
    r.finished_at = fmt::format("2026-11-25T18:{:02d}:00Z", n % 60);
    rows.push_back(r);
    return r.job_id;
  };
  const std::vector<std::string> scalars = {"test_r2", "test_mse", "test_bits_per_spike", "mig", "mig_group",
                                            "factorvae", "factorvae_group", "sap", "sap_group"};
  for (std::string animal : {"a1", "a2"}) {
    double a_off = animal == "a1" ? 0.0 : 0.02;
    for (size_t mi = 0; mi < kDemoModels.size(); ++mi) {
      if (animal == "a2" && kDemoModels[mi] == "tcvae") continue;  // a missing cell
      for (int seed = 1; seed <= 3; ++seed) {
        std::string job = vae(animal, kDemoModels[mi], seed, kDemoModels[mi] == "vae" ? 0.0 : 1e-6);
        for (size_t k = 0; k < scalars.size(); ++k)
          metrics.push_back({job, scalars[k], 0.1 * (k + 1) + 0.05 * mi + 0.01 * seed + a_off, Value()});
        if (kDemoModels[mi] != "beta_vae") {  // beta_vae has no pose read-out: missing cells
          metrics.push_back({job, "pose_test_r2", 0.5 + 0.05 * mi + 0.01 * seed + a_off, Value()});
          metrics.push_back({job, "pose_test_rmse", 0.4 - 0.05 * mi + 0.01 * seed + a_off, Value()});
        }
        if (seed == 1)
          for (int step = 0; step <= 50; step += 10) {
            metrics.push_back({job, "train_loss", 5.0 - 0.05 * step - 0.2 * mi + a_off, Value(int64_t{step})});
            metrics.push_back({job, "test_loss", 5.2 - 0.04 * step - 0.2 * mi + a_off, Value(int64_t{step})});
          }
      }
    }
    // Ablation on a1 (and one value on a2): w_tc.
    for (double w_tc : {0.0, 1e-3})
      for (int seed = 1; seed <= 2; ++seed) {
        if (animal == "a2" && w_tc > 0) continue;
        std::string job = vae(animal, "migvis", seed, w_tc);
        for (size_t k = 0; k < scalars.size(); ++k)
          metrics.push_back({job, scalars[k], 0.1 * (k + 1) + (w_tc > 0 ? 0.3 : 0.2) + 0.01 * seed + a_off, Value()});
      }
    // Critic + eval per seed; synthesis with a grid.
    for (int seed = 1; seed <= 2; ++seed) {
      JobRow e;
      e.job_id = id();
      e.hash = e.job_id;
      e.sweep = "demo";
      e.stage = "eval";
      e.key = {{"animal", animal}, {"session", "pooled"}};
      e.params = {{"gammas", json::array({1, 10, 100})}};
      e.seed = seed;
      e.status = JobStatus::kDone;
      if (seed == 1) {
        // Two labelled pair figures (as the eval stage writes them) with captions.
        e.dir = (root / "jobs/eval" / e.job_id).string();
        std::filesystem::create_directories(e.dir);
        for (int pair = 0; pair < 2; ++pair) {
          migvis::png::PairFigure fig;
          fig.cell_px = 16;
          fig.source.resize(16 * 16);
          fig.target.resize(16 * 16);
          for (int i = 0; i < 16 * 16; ++i) {
            fig.source[i] = (i % 16) / 15.f;
            fig.target[i] = (i / 16) / 15.f;
          }
          fig.rows = {"group 1: pose", "group 2: category", "group 3: identity", "group 4: position"};
          fig.columns = {"g=1", "g=10", "g=100"};
          for (int c = 0; c < 12; ++c)
            for (int i = 0; i < 16 * 16; ++i) fig.cells.push_back(0.5f + 0.4f * std::sin(0.3f * i + c + pair));
          fig.title = fmt::format("pair {}: source {} target {}", pair, 3 + pair, 40 + pair);
          MIGVIS_RETURN_IF_ERROR(migvis::png::write_pair_figure(e.dir + fmt::format("/figure_pair{}.png", pair), fig, 4));
          MIGVIS_RETURN_IF_ERROR(migvis::write_file_atomic(
              e.dir + fmt::format("/figure_pair{}.json", pair),
              fmt::format("{{\"pair\": {}, \"source\": {}, \"target\": {}, \"rows\": [\"group 1: pose\", "
                          "\"group 2: category\", \"group 3: identity\", \"group 4: position\"], \"gammas\": [1, 10, 100]}}\n",
                          pair, 3 + pair, 40 + pair)));
          artifacts.push_back({e.job_id, "figure", fmt::format("figure_pair{}.png", pair)});
        }
      }
      rows.push_back(e);
      for (int g = 1; g <= 4; ++g)
        for (size_t f = 0; f < kDemoFactors.size(); ++f) {
          // Group g moves factor g-1 toward the target most (transfer; table 2
          // uses it), though it changes factor g (mod 5) most.
          double t = (static_cast<int>(f) == g - 1 ? 0.6 : 0.05) + 0.01 * f + 0.02 * seed + a_off;
          double v = (static_cast<int>(f) == g % 5 ? 0.8 : 0.1) + 0.01 * f + 0.02 * seed + a_off;
          // a2's size is unreadable by the judge: no numbers, an unread mark.
          if (animal == "a2" && kDemoFactors[f] == std::string("size")) continue;
          metrics.push_back({e.job_id, fmt::format("transfer.g{}.{}", g, kDemoFactors[f]), t, Value()});
          metrics.push_back({e.job_id, fmt::format("change.g{}.{}", g, kDemoFactors[f]), v, Value()});
          metrics.push_back({e.job_id, fmt::format("slope.g{}.{}", g, kDemoFactors[f]), v / 100, Value()});
        }
      for (size_t f = 0; f < kDemoFactors.size(); ++f) {
        const bool unread = animal == "a2" && kDemoFactors[f] == std::string("size");
        metrics.push_back({e.job_id, fmt::format("judge.{}", kDemoFactors[f]), unread ? 0.05 : 0.9 - 0.1 * f, Value()});
        if (unread) metrics.push_back({e.job_id, "unread.size", 0.05, Value()});
      }
      for (double gamma : {1.0, 10.0, 100.0}) {
        metrics.push_back({e.job_id, fmt::format("mi.gamma{:g}", gamma), 0.5 * std::log10(gamma) + 0.1 * seed + a_off, Value()});
        metrics.push_back(
            {e.job_id, fmt::format("guided_change.gamma{:g}", gamma), 0.2 * std::log10(gamma) + 0.05 * seed, Value()});
        metrics.push_back(
            {e.job_id, fmt::format("guided_transfer.gamma{:g}", gamma), 0.1 * std::log10(gamma) + 0.03 * seed, Value()});
        metrics.push_back({e.job_id, fmt::format("quality.gamma{:g}", gamma), 1.0 + 0.1 * gamma / 10 + a_off, Value()});
      }
    }
    JobRow s;
    s.job_id = id();
    s.hash = s.job_id;
    s.sweep = "demo";
    s.stage = "synthesis";
    s.key = {{"animal", animal}, {"session", "pooled"}};
    s.status = JobStatus::kDone;
    s.dir = (root / "jobs/synthesis" / s.job_id).string();
    std::filesystem::create_directories(s.dir);
    if (!write_demo_png(s.dir + "/grid_pair0.png", 160, 96))
      return migvis::Status::Internal("cannot write demo PNG in " + s.dir);
    rows.push_back(s);
    artifacts.push_back({s.job_id, "grid", "grid_pair0.png"});
  }
  // A failed job: it must not count anywhere.
  std::string failed = vae("a1", "vae", 9, 0.0);
  rows.back().status = JobStatus::kFailed;
  metrics.push_back({failed, "test_r2", -5.0, Value()});

  MIGVIS_RETURN_IF_ERROR(cat.upsert_jobs(rows));
  MIGVIS_RETURN_IF_ERROR(cat.query("BEGIN").status());
  for (auto& m : metrics) {
    auto r = cat.query("INSERT INTO metrics (job_id, name, step, value) VALUES (?,?,?,?)",
                       {m.job, m.name, m.step, m.value});
    if (!r.ok()) return r.status();
  }
  for (auto& a : artifacts) {
    auto r = cat.query("INSERT INTO artifacts (job_id, kind, path) VALUES (?,?,?)", {a[0], a[1], a[2]});
    if (!r.ok()) return r.status();
  }
  return cat.query("COMMIT").status();
}

// A catalog shaped like a real multi-stage sweep, for the table-identity tests
// (tests/results/tables_test.cc). Every job carries its upstream chain: vae ->
// data; critic -> vae; synthesis -> critic + diffusion; eval -> synthesis. Half
// of the rows name only their direct inputs (as `results ingest` records them,
// with input names such as `dataset`), the other half every ancestor by stage
// (as the sweep recorder does).
class ChainCatalog {
 public:
  using json = catalog::json;
  using JobRow = catalog::JobRow;
  using Value = catalog::Value;

  std::string add(const std::string& stage, json key, json params, std::optional<int64_t> seed, json upstream,
                  catalog::JobStatus status = catalog::JobStatus::kDone, const std::string& note = "") {
    JobRow r;
    r.job_id = fmt::format("{:016x}", 0x100 + rows.size());
    r.hash = r.job_id;
    r.sweep = "chain";
    r.stage = stage;
    r.key = std::move(key);
    r.params = std::move(params);
    r.seed = seed;
    r.status = status;
    r.upstream = std::move(upstream);
    r.note = note;
    rows.push_back(r);
    return r.job_id;
  }
  // Sets (or replaces) a scalar metric.
  void metric(const std::string& job, const std::string& name, Value v) {
    for (auto& m : metrics)
      if (m.job == job && m.name == name) {
        m.value = v;
        return;
      }
    metrics.push_back({job, name, v});
  }

  // VAE scalars: 0.1 (k+1) + 0.05 model + 0.01 session + 0.001 seed + animal + extra.
  void vae_metrics(const std::string& job, int model, int session, int64_t seed, double a_off, double extra) {
    static const std::vector<std::string> scalars = {
        "test_r2",     "test_mse",          "test_bits_per_spike", "mig",          "mig_group",
        "factorvae",   "factorvae_group",   "sap",                 "sap_group",    "pose_test_r2",
        "pose_test_rmse", "sap_factors",    "sap_factors_group",   "factorvae_factors", "factorvae_factors_group"};
    for (size_t k = 0; k < scalars.size(); ++k)
      metric(job, scalars[k], 0.1 * (k + 1) + 0.05 * model + 0.01 * session + 0.001 * seed + a_off + extra);
  }

  // An eval chain on `vae`: critic, synthesis (with `diffusion`), eval. `recorded`:
  // upstream lists every ancestor by stage; else only the direct inputs.
  // Eval metrics: group g moves factor g-1 (transfer `diag`, else 0.05) plus `off`.
  std::string eval_chain(const std::string& data, const std::string& diffusion, const std::string& vae,
                         const json& key, int64_t seed, bool recorded, double diag, double off,
                         catalog::JobStatus eval_status = catalog::JobStatus::kDone, const std::string& note = "") {
    std::string critic = add("critic", key, {{"epochs", 30}}, seed,
                             recorded ? json{{"data", data}, {"vae", vae}} : json{{"dataset", data}, {"vae", vae}});
    std::string synth = add("synthesis", key, {{"gammas", json::array({0, 10})}, {"pairs", 32}}, seed,
                            recorded ? json{{"data", data}, {"vae", vae}, {"critic", critic}, {"diffusion", diffusion}}
                                     : json{{"dataset", data}, {"critic", critic}, {"diffusion", diffusion}});
    std::string eval = add("eval", key, {{"epochs", 40}, {"report_gamma", 10}}, seed,
                           recorded ? json{{"data", data}, {"vae", vae}, {"critic", critic}, {"diffusion", diffusion},
                                           {"synthesis", synth}}
                                    : json{{"dataset", data}, {"synthesis", synth}},
                           eval_status, note);
    if (eval_status != catalog::JobStatus::kDone) return eval;
    for (int g = 1; g <= 2; ++g)
      for (size_t f = 0; f < kDemoFactors.size(); ++f)
        metric(eval, fmt::format("transfer.g{}.{}", g, kDemoFactors[f]),
               (static_cast<int>(f) == g - 1 ? diag : 0.05) + 0.01 * f + off);
    for (double gamma : {0.0, 10.0}) {
      metric(eval, fmt::format("mi.gamma{:g}", gamma), 0.05 * gamma + off);
      metric(eval, fmt::format("guided_change.gamma{:g}", gamma), 0.02 * gamma + off);
      metric(eval, fmt::format("guided_transfer.gamma{:g}", gamma), diag * gamma / 10 + off);
      metric(eval, fmt::format("quality.gamma{:g}", gamma), 1.0 + 0.01 * gamma + off);
    }
    return eval;
  }

  // The second judge's metrics, as the eval stage writes them: pixel.transfer
  // (diagonal 0.5, else 0), each judge's read-out score (CNN 0.9 - 0.1 f, pixel
  // 0.1 lower) and their agreement (0.5 + 0.1 f). `pixel_unread_size`: the pixel
  // judge cannot read size (pixel.unread.size; no pixel.transfer.*.size and no
  // agreement.size).
  void judge_metrics(const std::string& eval, bool pixel_unread_size, double off) {
    for (size_t f = 0; f < kDemoFactors.size(); ++f) {
      const bool unread = pixel_unread_size && kDemoFactors[f] == std::string("size");
      metric(eval, fmt::format("judge.{}", kDemoFactors[f]), 0.9 - 0.1 * f);
      metric(eval, fmt::format("pixel.judge.{}", kDemoFactors[f]), unread ? 0.02 : 0.8 - 0.1 * f);
      if (unread) {
        metric(eval, "pixel.unread.size", 0.02);
        continue;
      }
      metric(eval, fmt::format("agreement.{}", kDemoFactors[f]), 0.5 + 0.1 * f);
      for (int g = 1; g <= 2; ++g)
        metric(eval, fmt::format("pixel.transfer.g{}.{}", g, kDemoFactors[f]),
               (static_cast<int>(f) == g - 1 ? 0.5 : 0.0) + 0.01 * f + off);
    }
  }

  migvis::Status write(catalog::Catalog& cat) const {
    MIGVIS_RETURN_IF_ERROR(cat.upsert_jobs(rows));
    MIGVIS_RETURN_IF_ERROR(cat.query("BEGIN").status());
    for (auto& m : metrics) {
      auto r = cat.query("INSERT INTO metrics (job_id, name, step, value) VALUES (?,?,NULL,?)", {m.job, m.name, m.value});
      if (!r.ok()) return r.status();
    }
    return cat.query("COMMIT").status();
  }

  std::vector<JobRow> rows;
  struct M {
    std::string job, name;
    Value value;
  };
  std::vector<M> metrics;
};

inline catalog::json demo_vae_params(const std::string& model, double w_tc = 1e-6, double w_kl = 1.0) {
  return {{"model", model}, {"w_tc", w_tc}, {"w_kl", w_kl}, {"w_guid", 1.0}, {"group_rank", 2}, {"groups", 2}};
}

// Dataset `default`; both animals; vae, migvis and migvis_unsup on sessions
// s1..s3 (seed 1) plus migvis on the pooled sessions (seeds 1, 2); a1's vae
// has a failed seed-2 job on s2; a2's migvis gave a NaN `sap` on s3; a1 holds
// one-at-a-time migvis ablations (w_tc 0 and 1e-3, w_kl 0.5 and 2: seeds 1, 2 on
// s1) and one that changes w_tc and w_kl together. Eval chains on the s1 and
// s2 VAEs of migvis (transfer on the diagonal 0.6) and migvis_unsup (0.2);
// a1's migvis chain on s3 ends in a failed eval. The migvis evals also report
// the pixel judge, read-out scores and agreement (judge_metrics); the pixel
// judge cannot read size on a2 (both sessions) and on a1's s1.
inline migvis::Status fill_chain_catalog(catalog::Catalog& cat) {
  using catalog::json;
  using catalog::JobStatus;
  ChainCatalog c;
  std::string data = c.add("data", {{"dataset", "default"}}, {{"preset", "default"}, {"seed", 7}}, 77, json::object());
  std::string diffusion = c.add("diffusion", json::object(), {{"steps", 600}}, 5, {{"dataset", data}});
  const std::vector<std::string> models = {"vae", "migvis", "migvis_unsup"};
  for (std::string animal : {"a1", "a2"}) {
    double a_off = animal == "a1" ? 0.0 : 0.5;
    for (size_t mi = 0; mi < models.size(); ++mi) {
      for (int s = 1; s <= 3; ++s) {
        json key = {{"animal", animal}, {"session", fmt::format("s{}", s)}};
        std::string v = c.add("vae", key, demo_vae_params(models[mi]), 1, {{"dataset", data}});
        c.vae_metrics(v, static_cast<int>(mi), s, 1, a_off, 0);
        if (animal == "a2" && models[mi] == "migvis" && s == 3) c.metric(v, "sap", std::nan(""));
        if (animal == "a1" && models[mi] == "vae" && s == 2)
          c.add("vae", key, demo_vae_params(models[mi]), 2, {{"dataset", data}}, JobStatus::kFailed,
                "loss is NaN at epoch 3");
        if (models[mi] != "vae" && s <= 2) {
          std::string e = c.eval_chain(data, diffusion, v, key, 1, models[mi] == "migvis_unsup",
                                       models[mi] == "migvis" ? 0.6 : 0.2, 0.02 * s + a_off);
          if (models[mi] == "migvis") c.judge_metrics(e, animal == "a2" || s == 1, 0.02 * s + a_off);
        }
        if (animal == "a1" && models[mi] == "migvis" && s == 3)
          c.eval_chain(data, diffusion, v, key, 1, false, 0.6, 0, JobStatus::kFailed, "read-out did not converge");
      }
      if (models[mi] == "migvis")
        for (int seed = 1; seed <= 2; ++seed) {
          std::string v = c.add("vae", {{"animal", animal}, {"session", "pooled"}}, demo_vae_params("migvis"), seed,
                                {{"data", data}});
          c.vae_metrics(v, static_cast<int>(mi), 0, seed, a_off, 0.3);
        }
    }
    if (animal == "a1") {
      json key = {{"animal", animal}, {"session", "s1"}};
      for (auto [w_tc, w_kl, extra] : std::vector<std::tuple<double, double, double>>{
               {0.0, 1.0, 0.1}, {1e-3, 1.0, 0.2}, {1e-6, 0.5, -0.1}, {1e-6, 2.0, -0.2}, {1e-3, 0.5, 5.0}})
        for (int seed = 1; seed <= (extra == 5.0 || w_kl == 2.0 ? 1 : 2); ++seed) {
          std::string v = c.add("vae", key, demo_vae_params("migvis", w_tc, w_kl), seed, {{"dataset", data}});
          c.vae_metrics(v, 1, 1, seed, a_off, extra);
        }
    }
  }
  return c.write(cat);
}

// Two datasets under one root, both with animals a1 and a2 (presets default
// and paper): migvis on s1..s3 of each, and an eval chain on each s1 VAE.
// Values on `paper` are 1 higher.
inline migvis::Status fill_two_dataset_catalog(catalog::Catalog& cat) {
  using catalog::json;
  ChainCatalog c;
  for (std::string preset : {"default", "paper"}) {
    double d_off = preset == "paper" ? 1.0 : 0.0;
    std::string data = c.add("data", {{"dataset", preset}}, {{"preset", preset}, {"seed", 7}}, 7, json::object());
    std::string diffusion = c.add("diffusion", json::object(), {{"steps", 600}}, 5, {{"data", data}});
    for (std::string animal : {"a1", "a2"})
      for (int s = 1; s <= 3; ++s) {
        json key = {{"animal", animal}, {"session", fmt::format("s{}", s)}};
        std::string v = c.add("vae", key, demo_vae_params("migvis"), 1, {{"data", data}});
        c.vae_metrics(v, 0, s, 1, 0, d_off);
        if (s == 1) c.eval_chain(data, diffusion, v, key, 1, preset == "paper", 0.6, d_off);
      }
  }
  return c.write(cat);
}

}  // namespace migvis::testing
