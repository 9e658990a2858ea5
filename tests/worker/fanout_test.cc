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
