// The whole product end to end with the REAL workers (label slow): the tiny
// sweep (both synthetic animals, every stage) through `migvis sweep run`, the
// catalog, the tables and the report; a rerun served from cache; and a real
// kill -9 of the orchestrator in the middle of training, followed by resume.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "results/catalog.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

const std::string kTiny = std::string(MIGVIS_SOURCE_DIR) + "/sweeps/tiny.yaml";
std::string env() { return "MIGVIS_WORKER=" + migvis::testing::worker_bin() + " "; }

// Number of job directories with an ok result, per stage.
std::map<std::string, int> done_per_stage(const fs::path& root) {
  std::map<std::string, int> n;
  for (auto& stage : fs::directory_iterator(root / "jobs"))
    for (auto& job : fs::directory_iterator(stage.path())) {
      auto r = schema::read_job_result(job.path());
      if (r.ok() && r->status == "ok") ++n[stage.path().filename().string()];
    }
  return n;
}

void expect_catalog_complete(const fs::path& root, size_t jobs) {
  auto cat = catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadOnly);
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  auto q = (*cat)->query("SELECT COUNT(*), SUM(status = 'done') FROM jobs", {});
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(catalog::value_to_string(q->rows.at(0).at(0)), std::to_string(jobs));
  EXPECT_EQ(catalog::value_to_string(q->rows.at(0).at(1)), std::to_string(jobs));
  // Every scalar metric of every job exactly once.
  auto dup = (*cat)->query(
      "SELECT COUNT(*) FROM (SELECT job_id, name, step, COUNT(*) c FROM metrics GROUP BY 1, 2, 3 HAVING c > 1)", {});
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(catalog::value_to_string(dup->rows.at(0).at(0)), "0") << "duplicated metric rows";
  auto vae = (*cat)->query("SELECT COUNT(*) FROM metrics m JOIN jobs j USING (job_id) "
                           "WHERE j.stage = 'vae' AND m.name = 'test_r2' AND m.step IS NULL", {});
  ASSERT_TRUE(vae.ok());
  EXPECT_EQ(catalog::value_to_string(vae->rows.at(0).at(0)), "2") << "one test_r2 per VAE job";
}

TEST(TinySweepE2ETest, RunsEveryStageThenServesFromCacheAndRendersTables) {
  migvis::testing::TempDir tmp;
  const fs::path root = tmp / "runs";
  const std::string run = env() + migvis::testing::migvis_bin() + " sweep run " + kTiny + " --jobs 2 --root " + root.string();
  auto first = run_command(run);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto done = done_per_stage(root);
  EXPECT_EQ(done["data"], 1);
  EXPECT_EQ(done["vae"], 2);
  EXPECT_EQ(done["diffusion"], 1);
  EXPECT_EQ(done["critic"], 2);
  EXPECT_EQ(done["synthesis"], 2);
  EXPECT_EQ(done["eval"], 2);
  expect_catalog_complete(root, 10);

  auto second = run_command(run);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("10 cached"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("running"), std::string::npos) << "a cached job was launched:\n" << second.output;

  auto tables = run_command(migvis::testing::migvis_bin() + " results tables --format md --root " + root.string());
  ASSERT_EQ(tables.exit_code, 0) << tables.output;
  EXPECT_NE(tables.output.find("a1 R²"), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("a2 R²"), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("| migvis | "), std::string::npos) << tables.output;
  EXPECT_NE(tables.output.find("group 1"), std::string::npos) << "no selectivity rows:\n" << tables.output;

  auto report = run_command(migvis::testing::migvis_bin() + " report --root " + root.string() + " --out " +
                            (tmp / "report").string());
  ASSERT_EQ(report.exit_code, 0) << report.output;
  EXPECT_TRUE(fs::exists(tmp / "report/index.html"));
  bool grid = false;
  for (auto& e : fs::recursive_directory_iterator(tmp / "report"))
    if (e.path().extension() == ".png") grid = true;
  EXPECT_TRUE(grid) << "the report shows no synthesis grid";
}

TEST(TinySweepE2ETest, KillNineOfTheOrchestratorMidTrainingThenResume) {
  migvis::testing::TempDir tmp;
  const fs::path root = tmp / "runs";
  // A longer diffusion stage so the kill lands while a worker trains.
  const fs::path sweep = tmp / "tiny_long.yaml";
  auto text = read_file(kTiny);
  ASSERT_TRUE(text.ok());
  std::string s = *text;
  const std::string from = "steps: 5, batch: 8";
  ASSERT_NE(s.find(from), std::string::npos) << "sweeps/tiny.yaml changed; update this test";
  s.replace(s.find(from), from.size(), "steps: 150, batch: 8, checkpoint_every: 10");
  ASSERT_TRUE(write_file_atomic(sweep, s).ok());

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("MIGVIS_WORKER", migvis::testing::worker_bin().c_str(), 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(migvis::testing::migvis_bin().c_str(), "migvis", "sweep", "run", sweep.c_str(), "--jobs", "2", "--root",
          root.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the diffusion worker has written a checkpoint, then kill -9.
  bool ckpt = false;
  for (int i = 0; i < 600 && !ckpt; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (fs::exists(root / "jobs/diffusion"))
      for (auto& j : fs::directory_iterator(root / "jobs/diffusion"))
        if (fs::exists(j.path() / "ckpt/latest")) ckpt = true;
  }
  ASSERT_TRUE(ckpt) << "diffusion never checkpointed";
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFSIGNALED(st));

  auto resume = run_command(env() + migvis::testing::migvis_bin() + " sweep resume tiny --jobs 2 --root " +
                            root.string());
  ASSERT_EQ(resume.exit_code, 0) << resume.output;
  auto done = done_per_stage(root);
  int total = 0;
  for (auto& [k, v] : done) total += v;
  EXPECT_EQ(total, 10) << resume.output;
  expect_catalog_complete(root, 10);
}

}  // namespace
}  // namespace migvis
