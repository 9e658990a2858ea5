// The dependency shapes `sweep submit` renders (slurm::Level): aftercorr where
// tasks correspond, grouped afterok on many-to-one, barriers on request, ingest
// on slices of tasks; and golden sbatch lines for the shipped sweeps (unit,
// against a fake sbatch).
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <fmt/format.h>

#include "common/strings.h"

#include "orchestrator/slurm/sweep_submit.h"
#include "sweeps/sweep.h"
#include "sweeps/unused.h"
#include "tests/test_util.h"

namespace migvis::slurm {
namespace {

using ::testing::Contains;
using ::testing::Not;

class FakeSbatch : public CommandRunner {
 public:
  Result<CommandOutput> run(const std::vector<std::string>& argv, const std::map<std::string, std::string>&) override {
    calls.push_back(argv);
    return CommandOutput{0, std::to_string(next_id++) + "\n", ""};
  }
  std::vector<std::vector<std::string>> calls;
  int next_id = 100;
};

Level level(const fs::path& root, const std::string& stage, size_t n) {
  Level l;
  l.spec.sweep = "s";
  l.spec.stage = stage;
  l.spec.name = "migvis-s-" + stage;
  for (size_t i = 0; i < n; ++i) l.spec.job_dirs.push_back(root / stage / std::to_string(i));
  l.spec.command = {"migvis-worker", "--job"};
  l.spec.log_dir = root / "logs";
  return l;
}

SubmitOptions options(const fs::path& root) {
  SubmitOptions o;
  o.script_dir = root / "scripts";
  o.max_array_size = 1001;
  return o;
}

TEST(DependencyShapesTest, CorrespondingTasksTakeTheirParentsIdsAndWaitWithAftercorr) {
  migvis::testing::TempDir tmp;
  auto up = level(tmp.path(), "critic", 4);
  auto down = level(tmp.path(), "synthesis", 3);
  // synthesis 0 <- critic 2, 1 <- critic 0, 2 <- critic 3; critic 1 feeds nothing.
  down.parents = {0};
  down.job_parents = {{{0, 2}}, {{0, 0}}, {{0, 3}}};
  FakeSbatch fake;
  auto r = submit_levels({up, down}, options(tmp.path()), &fake);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& s = (*r)[1];
  EXPECT_EQ(s.shape, "aftercorr critic");
  ASSERT_EQ(s.task_ids.size(), 1u);
  EXPECT_EQ(s.task_ids[0], (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(s.job_dirs, (std::vector<fs::path>{down.spec.job_dirs[1], down.spec.job_dirs[0], down.spec.job_dirs[2]}));
  const auto& argv = fake.calls.at(1);
  EXPECT_THAT(argv, Contains("--array=0,2-3"));
  EXPECT_THAT(argv, Contains("--dependency=aftercorr:100"));
  EXPECT_THAT(argv, Contains("--kill-on-invalid-dep=yes")) << "a failed critic task cancels its own synthesis task";
  auto script = read_file(s.scripts[0]);
  ASSERT_TRUE(script.ok());
  EXPECT_NE(script->find("[2]='" + down.spec.job_dirs[0].string() + "'"), std::string::npos) << *script;
  EXPECT_NE(script->find("[0]='" + down.spec.job_dirs[1].string() + "'"), std::string::npos) << *script;
  // The sparse array runs as bash would index it: task 2 gets synthesis 0's directory.
  auto run = migvis::testing::run_command("SLURM_ARRAY_TASK_ID=2 bash -c " +
                                          shell_quote(script->substr(0, script->find("dir=")) + "echo ${jobs[2]}"));
  EXPECT_EQ(trim(run.output), down.spec.job_dirs[0].string());
}

TEST(DependencyShapesTest, CorrespondenceFollowsArraysSplitAtMaxArraySize) {
  migvis::testing::TempDir tmp;
  auto up = level(tmp.path(), "synthesis", 5);
  auto down = level(tmp.path(), "eval", 5);
  down.parents = {0};
  for (size_t i = 0; i < 5; ++i) down.job_parents.push_back({{0, i}});
  auto o = options(tmp.path());
  o.max_array_size = 3;
  FakeSbatch fake;
  auto r = submit_levels({up, down}, o, &fake);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].array_ids, (std::vector<std::string>{"100", "101"}));
  ASSERT_EQ((*r)[1].array_ids.size(), 2u);
  EXPECT_THAT(fake.calls[2], Contains("--dependency=aftercorr:100"));
  EXPECT_THAT(fake.calls[2], Contains("--array=0-2"));
  EXPECT_THAT(fake.calls[3], Contains("--dependency=aftercorr:101"));
  EXPECT_THAT(fake.calls[3], Contains("--array=0-1"));
}

TEST(DependencyShapesTest, ManyToOneIsOneArrayPerParentUpToMaxSplitThenABarrier) {
  migvis::testing::TempDir tmp;
  auto data = level(tmp.path(), "data", 2);
  auto vae = level(tmp.path(), "vae", 4);
  vae.parents = {0};
  vae.job_parents = {{{0, 0}}, {{0, 1}}, {{0, 0}}, {{0, 1}}};
  {
    FakeSbatch fake;
    auto r = submit_levels({data, vae}, options(tmp.path()), &fake);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ((*r)[1].array_ids.size(), 2u) << "one array per data task";
    EXPECT_THAT(fake.calls[1], Contains("--dependency=afterok:100_0"));
    EXPECT_THAT(fake.calls[2], Contains("--dependency=afterok:100_1"));
    EXPECT_EQ((*r)[1].job_dirs,
              (std::vector<fs::path>{vae.spec.job_dirs[0], vae.spec.job_dirs[2], vae.spec.job_dirs[1],
                                     vae.spec.job_dirs[3]}));
  }
  auto o = options(tmp.path());
  o.max_split = 1;
  FakeSbatch fake;
  auto r = submit_levels({data, vae}, o, &fake);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ((*r)[1].array_ids.size(), 1u);
  EXPECT_THAT(fake.calls[1], Contains("--dependency=afterok:100")) << "needs every data task: the whole array";
}

TEST(DependencyShapesTest, SharedParentIsAfterokNextToAftercorr) {
  migvis::testing::TempDir tmp;
  auto diffusion = level(tmp.path(), "diffusion", 1);
  auto critic = level(tmp.path(), "critic", 2);
  auto synth = level(tmp.path(), "synthesis", 2);
  synth.parents = {0, 1};
  synth.job_parents = {{{1, 0}, {0, 0}}, {{1, 1}, {0, 0}}};
  FakeSbatch fake;
  auto r = submit_levels({diffusion, critic, synth}, options(tmp.path()), &fake);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_THAT(fake.calls[2], Contains("--dependency=afterok:100,aftercorr:101"));
}

TEST(DependencyShapesTest, BarrierShapeWithoutJobParents) {
  migvis::testing::TempDir tmp;
  auto critic = level(tmp.path(), "critic", 3);
  auto synth = level(tmp.path(), "synthesis", 3);
  synth.parents = {0};
  FakeSbatch fake;
  auto r = submit_levels({critic, synth}, options(tmp.path()), &fake);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(fake.calls[1], Contains("--dependency=afterok:100"));
  EXPECT_THAT(fake.calls[1], Not(Contains("--dependency=aftercorr:100")));
}

TEST(DependencyShapesTest, IngestRunsOnSlicesOfTasks) {
  migvis::testing::TempDir tmp;
  auto o = options(tmp.path());
  o.ingest_argv = {"migvis", "results", "ingest"};
  o.ingest_batch = 2;
  FakeSbatch fake;
  auto r = submit_levels({level(tmp.path(), "vae", 5)}, o, &fake);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].ingest_ids, (std::vector<std::string>{"101", "102", "103"}));
  EXPECT_THAT(fake.calls[1], Contains("--dependency=afterany:100_0:100_1"));
  EXPECT_THAT(fake.calls[2], Contains("--dependency=afterany:100_2:100_3"));
  EXPECT_THAT(fake.calls[3], Contains("--dependency=afterany:100_4"));
  o.ingest_batch = 8;  // the whole array fits one slice
  FakeSbatch one;
  r = submit_levels({level(tmp.path(), "vae", 5)}, o, &one);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(one.calls[1], Contains("--dependency=afterany:100"));
}

TEST(DependencyShapesTest, ResumeWaitsPerTaskOnParentsQueuedFromAnEarlierRound) {
  migvis::testing::TempDir tmp;
  auto vae = level(tmp.path(), "vae", 3);
  vae.job_after_ok = {{"50_0"}, {"50_1"}, {"50_0"}};
  FakeSbatch fake;
  auto r = submit_levels({vae}, options(tmp.path()), &fake);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)[0].array_ids.size(), 2u);
  EXPECT_THAT(fake.calls[0], Contains("--dependency=afterok:50_0"));
  EXPECT_THAT(fake.calls[1], Contains("--dependency=afterok:50_1"));
}

// Every sbatch line `sweep submit --dry-run` plans for the shipped sweeps, in
// both shapes (golden files; MIGVIS_UPDATE_GOLDEN=1 rewrites them).
class ShapesGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShapesGoldenTest, DryRunSbatchLines) {
  const std::string name = GetParam();
  auto plan = sweeps::load_sweep(std::string(MIGVIS_SOURCE_DIR) + "/sweeps/" + name + ".yaml");
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_TRUE(sweeps::unused_jobs(*plan).empty()) << name << " plans jobs nobody uses";
  std::string text;
  migvis::testing::TempDir tmp;  // job dirs are written once, then found
  for (bool barriers : {false, true}) {
    orch::SlurmSubmitOptions o;
    o.root = tmp.path();
    o.dry_run = true;
    o.barriers = barriers;
    o.self = "/opt/migvis/bin/migvis";
    o.worker = "/opt/migvis/bin/migvis-worker";
    FakeSbatch fake;
    auto sub = orch::submit_plan_to_slurm(*plan, "", o, nullptr, &fake);
    ASSERT_TRUE(sub.ok()) << sub.status().to_string();
    EXPECT_TRUE(fake.calls.empty());
    text += barriers ? "# --barriers\n" : "# per task (default)\n";
    for (auto& l : sub->levels) {
      text += fmt::format("{}: {}\n", l.stage, l.shape);
      for (auto& c : l.commands) {
        std::string line;
        for (auto& w : c) {
          std::string word = w;
          for (size_t p; (p = word.find(tmp.path().string())) != std::string::npos;)
            word.replace(p, tmp.path().string().size(), "<root>");
          if (word.rfind("--wrap", 0) != 0) line += (line.empty() ? "" : " ") + word;
        }
        text += "  " + line + "\n";
      }
    }
  }
  fs::path golden = fs::path(MIGVIS_SOURCE_DIR) / ("tests/orchestrator/slurm/golden/shapes_" + name + ".txt");
  if (std::getenv("MIGVIS_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(golden, text).ok());
  }
  auto want = read_file(golden);
  ASSERT_TRUE(want.ok()) << "missing golden file; run with MIGVIS_UPDATE_GOLDEN=1";
  EXPECT_EQ(text, *want);
}

INSTANTIATE_TEST_SUITE_P(Shipped, ShapesGoldenTest, ::testing::Values("quickstart", "paper"));

}  // namespace
}  // namespace migvis::slurm
