// The quick-start sweep (sweeps/quickstart.yaml, read from the source tree at
// test time) through a real single-node SLURM with the real migvis-worker:
// `sweep submit`, wait, `sweep status`, the catalog filled by the ingest jobs,
// and the paper tables for both animals. Label slurm; a long test (TIMEOUT 1500, run alone).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <regex>

#include <fmt/format.h>

#include "results/catalog.h"
#include "schemas/job_spec.h"
#include "tests/orchestrator/slurm/local_cluster.h"

namespace migvis::slurm {
namespace {

TEST_F(SlurmClusterTest, QuickstartSweepRunsEndToEndThroughSlurm) {
  std::error_code ec;
  const fs::path root = dir_->path() / "quickstart";
  // MIGVIS_SLURM_SWEEP: another sweep file, to check this test itself quickly.
  const char* other = std::getenv("MIGVIS_SLURM_SWEEP");
  const std::string sweep = other ? other : std::string(MIGVIS_SOURCE_DIR) + "/sweeps/quickstart.yaml";
  const std::string migvis = migvis::testing::migvis_bin();
  auto t0 = std::chrono::steady_clock::now();
  auto sub = migvis::testing::run_command("MIGVIS_WORKER=" + migvis::testing::worker_bin() + " " + migvis +
                                          " sweep submit " + sweep + " --root " + root.string());
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(sub.output, m, std::regex(R"(sweep (\w+): (\d+) jobs, 0 already complete)")))
      << sub.output;
  const std::string name = m[1];
  const int jobs = std::stoi(m[2]);
  SystemCommandRunner runner;
  // ctest's TIMEOUT is 1500 s for this process (cluster start included).
  const double budget = seconds_left(1500, 60);
  if (!wait_gone(&runner, {}, budget)) {
    std::string progress;
    for (auto& p : {"diffusion", "synthesis"})
      for (auto& job : fs::directory_iterator(root / "jobs" / p, ec))
        progress += job.path().string() + ": " + file_text(job.path() / "progress.yaml") + "\n";
    FAIL() << "the quick-start sweep was still queued after " << budget << " s (on a loaded 2-core machine the "
           << "2-thread diffusion stage slows down many times over):\n"
           << migvis::testing::run_command("squeue").output << progress;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s through SLURM: %d jobs in %.1f s (submit to empty queue)\n", name.c_str(), jobs, wall);
  RecordProperty("wall_s", std::to_string(wall));

  const std::string status = wait_status_settled(root, 30);
  EXPECT_NE(status.find(fmt::format("{} jobs: {} done, 0 running, 0 failed, 0 pending", jobs, jobs)), std::string::npos)
      << status;
  EXPECT_NE(status.find("every submitted job is done"), std::string::npos) << status;
  for (auto& stage : fs::directory_iterator(root / "jobs"))
    for (auto& job : fs::directory_iterator(stage.path())) {
      auto r = schema::read_job_result(job.path());
      if (!r.ok() || r->status != "ok")
        ADD_FAILURE() << job.path() << " did not finish:\n" << file_text(job.path() / "run.log");
    }
  // The ingest jobs filled the catalog (status ingests again, idempotently).
  auto q = migvis::testing::run_command(migvis + " results query --root " + root.string() +
                                        " --format csv \"SELECT stage, COUNT(*) FROM jobs WHERE status = 'done' "
                                        "AND sweep = '" + name + "' GROUP BY stage ORDER BY stage\"");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  int total = 0;
  std::regex row(R"((\w+),(\d+))");
  for (std::sregex_iterator it(q.output.begin(), q.output.end(), row), end; it != end; ++it)
    total += std::stoi((*it)[2]);
  EXPECT_EQ(total, jobs) << q.output;
  for (const char* stage : {"data", "vae", "diffusion", "critic", "synthesis", "eval"})
    EXPECT_NE(q.output.find(std::string(stage) + ","), std::string::npos) << "no " << stage << " jobs:\n" << q.output;

  auto tables = migvis::testing::run_command(migvis + " results tables --format md --root " + root.string());
  ASSERT_EQ(tables.exit_code, 0) << tables.output;
  EXPECT_NE(tables.output.find("a1 R²"), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("a2 R²"), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("| migvis | "), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("group 1"), std::string::npos) << "no selectivity rows:\n" << tables.output;
}

}  // namespace
}  // namespace migvis::slurm
