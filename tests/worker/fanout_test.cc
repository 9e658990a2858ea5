// Several jobs in one mpirun allocation fan out over the ranks (label mpi).
#include <gtest/gtest.h>

#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

TEST(WorkerFanoutTest, EveryJobRunsOnceAcrossTwoRanks) {
  migvis::testing::TempDir tmp;
  std::string args;
  for (int i = 0; i < 3; ++i) {
    schema::JobSpec s;
    s.job_id = "00000000000000f" + std::to_string(i);
    s.stage = "no-such-stage";  // fails fast and deterministically, writing result.yaml
    fs::path d = tmp / ("job" + std::to_string(i));
    ASSERT_TRUE(schema::write_job_spec(s, d).ok());
    args += " --job " + d.string();
  }
  auto r = migvis::testing::run_command("mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 " +
                                        migvis::testing::worker_bin() + args);
  EXPECT_NE(r.exit_code, 0) << r.output;
  for (int i = 0; i < 3; ++i) {
    auto res = schema::read_job_result(tmp / ("job" + std::to_string(i)));
    ASSERT_TRUE(res.ok()) << "job " << i << " did not run: " << r.output;
    EXPECT_EQ(res->job_id, "00000000000000f" + std::to_string(i));
    EXPECT_EQ(res->layout.at("ranks"), "1") << "fan-out jobs run on one rank each";
  }
  // Each job logs once: no job ran on both ranks.
  for (int i = 0; i < 3; ++i) {
    std::string id = "00000000000000f" + std::to_string(i);
    size_t count = 0;
    for (size_t pos = r.output.find("job " + id + " stage"); pos != std::string::npos;
         pos = r.output.find("job " + id + " stage", pos + 1))
      ++count;
    EXPECT_EQ(count, 1u) << id << "\n" << r.output;
  }
}

}  // namespace
}  // namespace migvis

namespace migvis {
namespace {

// One diffusion job data-parallel over 2 ranks through the real worker: rank 0
// alone writes the job's files, and the result records the layout.
TEST(WorkerMpiTest, DiffusionJobTrainsDataParallelOverTwoRanks) {
  migvis::testing::TempDir tmp;
  auto synth = migvis::testing::run_command(migvis::testing::migvis_bin() + " data synth --preset tiny --seed 2 --out " +
                                            (tmp / "d.h5").string());
  ASSERT_EQ(synth.exit_code, 0) << synth.output;
  schema::JobSpec s;
  s.job_id = "00000000000000dd";
  s.stage = "diffusion";
  s.seed = 5;
  s.params = YAML::Load("{image_size: 16, width: 8, mults: [1, 2], attn_heads: 1, attn_dim_head: 8, timesteps: 10,"
                        " steps: 4, batch: 8, grad_accum: 1, sample_count: 2, checkpoint_every: 2}");
  s.inputs = {{"dataset", (tmp / "d.h5").string()}};
  s.resources.threads = 1;
  fs::path dir = tmp / "job";
  ASSERT_TRUE(schema::write_job_spec(s, dir).ok());
  auto r = migvis::testing::run_command("mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 " +
                                        migvis::testing::worker_bin() + " --job " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto res = schema::read_job_result(dir);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "ok");
  EXPECT_EQ(res->layout.at("ranks"), "2");
  EXPECT_EQ(res->layout.at("comm"), "mpi");
  EXPECT_TRUE(fs::exists(dir / "model.pt"));
  EXPECT_TRUE(fs::exists(dir / "out.h5"));
  for (auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "leftover temporary file " << e.path();
}

}  // namespace
}  // namespace migvis
