// Against a real single-node SLURM (label slurm): the suite starts a private
// cluster with scripts/slurm_local.sh (munged, MariaDB + slurmdbd, slurmctld,
// slurmd) and stops every daemon it started. Skips only if it cannot start.
#include <gtest/gtest.h>

#include <thread>

#include "orchestrator/slurm/submit.h"
#include "tests/orchestrator/slurm/local_cluster.h"
#include "results/catalog.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"

namespace migvis::slurm {
namespace {


fs::path make_job(const fs::path& dir, const std::string& id, const std::string& stage) {
  schema::JobSpec s;
  s.job_id = id;
  s.stage = stage;
  s.key = {{"dataset", "synth"}};
  s.params["preset"] = "tiny";
  s.params["seed"] = 3;
  EXPECT_TRUE(schema::write_job_spec(s, dir).ok());
  return dir;
}

// data (2 tasks, succeed) -> bad (1 task, fails with exit 65) -> after (cancelled,
// never runs): arrays, afterok chaining, --kill-on-invalid-dep, sacct through slurmdbd.
TEST_F(SlurmClusterTest, ArraysChainAndFailedParentCancelsDependents) {
  fs::path root = dir_->path() / "runs";
  std::vector<Level> levels(3);
  levels[0].spec.stage = "data";
  levels[0].spec.job_dirs = {make_job(root / "d0", "00000000000000d0", "data"),
                             make_job(root / "d1", "00000000000000d1", "data")};
  levels[0].spec.command = {migvis::testing::migvis_bin(), "data", "run-job"};
  levels[1].spec.stage = "bad";
  levels[1].spec.job_dirs = {make_job(root / "b0", "00000000000000b0", "no-such-stage")};
  levels[1].spec.command = {migvis::testing::migvis_bin(), "data", "run-job"};
  levels[1].parents = {0};
  levels[2].spec.stage = "after";
  levels[2].spec.job_dirs = {make_job(root / "a0", "00000000000000a0", "data")};
  levels[2].spec.command = {migvis::testing::migvis_bin(), "data", "run-job"};
  levels[2].parents = {1};
  for (auto& l : levels) {
    l.spec.sweep = "t";
    l.spec.name = "migvis-t-" + l.spec.stage;
    l.spec.log_dir = root / "logs";
    l.spec.mem_gb = 0.5;
    l.spec.time_min = 5;
  }
  SubmitOptions o;
  o.script_dir = root / "scripts";
  SystemCommandRunner runner;
  auto sub = submit_levels(levels, o, &runner);
  ASSERT_TRUE(sub.ok()) << sub.status().to_string();
  std::vector<std::string> ids;
  for (auto& l : *sub) ids.insert(ids.end(), l.array_ids.begin(), l.array_ids.end());
  ASSERT_TRUE(wait_gone(&runner, ids, 120)) << "jobs still queued after 120 s";
  EXPECT_TRUE(schema::read_job_result(root / "d0").ok());
  EXPECT_TRUE(fs::exists(root / "d1/dataset.h5"));
  EXPECT_FALSE(fs::exists(root / "a0/result.yaml")) << "a dependent of a failed job ran";

  // slurmdbd records lag the queue by a few seconds: poll.
  std::map<std::string, Outcome> outcome;
  for (int i = 0; i < 60 && outcome.size() < 4; ++i) {
    auto acct = query_accounting(&runner, ids, "now-1hours", 3,
                                 [](double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); });
    ASSERT_TRUE(acct.ok()) << acct.status().to_string();
    outcome.clear();
    for (auto& rec : *acct)
      if (is_terminal(rec.state)) outcome[rec.job_id] = classify(rec);
    if (outcome.size() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const std::string d = (*sub)[0].array_ids[0], b = (*sub)[1].array_ids[0], a = (*sub)[2].array_ids[0];
  EXPECT_EQ(outcome[d + "_0"], Outcome::kDone);
  EXPECT_EQ(outcome[d + "_1"], Outcome::kDone);
  EXPECT_EQ(outcome[b + "_0"], Outcome::kAppError);
  EXPECT_EQ(outcome[a + "_0"], Outcome::kCancelled);
}

// Users' main path: `migvis sweep submit` compiles the tiny sweep (both animals,
// every stage) into one array per stage and exits; SLURM runs every job with the
// real worker and the ingest jobs fill the catalog.
TEST_F(SlurmClusterTest, SweepSubmitRunsTheTinySweepEndToEnd) {
  const fs::path root = dir_->path() / "submit";
  const std::string sweep = std::string(MIGVIS_SOURCE_DIR) + "/sweeps/tiny.yaml";
  auto r = migvis::testing::run_command("MIGVIS_WORKER=" + migvis::testing::worker_bin() + " " +
                                        migvis::testing::migvis_bin() + " sweep submit " + sweep + " --root " +
                                        root.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("eval"), std::string::npos) << r.output;
  SystemCommandRunner runner;
  ASSERT_TRUE(wait_gone(&runner, {}, 300)) << "the sweep's jobs were still queued after 300 s";
  int ok = 0;
  for (auto& stage : fs::directory_iterator(root / "jobs"))
    for (auto& job : fs::directory_iterator(stage.path())) {
      auto res = schema::read_job_result(job.path());
      if (res.ok() && res->status == "ok") ++ok;
      else {
        auto log = read_file(job.path() / "run.log");
        ADD_FAILURE() << job.path() << " did not finish: " << (log.ok() ? *log : std::string("(no run.log)"));
      }
    }
  EXPECT_EQ(ok, 10);
  // The ingest jobs (afterany per stage) loaded every job into the catalog.
  auto cat = catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadOnly);
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  auto q = (*cat)->query("SELECT COUNT(*) FROM jobs WHERE status = 'done'", {});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(catalog::value_to_string(q->rows.at(0).at(0)), "10");
  // `sweep status` reconciles with sacct (through slurmdbd) and the job dirs.
  auto status = migvis::testing::run_command(migvis::testing::migvis_bin() + " sweep status --root " + root.string());
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("10 done"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("every submitted job is done"), std::string::npos) << status.output;
  // A second submit finds everything complete and submits nothing.
  auto again = migvis::testing::run_command("MIGVIS_WORKER=" + migvis::testing::worker_bin() + " " +
                                            migvis::testing::migvis_bin() + " sweep submit " + sweep + " --root " +
                                            root.string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("10 already complete; 0 SLURM arrays"), std::string::npos) << again.output;
}

// Preemption: `scontrol requeue` of a running training task. The worker gets
// SIGTERM, writes a checkpoint and exits 75; SLURM requeues the task; it resumes
// from the checkpoint and finishes, with no step trained twice.
TEST_F(SlurmClusterTest, RequeuedTrainingJobResumesFromItsCheckpoint) {
  const fs::path root = dir_->path() / "preempt";
  auto synth = migvis::testing::run_command(migvis::testing::migvis_bin() + " data synth --preset tiny --seed 4 --out " +
                                            (root / "d.h5").string());
  ASSERT_EQ(synth.exit_code, 0) << synth.output;
  schema::JobSpec spec;
  spec.job_id = "00000000000000ee";
  spec.stage = "diffusion";
  spec.seed = 9;
  spec.params = YAML::Load("{image_size: 16, width: 8, mults: [1, 2], attn_heads: 1, attn_dim_head: 8, timesteps: 20,"
                           " steps: 300, batch: 8, grad_accum: 1, log_every: 1, checkpoint_every: 5, sample_count: 2}");
  spec.inputs = {{"dataset", (root / "d.h5").string()}};
  spec.resources.threads = 1;
  const fs::path job = root / "job";
  ASSERT_TRUE(schema::write_job_spec(spec, job).ok());
  std::vector<Level> levels(1);
  auto& a = levels[0].spec;
  a.sweep = "t";
  a.stage = "diffusion";
  a.name = "migvis-t-preempt";
  a.job_dirs = {job};
  a.command = {migvis::testing::worker_bin(), "--job"};
  a.log_dir = root / "logs";
  a.mem_gb = 1;
  a.time_min = 10;
  SubmitOptions o;
  o.script_dir = root / "scripts";
  SystemCommandRunner runner;
  auto sub = submit_levels(levels, o, &runner);
  ASSERT_TRUE(sub.ok()) << sub.status().to_string();
  const std::string task = (*sub)[0].array_ids[0] + "_0";
  bool ckpt = false;
  for (int i = 0; i < 600 && !ckpt; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ckpt = fs::exists(job / "ckpt/latest");
  }
  ASSERT_TRUE(ckpt) << "no checkpoint before preemption";
  ASSERT_FALSE(fs::exists(job / "result.yaml")) << "finished before it could be preempted; make it longer";
  auto rq = runner.run({"scontrol", "requeue", task});
  ASSERT_TRUE(rq.ok());
  ASSERT_EQ(rq->exit_code, 0) << rq->err;
  ASSERT_TRUE(wait_gone(&runner, {(*sub)[0].array_ids[0]}, 300)) << "requeued task did not finish";
  auto res = schema::read_job_result(job);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->status, "ok");
  auto log = read_file(job / "run.log");
  std::string text = log.ok() ? *log : "";
  // The log is appended across attempts: the first stops with a checkpoint,
  // the second resumes from it.
  EXPECT_NE(text.find("stopped on request"), std::string::npos) << text;
  EXPECT_NE(text.find("resumed at step"), std::string::npos) << text;
  // One curve point per step, each step once: nothing lost, nothing repeated.
  auto f = h5::File::open(job / "out.h5");
  ASSERT_TRUE(f.ok());
  auto curve = f->read<double>("curves/loss");
  ASSERT_TRUE(curve.ok()) << curve.status().to_string();
  ASSERT_EQ(curve->dim(0), 300u);
  for (hsize_t i = 0; i < curve->dim(0); ++i) ASSERT_EQ(curve->data[i * 2], static_cast<double>(i + 1));
}

// `sweep resume` of a submitted sweep: the sweep is submitted with a worker
// that fails (/bin/false), so its vae job fails and SLURM cancels the critic
// waiting on it; resume (now with the real worker) resubmits both through
// SLURM, critic afterok on vae; they finish and the ingest job records them.
TEST_F(SlurmClusterTest, SweepResumeResubmitsAFailedJobAndItsDependentThroughSlurm) {
  const fs::path root = dir_->path() / "resume";
  const fs::path sweep = dir_->path() / "resume.yaml";
  ASSERT_TRUE(write_file_atomic(sweep,
                                "sweep: r\nanimals: [a1]\nsessions: [s1]\n"
                                "data:\n  params: {preset: tiny, seed: 1}\n"
                                "vae:\n  params: {model: migvis, groups: 2, group_rank: 2, epochs: 2, batch: 16, eval_every: 1}\n"
                                "  resources: {mem_gb: 1, time_min: 5}\n"
                                "critic:\n  params: {epochs: 1, batch: 16}\n  resources: {mem_gb: 1, time_min: 5}\n")
                  .ok());
  const std::string migvis = migvis::testing::migvis_bin();
  auto sub = migvis::testing::run_command("MIGVIS_WORKER=/bin/false " + migvis + " sweep submit " + sweep.string() +
                                          " --retries 1 --root " + root.string());
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  SystemCommandRunner runner;
  ASSERT_TRUE(wait_gone(&runner, {}, 120)) << "jobs still queued after 120 s";
  std::string status = wait_status_settled(root, 60);
  EXPECT_NE(status.find("application error"), std::string::npos) << status;
  EXPECT_NE(status.find("cancelled"), std::string::npos) << "the critic waiting on the failed vae:\n" << status;

  auto t0 = std::chrono::steady_clock::now();
  auto res = migvis::testing::run_command("MIGVIS_WORKER=" + migvis::testing::worker_bin() + " " + migvis +
                                          " sweep resume r --root " + root.string());
  ASSERT_EQ(res.exit_code, 0) << res.output;
  EXPECT_NE(res.output.find("1 done, 0 queued or running, 2 resubmitted, 0 over their retry budget"),
            std::string::npos)
      << res.output;
  EXPECT_NE(res.output.find("counts: 1 of 1 retries used"), std::string::npos) << res.output;
  ASSERT_TRUE(wait_gone(&runner, {}, 180)) << "resubmitted jobs still queued after 180 s";
  std::printf("resume: resubmitted vae + critic finished in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  int ok = 0;
  for (auto& stage : fs::directory_iterator(root / "jobs"))
    for (auto& job : fs::directory_iterator(stage.path())) {
      auto r = schema::read_job_result(job.path());
      if (r.ok() && r->status == "ok") ++ok;
      else ADD_FAILURE() << job.path() << " did not finish:\n" << file_text(job.path() / "run.log");
    }
  EXPECT_EQ(ok, 3);
  auto cat = catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadOnly);
  ASSERT_TRUE(cat.ok());
  auto q = (*cat)->query("SELECT COUNT(*) FROM jobs WHERE status = 'done'", {});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(catalog::value_to_string(q->rows.at(0).at(0)), "3") << "the resubmission's ingest job ran";
  EXPECT_FALSE(fs::exists(root / "migvis.db.lock.d")) << "the ingest lock was released";

  // Everything done: a second resume submits nothing and agrees with the first.
  auto again = migvis::testing::run_command(migvis + " sweep resume r --root " + root.string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("3 done, 0 queued or running, 0 resubmitted"), std::string::npos) << again.output;
  status = wait_status_settled(root, 60);
  EXPECT_NE(status.find("every submitted job is done"), std::string::npos) << status;
}

}  // namespace
}  // namespace migvis::slurm
