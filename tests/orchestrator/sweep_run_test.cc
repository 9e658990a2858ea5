// `migvis sweep ...` end to end through real processes: the tiny sweep run by
// the real orchestrator binary with a fake worker that honours the job-dir
// contract; caching, re-running only what changed, failures blocking
// dependents, retries, the root lock, and real kill -9 of the orchestrator and
// of a worker followed by resume.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "orchestrator/executor.h"
#include "results/catalog.h"
#include "schemas/job_spec.h"
#include "sweeps/sweep.h"
#include "tests/test_util.h"

namespace migvis {
namespace {

using migvis::testing::run_command;
using migvis::testing::TempDir;

const std::string kSrc = MIGVIS_SOURCE_DIR;
std::string fake_worker() { return std::string(MIGVIS_BINARY_DIR) + "/tests/orchestrator/fake_worker"; }
std::string env_prefix() {
  return "MIGVIS_WORKER=" + fake_worker() + " MIGVIS_DATA_RUNNER=" + fake_worker() + " ";
}
std::string migvis() { return migvis::testing::migvis_bin(); }

sweeps::Plan plan_of(const std::string& file) {
  auto p = sweeps::load_sweep(file);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : sweeps::Plan{};
}

int executions(const fs::path& dir) {
  std::ifstream f(dir / "executions");
  int n = 0;
  std::string line;
  while (std::getline(f, line)) ++n;
  return n;
}

// In the catalog: every job of the plan once, done, with its scalar metrics once.
void expect_db_complete(const sweeps::Plan& plan, const fs::path& root) {
  auto cat = catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadOnly);
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  auto rows = (*cat)->jobs_of_sweep(plan.sweep);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  EXPECT_EQ(rows->size(), plan.jobs.size());
  for (auto& j : plan.jobs) {
    auto row = (*cat)->job(j.job_id);
    ASSERT_TRUE(row.ok() && *row) << j.job_id;
    EXPECT_EQ((*row)->status, catalog::JobStatus::kDone) << j.stage << " " << j.job_id << " " << (*row)->note;
    auto q = (*cat)->query("SELECT COUNT(*) FROM metrics WHERE job_id = ? AND name = 'test_r2'", {j.job_id});
    ASSERT_TRUE(q.ok()) << q.status().message();
    EXPECT_EQ(std::get<int64_t>(q->rows.at(0).at(0)), 1) << j.job_id;
  }
  auto n = (*cat)->query("SELECT COUNT(*) FROM jobs");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::get<int64_t>(n->rows.at(0).at(0)), static_cast<int64_t>(plan.jobs.size()));
}

// Every job of the plan complete exactly once: one ok result.yaml whose job_id is the job's.
void expect_all_complete(const sweeps::Plan& plan, const fs::path& root) {
  for (auto& j : plan.jobs) {
    fs::path d = sweeps::job_dir_for(root, j);
    auto r = schema::read_job_result(d);
    ASSERT_TRUE(r.ok()) << j.stage << " " << j.job_id << ": " << r.status().message();
    EXPECT_EQ(r->status, "ok");
    EXPECT_EQ(r->job_id, j.job_id);
    EXPECT_GE(executions(d), 1);
  }
}

TEST(SweepRunTest, RunsTinySweepCachesAndRerunsOnlyWhatChanged) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::string sweep = kSrc + "/sweeps/tiny.yaml";
  auto r = run_command(env_prefix() + migvis() + " sweep plan " + sweep + " --root " + root.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 of 10 jobs would run"), std::string::npos) << r.output;

  r = run_command(env_prefix() + migvis() + " sweep run " + sweep + " --root " + root.string() + " --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 done, 0 cached"), std::string::npos) << r.output;
  auto plan = plan_of(sweep);
  expect_all_complete(plan, root);
  expect_db_complete(plan, root);
  auto spec = schema::read_job_spec(sweeps::job_dir_for(root, plan.jobs.back()));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->stage, "eval");
  EXPECT_TRUE(fs::exists(spec->inputs.at("dataset")));

  // Second run: everything cached, nothing launched, near-instant.
  auto t0 = std::chrono::steady_clock::now();
  r = run_command(env_prefix() + migvis() + " sweep run " + sweep + " --root " + root.string() + " --jobs 2");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("0 done, 10 cached"), std::string::npos) << r.output;
  EXPECT_LT(s, 2.0);
  for (auto& j : plan.jobs) EXPECT_EQ(executions(sweeps::job_dir_for(root, j)), 1);
  r = run_command(migvis() + " sweep plan " + sweep + " --root " + root.string());
  EXPECT_NE(r.output.find("0 of 10 jobs would run"), std::string::npos) << r.output;

  // Change one VAE parameter: only the VAEs and their downstream jobs run.
  auto text = read_file(sweep);
  ASSERT_TRUE(text.ok());
  std::string changed = *text;
  changed.replace(changed.find("epochs: 2"), 9, "epochs: 3");
  ASSERT_TRUE(write_file_atomic(tmp / "tiny2.yaml", changed).ok());
  // plan counts the jobs per rerun trigger.
  r = run_command(migvis() + " sweep plan " + (tmp / "tiny2.yaml").string() + " --root " + root.string());
  EXPECT_NE(r.output.find("8 of 10 jobs would run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("      2   params changed\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("      6   upstream (params changed)\n"), std::string::npos) << r.output;
  r = run_command(env_prefix() + migvis() + " sweep run " + (tmp / "tiny2.yaml").string() + " --root " + root.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("8 done, 2 cached"), std::string::npos) << r.output;  // data + diffusion cached

  // why: the new vae job vs the old one of the same key differs in params.epochs.
  auto plan2 = plan_of((tmp / "tiny2.yaml").string());
  std::string vae_id;
  for (auto& j : plan2.jobs)
    if (j.stage == "vae") vae_id = j.job_id;
  std::error_code ec;
  fs::remove(sweeps::job_dir_for(root, plan2.jobs[1]) / "result.yaml", ec);  // make it "would run"
  r = run_command(migvis() + " sweep why " + plan2.jobs[1].job_id + " --root " + root.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("would run: params changed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("params.epochs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 -> 3"), std::string::npos) << r.output;

  r = run_command(migvis() + " sweep status tiny --root " + root.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("10 jobs"), std::string::npos) << r.output;
}

TEST(SweepRunTest, FailedJobBlocksDependentsAndRetriesHandleCrashes) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::string sweep = kSrc + "/sweeps/tiny.yaml";
  auto r = run_command("FAKE_FAIL_STAGE=critic FAKE_CRASH_ONCE=vae " + env_prefix() + migvis() + " sweep run " +
                       sweep + " --root " + root.string() + " --jobs 2 --retries 1");
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("2 failed, 4 blocked"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("blocked: upstream critic"), std::string::npos) << r.output;
  auto plan = plan_of(sweep);
  for (auto& j : plan.jobs) {
    fs::path d = sweeps::job_dir_for(root, j);
    if (j.stage == "vae") {
      EXPECT_EQ(executions(d), 2) << "crashed once, retried once";
    }
    if (j.stage == "critic") {
      EXPECT_EQ(executions(d), 1) << "bad input is not retried";
    }
    if (j.stage == "synthesis" || j.stage == "eval") {
      EXPECT_FALSE(fs::exists(d / "result.yaml"));
    }
  }
  // Fixing the cause and resuming finishes the sweep without rerunning the VAEs.
  r = run_command(env_prefix() + migvis() + " sweep resume tiny --root " + root.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_all_complete(plan, root);
  for (auto& j : plan.jobs) {
    if (j.stage == "vae") {
      EXPECT_EQ(executions(sweeps::job_dir_for(root, j)), 2);
    }
  }
}

TEST(SweepRunTest, BadSweepWritesNothingAndTheLockExcludesASecondOrchestrator) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  ASSERT_TRUE(write_file_atomic(tmp / "bad.yaml", "sweep: t\ndata: {params: {preset: huge}}\n").ok());
  auto r = run_command(migvis() + " sweep run " + (tmp / "bad.yaml").string() + " --root " + root.string());
  EXPECT_EQ(r.exit_code, 65) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:2: data.params.preset: expected one of tiny|default|paper"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(root));
  r = run_command(migvis() + " sweep status ../../etc --root " + root.string());
  EXPECT_EQ(r.exit_code, 65) << r.output;

  auto lock = orch::RootLock::acquire(root);
  ASSERT_TRUE(lock.ok());
  r = run_command(env_prefix() + migvis() + " sweep run " + kSrc + "/sweeps/tiny.yaml --root " + root.string());
  EXPECT_EQ(r.exit_code, 75) << r.output;
  EXPECT_NE(r.output.find("another migvis orchestrator"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(root / "jobs"));
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log, const std::vector<std::string>& env) {
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    for (auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

template <typename F>
bool wait_for(F cond, double timeout_s) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(SweepRunTest, KillNineOfOrchestratorThenResumeCompletesEveryJobOnce) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::string sweep = kSrc + "/sweeps/tiny.yaml";
  auto plan = plan_of(sweep);
  std::vector<std::string> env = {"MIGVIS_WORKER=" + fake_worker(), "MIGVIS_DATA_RUNNER=" + fake_worker(),
                                  "FAKE_SLEEP_MS=300"};
  pid_t pid = spawn({migvis(), "sweep", "run", sweep, "--root", root.string(), "--jobs", "2"}, tmp / "run.log", env);
  // Kill it mid-run: once the data job finished and a VAE worker is running.
  fs::path data_dir = sweeps::job_dir_for(root, plan.jobs[0]);
  fs::path vae_dir = sweeps::job_dir_for(root, plan.jobs[1]);
  ASSERT_TRUE(wait_for([&] { return fs::exists(data_dir / "result.yaml") && fs::exists(vae_dir / "worker.pid"); }, 20));
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_FALSE(fs::exists(sweeps::job_dir_for(root, plan.jobs.back()) / "result.yaml"));

  auto r = run_command("FAKE_SLEEP_MS=10 " + env_prefix() + migvis() + " sweep resume --root " + root.string() +
                       " --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_all_complete(plan, root);
  expect_db_complete(plan, root);
  // Resuming again changes nothing in the DB (ingest is idempotent).
  r = run_command(env_prefix() + migvis() + " sweep resume tiny --root " + root.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_db_complete(plan, root);
  EXPECT_EQ(executions(data_dir), 1);  // finished before the kill: not rerun
  // Nothing left running: no live worker behind any job.
  for (auto& j : plan.jobs) EXPECT_NE(orch::disk_state(sweeps::job_dir_for(root, j)), orch::DiskState::kRunning);
}

TEST(SweepRunTest, KillNineOfAWorkerIsRetried) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::string sweep = kSrc + "/sweeps/tiny.yaml";
  auto plan = plan_of(sweep);
  std::vector<std::string> env = {"MIGVIS_WORKER=" + fake_worker(), "MIGVIS_DATA_RUNNER=" + fake_worker(),
                                  "FAKE_SLEEP_MS=400"};
  pid_t pid = spawn({migvis(), "sweep", "run", sweep, "--root", root.string(), "--jobs", "2", "--retries", "1"},
                    tmp / "run.log", env);
  fs::path data_dir = sweeps::job_dir_for(root, plan.jobs[0]);
  ASSERT_TRUE(wait_for([&] { return fs::exists(data_dir / "worker.pid") && fs::exists(data_dir / "executions"); }, 20));
  auto pidtxt = read_file(data_dir / "worker.pid");
  ASSERT_TRUE(pidtxt.ok());
  ASSERT_EQ(::kill(std::atoi(pidtxt->c_str()), SIGKILL), 0);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  auto log = read_file(tmp / "run.log");
  EXPECT_EQ(WEXITSTATUS(st), 0) << (log.ok() ? *log : "");
  expect_all_complete(plan, root);
  expect_db_complete(plan, root);
  EXPECT_EQ(executions(data_dir), 2);
  EXPECT_NE(log->find("retrying after exit 137"), std::string::npos) << *log;
}

}  // namespace
}  // namespace migvis
