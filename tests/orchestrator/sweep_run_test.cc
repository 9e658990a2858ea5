// `migvis sweep ...` end to end through real processes: the tiny sweep run by
// the real orchestrator binary with a fake worker that honours the job-dir
// contract; caching, re-running only what changed, failures blocking
// dependents, retries, the root lock, and real kill -9 of the orchestrator and
// of a worker followed by resume.
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
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

// The tiny sweep with per-stage threads: diffusion asks for more than --cores.
std::string threaded_tiny(const fs::path& dir) {
  auto text = read_file(kSrc + "/sweeps/tiny.yaml");
  EXPECT_TRUE(text.ok());
  std::string t = *text;
  auto add = [&](const std::string& stage, int threads) {
    std::string at = "\n" + stage + ":\n";
    size_t p = t.find(at);
    EXPECT_NE(p, std::string::npos) << stage;
    t.insert(p + at.size(), "  resources: {threads: " + std::to_string(threads) + "}\n");
  };
  add("vae", 1);
  add("diffusion", 3);
  add("critic", 1);
  add("synthesis", 2);
  add("eval", 1);
  fs::path f = dir / "tiny_threads.yaml";
  EXPECT_TRUE(write_file_atomic(f, t).ok());
  return f.string();
}

TEST(SweepRunTest, NeverMoreThanCoresThreadsWorthOfJobsAtOnce) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  fs::path trace = tmp / "trace";
  std::string sweep = threaded_tiny(tmp.path());
  auto r = run_command("FAKE_SLEEP_MS=150 FAKE_TRACE=" + trace.string() + " " + env_prefix() + migvis() +
                       " sweep run " + sweep + " --root " + root.string() + " --jobs 4 --cores 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("asks for 3 threads > --cores 2: runs alone with 2"), std::string::npos) << r.output;
  // Replay the workers' own start/end records: the threads they were given
  // (OMP_NUM_THREADS) summed over the workers alive at each moment.
  std::ifstream f(trace);
  std::vector<std::tuple<long long, int, int>> ev;  // time, +1 start / -1 end (ends first on ties), threads
  std::string what;
  long long t = 0;
  int threads = 0, pid = 0;
  while (f >> what >> t >> threads >> pid) ev.emplace_back(t, what == "start" ? 1 : -1, threads);
  ASSERT_EQ(ev.size(), 20u) << "10 jobs, a start and an end each";
  std::sort(ev.begin(), ev.end());
  int sum = 0, most = 0, alive = 0, most_alive = 0;
  std::set<int> given;
  for (auto& [time, d, th] : ev) {
    sum += d * th;
    alive += d;
    most = std::max(most, sum);
    most_alive = std::max(most_alive, alive);
    given.insert(th);
  }
  EXPECT_LE(most, 2) << "threads' worth of jobs at once";
  EXPECT_EQ(most_alive, 2) << "two 1-thread jobs did share the machine";
  EXPECT_EQ(given, (std::set<int>{1, 2})) << "diffusion got 2 threads (--cores), not its 3";
  // The job directories hold no thread settings: the same job with another --cores is still cached.
  r = run_command(env_prefix() + migvis() + " sweep run " + sweep + " --root " + root.string() + " --cores 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("0 done, 10 cached"), std::string::npos) << r.output;
}

// Runs `argv` on a pseudo-terminal of `cols` columns; returns everything it wrote.
std::string run_on_pty(const std::vector<std::string>& args, const std::vector<std::string>& env, int cols,
                       int* exit_code) {
  struct winsize ws {};
  ws.ws_row = 40;
  ws.ws_col = static_cast<unsigned short>(cols);
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    for (auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  std::string out;
  if (pid < 0) return out;
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < until) {
    struct pollfd p {master, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child side is closed
    out.append(buf, static_cast<size_t>(n));
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(master);
  *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return out;
}

TEST(SweepRunTest, LiveDisplayOnATerminalShowsTheRunningJobsStepAdvancing) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::vector<std::string> env = {"MIGVIS_WORKER=" + fake_worker(), "MIGVIS_DATA_RUNNER=" + fake_worker(),
                                  "FAKE_STEPS=8", "FAKE_STEP_MS=400", "FAKE_STEPS_STAGE=diffusion", "TERM=xterm"};
  int code = -1;
  std::string out = run_on_pty({migvis(), "sweep", "run", kSrc + "/sweeps/tiny.yaml", "--root", root.string(), "--jobs",
                                "1"},
                               env, 72, &code);
  ASSERT_EQ(code, 0) << out;
  // Frames redraw in place: cursor up over the previous block.
  EXPECT_NE(out.find("\033[2A"), std::string::npos) << out;
  EXPECT_NE(out.find("\033[32m"), std::string::npos) << "colour on a terminal without NO_COLOR";
  std::string plain = std::regex_replace(out, std::regex("\033\\[[0-9;]*[A-Za-z]"), "");
  // The diffusion job's line, frame after frame: its step moves.
  std::set<int> steps;
  std::regex line("diffusion +- +train +\\[[#-]+\\] ([0-9])/8");
  for (std::sregex_iterator it(plain.begin(), plain.end(), line), end; it != end; ++it)
    steps.insert(std::stoi((*it)[1]));
  EXPECT_GE(steps.size(), 3u) << "steps seen: " << steps.size() << "\n" << plain;
  // Every line fits the 72 columns (escapes take none).
  std::istringstream ls(plain);
  for (std::string l; std::getline(ls, l);) {
    while (!l.empty() && l.back() == '\r') l.pop_back();
    size_t cr = l.rfind('\r');
    std::string last = cr == std::string::npos ? l : l.substr(cr + 1);
    if (last.rfind("sweep tiny:", 0) == 0) continue;  // the final summary is not part of the display
    EXPECT_LE(last.size(), 71u) << last;
  }

  // NO_COLOR: the same display without colour.
  env.push_back("NO_COLOR=1");
  out = run_on_pty({migvis(), "sweep", "run", kSrc + "/sweeps/tiny.yaml", "--root", (tmp / "runs1").string()}, env,
                   72, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("\033[32m"), std::string::npos) << out;
  EXPECT_NE(out.find("\033[2A"), std::string::npos) << out;

  // TERM=dumb: no cursor control, plain lines.
  fs::path root2 = tmp / "runs2";
  env.push_back("TERM=dumb");
  out = run_on_pty({migvis(), "sweep", "run", kSrc + "/sweeps/tiny.yaml", "--root", root2.string()}, env, 72, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("\033["), std::string::npos) << out;
  EXPECT_NE(out.find("done      diffusion"), std::string::npos) << out;
}

TEST(SweepRunTest, WithoutATerminalRunningJobsPrintProgressLinesAndStatusShowsThem) {
  TempDir tmp;
  fs::path root = tmp / "runs";
  std::string sweep = kSrc + "/sweeps/tiny.yaml";
  auto plan = plan_of(sweep);
  std::vector<std::string> env = {"MIGVIS_WORKER=" + fake_worker(), "MIGVIS_DATA_RUNNER=" + fake_worker(),
                                  "FAKE_STEPS=20", "FAKE_STEP_MS=300", "FAKE_STEPS_STAGE=diffusion"};
  pid_t pid = spawn({migvis(), "sweep", "run", sweep, "--root", root.string(), "--progress-every", "1"},
                    tmp / "run.log", env);
  fs::path diff_dir;
  for (auto& j : plan.jobs)
    if (j.stage == "diffusion") diff_dir = sweeps::job_dir_for(root, j);
  ASSERT_TRUE(wait_for([&] {
    auto p = schema::read_progress(diff_dir);
    return p.ok() && p->phase == "train" && p->step >= 2;
  }, 30));
  auto r = run_command(migvis() + " sweep status tiny --root " + root.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("running +diffusion .* train step [0-9]+/20 \\([0-9]+%\\)")))
      << r.output;
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto log = read_file(tmp / "run.log");
  ASSERT_TRUE(log.ok());
  // 20 steps x 0.3 s = 6 s of diffusion at one line a second: several lines, their steps rising.
  std::regex pl("progress  diffusion [0-9a-f]+ - train step ([0-9]+)/20");
  std::vector<int> seen;
  for (std::sregex_iterator it(log->begin(), log->end(), pl), end; it != end; ++it) seen.push_back(std::stoi((*it)[1]));
  EXPECT_GE(seen.size(), 3u) << *log;
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << *log;
  EXPECT_LT(seen.size(), 12u) << "about one a second, not one per poll: " << *log;
  EXPECT_EQ(log->find("\033["), std::string::npos);
}

}  // namespace
}  // namespace migvis
