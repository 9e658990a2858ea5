// Slow: supervision works (the MIG-Vis VAE puts the supervised pose in group 1
// and category in group 2, and beats the plain VAE on group-level
// disentanglement while its reconstruction R^2 stays close), and what the
// group-TC term does to the unsupervised groups 3-4 (bench/bench_vae_tc.cc,
// docs/METRICS.md).
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <iostream>

#include "orchestrator/data/synth.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"
#include "tests/worker/toy_dataset.h"
#include "worker/comm.h"
#include "worker/stages/vae.h"

namespace migvis::worker {
namespace {

std::map<std::string, double> train(const fs::path& ds, const fs::path& dir, const std::string& model,
                                    const std::string& params =
                                        "{epochs: 60, eval_every: 5, batch: 64, lr: 0.005, eval_pairs: 4000, w_guid: 1.0}") {
  schema::JobSpec s;
  s.job_id = "00000000000000s1";
  s.stage = "vae";
  s.key = {{"animal", "a1"}, {"session", "s1"}};
  s.seed = 2024;
  s.inputs = {{"dataset", ds.string()}};
  s.params = YAML::Load(params);
  s.params["model"] = model;
  schema::JobResult result;
  SingleProcessCommunicator comm;
  StageContext ctx;
  ctx.spec = s;
  ctx.dir = dir;
  ctx.comm = &comm;
  ctx.result = &result;
  Status st = run_vae_stage(ctx);
  EXPECT_TRUE(st.ok()) << st.to_string();
  std::string line = model + ":";
  for (auto& [k, v] : result.metrics) line += fmt::format(" {}={:.3f}", k, v);
  std::cout << line << std::endl;
  return result.metrics;
}

double best_group_of(std::map<std::string, double>& m, const std::string& role, int groups) {
  int best = 0;
  for (int g = 1; g <= groups; ++g)
    if (m[fmt::format("truth.g{}.{}", g, role)] > m[fmt::format("truth.g{}.{}", best ? best : 1, role)]) best = g;
  return best ? best : 1;
}

TEST(StageVaeSlowTest, SupervisionPutsPoseAndCategoryInTheirGroupsAndBeatsPlainVae) {
  migvis::testing::TempDir tmp;
  migvis::testing::ToyOptions o;
  o.n_images = 640;
  o.n_neurons = 48;
  ASSERT_TRUE(data::write_dataset(migvis::testing::make_toy_dataset(o), tmp / "d.h5").ok());
  auto mv = train(tmp / "d.h5", tmp / "migvis", "migvis");
  auto va = train(tmp / "d.h5", tmp / "vae", "vae");
  EXPECT_EQ(best_group_of(mv, "pose", 4), 1);
  EXPECT_EQ(best_group_of(mv, "category", 4), 2);
  EXPECT_GT(mv["recovery"], va["recovery"]);
  EXPECT_GT(mv["mig_group"], va["mig_group"]);
  EXPECT_GT(mv["test_r2"], va["test_r2"] - 0.1);
  EXPECT_GT(va["test_r2"], 0.2);
}

// The synthetic generator's default preset (one animal, one session): 512 images
// of 8 categories x 4 objects x 16 poses.
TEST(StageVaeSlowTest, SupervisionWorksOnTheDefaultSyntheticPreset) {
  migvis::testing::TempDir tmp;
  data::SynthOptions so;
  so.preset = "default";
  so.seed = 3;
  so.animals = 1;
  so.sessions_per_animal = 1;
  auto ds = data::synthesize(so);
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  ASSERT_TRUE(data::write_dataset(*ds, tmp / "d.h5").ok());
  auto mv = train(tmp / "d.h5", tmp / "migvis", "migvis");
  auto va = train(tmp / "d.h5", tmp / "vae", "vae");
  EXPECT_EQ(best_group_of(mv, "pose", 4), 1);
  EXPECT_EQ(best_group_of(mv, "category", 4), 2);
  EXPECT_GT(mv["recovery"], va["recovery"]);
  EXPECT_GT(mv["mig_group"], va["mig_group"]);
  EXPECT_GT(mv["test_r2"], va["test_r2"] - 0.1);
}

// What is not supervised. On the default preset (bench_vae_tc, 5 seeds) the
// group-TC term at the default weight drives the supervised factors out of the
// unsupervised groups 3-4: pose R^2 there falls from 0.34-0.48 (mean per group)
// to 0.02-0.04, category from 0.52-0.59 to 0.16-0.27; per seed, the mean of
// those four cells falls from >= 0.43 to <= 0.20. It does NOT make group 3
// carry identity or group 4 position (identity stays best read from group 2,
// position is spread over all groups), so nothing about that is asserted.
// Same settings as the measurement: data seed 3, VAE seed 2024, quick-start VAE.
TEST(StageVaeSlowTest, GroupTcDrivesSupervisedFactorsOutOfTheUnsupervisedGroups) {
  migvis::testing::TempDir tmp;
  data::SynthOptions so;
  so.preset = "default";
  so.seed = 3;
  so.animals = 1;
  so.sessions_per_animal = 1;
  auto ds = data::synthesize(so);
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  ASSERT_TRUE(data::write_dataset(*ds, tmp / "d.h5").ok());
  // Pose supervision as measured: the pose factors only (rxy as cos/sin, ryz).
  // With the reference's six labels (pose_factors default: size and position
  // supervised too) one seed gave a leak of 0.28 with TC vs 0.21 without, so
  // this claim is not made for that setting (closing note of this change).
  const std::string base =
      "{epochs: 60, eval_every: 5, batch: 64, lr: 0.001, eval_pairs: 4000, w_guid: 1.0, pose_factors: [rxy, ryz]";
  auto off = train(tmp / "d.h5", tmp / "tc0", "migvis", base + ", w_tc: 0}");
  auto on = train(tmp / "d.h5", tmp / "tc", "migvis", base + "}");  // the default w_tc
  EXPECT_GT(on["tc_grad_share"], 0.1);  // measured 0.37 +- 0.03: the term acts
  auto leak = [](std::map<std::string, double>& m) {
    return (m["truth.g3.pose"] + m["truth.g4.pose"] + m["truth.g3.category"] + m["truth.g4.category"]) / 4;
  };
  EXPECT_LT(leak(on), 0.5 * leak(off));
  EXPECT_LT(std::max(on["truth.g3.pose"], on["truth.g4.pose"]),
            0.5 * std::max(off["truth.g3.pose"], off["truth.g4.pose"]));
  // Supervision still works with TC on.
  EXPECT_EQ(best_group_of(on, "pose", 4), 1);
  EXPECT_EQ(best_group_of(on, "category", 4), 2);
}

}  // namespace
}  // namespace migvis::worker
