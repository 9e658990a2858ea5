// bench_vae_tc: what the group-TC weight does, measured. Trains the vae stage
// (worker/stages/vae.cc, the code a sweep runs) on the `default` synthetic preset
// (one animal, one session) for each w_tc x seed, plus the plain VAE, and
// prints mean +- std over seeds of: the TC term's share of the gradient norm,
// the planted-truth R^2 matrix rows of the unsupervised groups 3-4 (planted:
// identity -> g3, position -> g4), recovery, group MIG and reconstruction R^2.
// With --json FILE, writes every run's metrics as JSON.
//
//   build/bench/bench_vae_tc [--w-tc 0 --w-tc 0.01 ...] [--seeds 3] [--epochs 60] [--json out.json]
#include <cmath>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "orchestrator/data/synth.h"
#include "results/dataset_io.h"
#include "schemas/job_spec.h"
#include "worker/comm.h"
#include "worker/stages/vae.h"

namespace {

using namespace migvis;

Result<std::map<std::string, double>> train(const fs::path& ds, const fs::path& dir, const std::string& model,
                                            double w_tc, uint64_t seed, int epochs) {
  schema::JobSpec s;
  s.job_id = fmt::format("tc{:014d}", seed);
  s.stage = "vae";
  s.key = {{"animal", "a1"}, {"session", "s1"}};
  s.seed = seed;
  s.inputs = {{"dataset", ds.string()}};
  // The quick start's VAE settings (sweeps/quickstart.yaml) except w_tc.
  s.params = YAML::Load(fmt::format("{{epochs: {}, eval_every: 5, batch: 64, lr: 0.001, w_guid: 1.0, eval_pairs: 4000}}",
                                    epochs));
  s.params["model"] = model;
  s.params["w_tc"] = w_tc;
  schema::JobResult result;
  worker::SingleProcessCommunicator comm;
  worker::StageContext ctx;
  ctx.spec = s;
  ctx.dir = dir;
  ctx.comm = &comm;
  ctx.result = &result;
  fs::create_directories(dir);
  MIGVIS_RETURN_IF_ERROR(worker::run_vae_stage(ctx));
  return result.metrics;
}

std::string mean_std(const std::vector<double>& v) {
  double m = 0, s2 = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s2 += (x - m) * (x - m);
  const double sd = v.size() > 1 ? std::sqrt(s2 / static_cast<double>(v.size() - 1)) : 0.0;
  return fmt::format("{:.3f}±{:.3f}", m, sd);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_vae_tc: the group-TC weight's effect on the default synthetic preset"};
  std::vector<double> weights = {0.0, 1e-3, 1e-2, 3e-2, 1e-1, 1.0};
  int n_seeds = 3, epochs = 60;
  uint64_t data_seed = 3;
  std::string json_path, work = "bench_vae_tc.work";
  app.add_option("--w-tc", weights, "group-TC weights of the migvis model");
  app.add_option("--seeds", n_seeds, "VAE seeds per weight (2024, 2025, ...)");
  app.add_option("--epochs", epochs, "VAE epochs");
  app.add_option("--data-seed", data_seed, "seed of the synthetic dataset");
  app.add_option("--work", work, "scratch directory (removed at the end)");
  app.add_option("--json", json_path, "write every run's metrics as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  data::SynthOptions so;
  so.preset = "default";
  so.seed = data_seed;
  so.animals = 1;
  so.sessions_per_animal = 1;
  auto ds = data::synthesize(so);
  if (!ds.ok()) {
    std::cerr << ds.status().to_string() << "\n";
    return 1;
  }
  fs::create_directories(work);
  const fs::path ds_path = fs::path(work) / "dataset.h5";
  if (Status st = data::write_dataset(*ds, ds_path); !st.ok()) {
    std::cerr << st.to_string() << "\n";
    return 1;
  }
  const std::vector<std::string> roles = {"pose", "category", "identity", "position"};
  std::vector<std::pair<std::string, double>> configs = {{"vae", 0.0}};
  for (double w : weights) configs.push_back({"migvis", w});
  nlohmann::json runs = nlohmann::json::array();
  std::cout << fmt::format("{:<8} {:>7} | {:>12} | {:>12} {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12}\n",
                           "model", "w_tc", "tc_share", "g3.identity", "g3.position", "g4.identity", "g4.position",
                           "best.ident", "best.posit", "g1.pose", "g2.categ", "recovery", "mig_group", "test_r2");
  for (const auto& [model, w] : configs) {
    std::map<std::string, std::vector<double>> acc;
    for (int k = 0; k < n_seeds; ++k) {
      const uint64_t seed = 2024 + static_cast<uint64_t>(k);
      auto m = train(ds_path, fs::path(work) / fmt::format("{}_{}_{}", model, w, seed), model, w, seed, epochs);
      if (!m.ok()) {
        std::cerr << m.status().to_string() << "\n";
        return 1;
      }
      auto& mm = *m;
      // The best group for each unsupervised factor, whichever group it is.
      for (const char* role : {"identity", "position"}) {
        double best = 0;
        for (int g = 1; g <= 4; ++g) best = std::max(best, mm[fmt::format("truth.g{}.{}", g, role)]);
        mm[fmt::format("best.{}", role)] = best;
      }
      for (auto& [key, v] : mm) acc[key].push_back(v);
      runs.push_back({{"model", model}, {"w_tc", w}, {"seed", seed}, {"metrics", mm}});
    }
    auto cell = [&](const std::string& k) { return acc.count(k) ? mean_std(acc[k]) : std::string("n/a"); };
    std::cout << fmt::format("{:<8} {:>7g} | {:>12} | {:>12} {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12} {:>12} | {:>12} {:>12} {:>12}\n",
                             model, w, cell("tc_grad_share"), cell("truth.g3.identity"), cell("truth.g3.position"),
                             cell("truth.g4.identity"), cell("truth.g4.position"), cell("best.identity"),
                             cell("best.position"), cell("truth.g1.pose"), cell("truth.g2.category"), cell("recovery"),
                             cell("mig_group"), cell("test_r2"))
              << std::flush;
  }
  fs::remove_all(work);
  if (!json_path.empty()) {
    nlohmann::json doc = {{"bench", "bench_vae_tc"}, {"preset", "default"}, {"data_seed", data_seed},
                          {"epochs", epochs}, {"runs", runs}};
    if (Status st = write_file_atomic(json_path, doc.dump(2) + "\n"); !st.ok()) {
      std::cerr << st.to_string() << "\n";
      return 1;
    }
  }
  return 0;
}
