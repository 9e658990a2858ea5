#include "orchestrator/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "orchestrator/eta.h"
#include "orchestrator/progress_display.h"
#include "schemas/job_spec.h"
#include "schemas/stages.h"

namespace migvis::orch {
namespace {

constexpr const char* kPidFile = "worker.pid";
constexpr const char* kHashInputsFile = "hash_inputs.json";

bool pid_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// The live pid recorded for the job, if its command line still mentions the job dir.
std::optional<pid_t> live_worker_pid(const fs::path& job_dir) {
  auto txt = read_file(job_dir / kPidFile);
  if (!txt.ok()) return std::nullopt;
  pid_t pid = static_cast<pid_t>(std::atol(txt->c_str()));
  if (!pid_alive(pid)) return std::nullopt;
  auto cmd = read_file(fs::path("/proc") / std::to_string(pid) / "cmdline");
  if (!cmd.ok() || cmd->find(job_dir.filename().string()) == std::string::npos) return std::nullopt;
  // A zombie (exited, not reaped) is not running.
  auto stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
  if (stat.ok()) {
    auto rp = stat->rfind(')');
    if (rp != std::string::npos && rp + 2 < stat->size() && (*stat)[rp + 2] == 'Z') return std::nullopt;
  }
  return pid;
}

std::string program_next_to(const std::string& self, const std::string& name) {
  fs::path p = fs::path(self).parent_path() / name;
  if (fs::exists(p)) return p.string();
  // Build tree layout: build/orchestrator/migvis and build/worker/migvis-worker.
  fs::path q = fs::path(self).parent_path().parent_path() / "worker" / name;
  if (fs::exists(q)) return q.string();
  return p.string();
}

std::string key_text(const sweeps::PlannedJob& j) {
  std::string k;
  for (auto& [name, v] : j.key) k += (k.empty() ? "" : "/") + v;
  return k.empty() ? "-" : k;
}

class ExecHooks : public SchedulerHooks {
 public:
  ExecHooks(const sweeps::Plan& plan, const RunOptions& opts, RunRecorder* rec, Scheduler** sched,
            StageHistory history, Clock* clock)
      : plan_(plan),
        opts_(opts),
        rec_(rec),
        sched_(sched),
        cancel_file_(opts.root / "sweeps" / (plan.sweep + ".cancel")),
        history_(std::move(history)),
        clock_(clock),
        t0_(clock->now_s()),
        display_([&] {
          auto o = ProgressDisplay::detect(opts.out);
          o.live = o.live && opts.tty;
          o.color = o.color && o.live;
          o.progress_every_s = opts.progress_every_s;
          return o;
        }()) {}

  Status before_start(size_t i, SchedJob& job) override {
    // A previous attempt's result.yaml (failed) must not be mistaken for this one's,
    // nor its progress.yaml for this attempt's progress.
    std::error_code ec;
    fs::remove(job.launch.dir / schema::kResultFile, ec);
    samples_.erase(job.id);
    return Status::Ok();
  }

  bool result_ok(size_t i, const SchedJob& job, int exit_code) override {
    auto r = schema::read_job_result(job.launch.dir);
    bool ok = r.ok() && r->status == "ok";
    if (r.ok()) {
      Status st = rec_->ingest(job.launch.dir);
      if (!st.ok()) MIGVIS_LOG_WARN("ingest {}: {}", job.launch.dir.string(), st.message());
    }
    return ok;
  }

  void on_state(size_t i, const SchedJob& job) override {
    Status st = rec_->job_state(plan_.jobs[i], job);
    if (!st.ok()) MIGVIS_LOG_WARN("recording {}: {}", job.id, st.message());
    switch (job.state) {
      case JobState::kDone: ++done_; history_.add(job.stage, job.wall_s); break;
      case JobState::kFailed: ++failed_; break;
      case JobState::kBlocked: ++blocked_; break;
      default: break;
    }
    if (job.state == JobState::kBlocked) return;  // the summary lists them
    // Live: running jobs show in the block; their start is only news with a note.
    if (display_.options().live && job.state == JobState::kRunning && job.note.empty()) return;
    std::string extra = job.state == JobState::kDone ? fmt::format(" ({:.1f} s)", job.wall_s)
                        : job.note.empty()           ? ""
                                                     : " — " + job.note;
    display_.event(fmt::format("[{}/{}] {:<9} {} {} {}{}", done_ + cached_, plan_.jobs.size(), job_state_name(job.state),
                               job.stage, key_text(plan_.jobs[i]), job.id, extra),
                   clock_->now_s());
  }

  bool should_cancel() override { return fs::exists(cancel_file_); }

  void on_tick(double now_s) override {
    // Progress files are read at most about once a second.
    if ((now_s - last_tick_s_ < 0.5 && !display_.dirty()) || !*sched_) return;
    last_tick_s_ = now_s;
    if (display_.options().live) display_.set_width(ProgressDisplay::terminal_width(opts_.out));
    auto views = running_views(now_s);  // first: it refreshes eta_jobs_, which header() reads
    display_.tick(header(now_s), views, now_s);
  }

  void set_cached(size_t n) { cached_ = n; }
  void finish() {
    const double now = clock_->now_s();
    if (*sched_) running_views(now);
    display_.finish(header(now));
  }

 private:
  std::vector<RunningJobView> running_views(double now_s) {
    std::vector<RunningJobView> v;
    const auto& jobs = (*sched_)->jobs();
    eta_jobs_.assign(jobs.size(), EtaJob{});
    for (size_t i = 0; i < jobs.size(); ++i) {
      const SchedJob& j = jobs[i];
      EtaJob& e = eta_jobs_[i];
      e.stage = j.stage;
      e.deps = j.deps;
      e.state = j.state;
      e.cost = std::max(1, j.threads) * std::max(1, j.ranks);
      if (j.state != JobState::kRunning) continue;
      RunningJobView r;
      r.id = j.id;
      r.stage = j.stage;
      r.key = key_text(plan_.jobs[i]);
      r.elapsed_s = now_s - j.started_s;
      e.elapsed_s = r.elapsed_s;
      auto p = schema::read_progress(j.launch.dir);
      if (p.ok()) {
        r.phase = p->phase;
        r.step = p->step;
        r.total_steps = p->total_steps;
        e.step = p->step;
        e.total_steps = p->total_steps;
        // Rate from the first sample of this phase seen by this run (a job
        // resumed from a checkpoint starts at a high step: not its speed).
        auto it = samples_.find(j.id);
        if (it == samples_.end() || it->second.phase != p->phase || p->step < it->second.step)
          it = samples_.insert_or_assign(j.id, Sample{now_s, p->step, p->phase, now_s, p->step}).first;
        Sample& smp = it->second;
        if (p->step != smp.last_step) {
          smp.last_step = p->step;
          smp.last_change_s = now_s;
        }
        // The rate between the first sample and the last change of step: the
        // worker writes every few seconds, so "now" would make the rate sag
        // between writes and jump at each one.
        fill_rate(r, smp.t_s, smp.step, smp.last_change_s);
        if (r.eta_s > 0) r.eta_s = std::max(0.0, r.eta_s - (now_s - smp.last_change_s));
        e.remaining_s = r.eta_s;
      }
      v.push_back(std::move(r));
    }
    return v;
  }

  HeaderView header(double now_s) {
    HeaderView h;
    h.sweep = plan_.sweep;
    h.done = done_;
    h.cached = cached_;
    h.failed = failed_;
    h.blocked = blocked_;
    h.total = plan_.jobs.size();
    h.elapsed_s = now_s - t0_;
    if (*sched_ && eta_jobs_.size() == plan_.jobs.size()) {
      const auto& so = (*sched_)->options();
      h.eta_s = estimate_remaining_s(eta_jobs_, history_, so.max_parallel, so.cores);
    }
    return h;
  }

  struct Sample {
    double t_s;      // first sample of this phase
    int64_t step;
    std::string phase;
    double last_change_s;  // when the step last changed
    int64_t last_step;
  };

  const sweeps::Plan& plan_;
  const RunOptions& opts_;
  RunRecorder* rec_;
  Scheduler** sched_;
  fs::path cancel_file_;
  StageHistory history_;
  Clock* clock_;
  double t0_;
  ProgressDisplay display_;
  double last_tick_s_ = -1e300;
  std::vector<EtaJob> eta_jobs_;
  std::map<std::string, Sample> samples_;
  size_t cached_ = 0, done_ = 0, failed_ = 0, blocked_ = 0;
};

}  // namespace

// ------------------------------------------------------------ launcher

Result<int64_t> ProcessLauncher::start(const LaunchSpec& spec) {
  std::vector<std::string> env_kv;
  for (auto& [k, v] : spec.env) env_kv.push_back(k + "=" + v);
  pid_t pid = ::fork();
  if (pid < 0) return Status::Unavailable(fmt::format("fork failed: {}", std::strerror(errno)));
  if (pid == 0) {
    ::setpgid(0, 0);
    int fd = ::open(spec.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    if (::chdir(spec.dir.c_str()) != 0) _exit(66);
    for (auto& kv : env_kv) ::putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> argv;
    for (auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "migvis: cannot execute %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  ::setpgid(pid, pid);
  live_.push_back(pid);
  Status st = write_file_atomic(spec.dir / kPidFile, std::to_string(pid) + "\n");
  if (!st.ok()) MIGVIS_LOG_WARN("{}", st.message());
  return static_cast<int64_t>(pid);
}

std::optional<std::pair<int64_t, int>> ProcessLauncher::poll() {
  for (auto it = live_.begin(); it != live_.end(); ++it) {
    int status = 0;
    pid_t r = ::waitpid(static_cast<pid_t>(*it), &status, WNOHANG);
    if (r == static_cast<pid_t>(*it)) {
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      int64_t h = *it;
      live_.erase(it);
      return std::make_pair(h, code);
    }
  }
  return std::nullopt;
}

void ProcessLauncher::wait(double timeout_s) {
  // Polling at a short interval keeps this simple and portable; job runtimes
  // are seconds to hours, so 20 ms granularity costs nothing.
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    for (int64_t h : live_) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(h), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void ProcessLauncher::kill(int64_t handle) {
  ::kill(-static_cast<pid_t>(handle), SIGKILL);
  ::kill(static_cast<pid_t>(handle), SIGKILL);
  int status = 0;
  ::waitpid(static_cast<pid_t>(handle), &status, 0);
  live_.erase(std::remove(live_.begin(), live_.end(), handle), live_.end());
}

double SteadyClock::now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------ lock

Result<std::unique_ptr<RootLock>> RootLock::acquire(const fs::path& root) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(root));
  fs::path p = root / ".migvis.lock";
  int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Unavailable(fmt::format("{}: cannot open lock file: {}", p.string(), std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder;
    char buf[32] = {0};
    if (::pread(fd, buf, sizeof(buf) - 1, 0) > 0) holder = fmt::format(" (pid {})", std::atol(buf));
    ::close(fd);
    return Status::Unavailable(fmt::format(
        "{}: another migvis orchestrator{} is running on this root; wait for it, or stop it with `migvis sweep "
        "cancel --root {}`",
        p.string(), holder, root.string()));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // Only informational.
  }
  return std::unique_ptr<RootLock>(new RootLock(fd));
}

RootLock::~RootLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

// ------------------------------------------------------------ run

namespace {

// Absolute path of `name` on $PATH (execv does not search), or `name` itself.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((fs::path(dir) / name).c_str(), X_OK) == 0) return (fs::path(dir) / name).string();
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return name;
}

}  // namespace

std::vector<std::string> worker_argv(const std::string& worker, const fs::path& dir, const std::string& stage,
                                     int ranks, const RunOptions& opts) {
  const int r = opts.ranks > 0 ? opts.ranks : ranks;
  const bool parallel_stage = schema::is_data_parallel(stage);
  if (opts.executor != "mpi" || !parallel_stage || r <= 1) return {worker, "--job", dir.string()};
  std::vector<std::string> argv = {find_on_path("mpirun")};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  for (const char* a : {"--oversubscribe", "--bind-to", "none", "-np"}) argv.push_back(a);
  argv.push_back(std::to_string(r));
  argv.insert(argv.end(), {worker, "--job", dir.string()});
  return argv;
}

DiskState disk_state(const fs::path& job_dir) {
  if (fs::exists(job_dir / schema::kResultFile)) {
    auto r = schema::read_job_result(job_dir);
    if (r.ok() && r->status == "ok") return DiskState::kDone;
    if (r.ok()) return DiskState::kFailed;
  }
  if (live_worker_pid(job_dir)) return DiskState::kRunning;
  return DiskState::kPending;
}

std::vector<std::string> active_job_lines(const sweeps::Plan& plan, const fs::path& root,
                                          const std::map<std::string, std::string>& slurm_state) {
  std::vector<std::string> lines;
  for (auto& j : plan.jobs) {
    fs::path d = sweeps::job_dir_for(root, j);
    DiskState ds = disk_state(d);
    if (ds == DiskState::kDone || ds == DiskState::kFailed) continue;
    auto s = slurm_state.find(d.string());
    if (ds != DiskState::kRunning && s == slurm_state.end()) continue;
    std::string what = "no progress yet";
    if (auto p = schema::read_progress(d); p.ok()) {
      what = fmt::format("{} step {}/{}", p->phase.empty() ? "-" : p->phase, p->step, p->total_steps);
      if (p->total_steps > 0)
        what += fmt::format(" ({:.0f}%)", 100.0 * static_cast<double>(p->step) / static_cast<double>(p->total_steps));
      std::error_code ec;
      auto mtime = fs::last_write_time(d / schema::kProgressFile, ec);
      if (!ec) {
        double age = std::chrono::duration<double>(fs::file_time_type::clock::now() - mtime).count();
        what += fmt::format(", updated {} ago", format_duration(std::max(0.0, age)));
      }
    }
    lines.push_back(fmt::format("  {:<8} {:<9} {:<14} {}  {}{}", ds == DiskState::kRunning ? "running" : "active",
                                j.stage, key_text(j), j.job_id, what,
                                s == slurm_state.end() ? "" : "  [slurm " + s->second + "]"));
  }
  return lines;
}

void kill_stale_worker(const fs::path& job_dir) {
  auto pid = live_worker_pid(job_dir);
  if (!pid) return;
  MIGVIS_LOG_WARN("killing worker pid {} left running in {} by an earlier orchestrator", *pid, job_dir.string());
  ::kill(-*pid, SIGKILL);
  ::kill(*pid, SIGKILL);
  for (int i = 0; i < 250 && live_worker_pid(job_dir); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

int machine_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

std::string resolve_worker(const std::string& explicit_path, const std::string& self) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("MIGVIS_WORKER")) return env;
  return program_next_to(self, "migvis-worker");
}

Result<RunSummary> run_plan(const sweeps::Plan& plan, const std::string& sweep_text, const RunOptions& opts,
                            RunRecorder* recorder) {
  fs::path root = fs::absolute(opts.root).lexically_normal();
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(root / "sweeps" / (plan.sweep + ".yaml"), sweep_text));
  std::error_code ec;
  fs::remove(root / "sweeps" / (plan.sweep + ".cancel"), ec);

  std::string worker = resolve_worker(opts.worker, opts.self);
  std::string data_runner = opts.data_runner;
  if (data_runner.empty() && std::getenv("MIGVIS_DATA_RUNNER")) data_runner = std::getenv("MIGVIS_DATA_RUNNER");
  if (data_runner.empty()) data_runner = opts.self;

  MIGVIS_RETURN_IF_ERROR(recorder->record_plan(plan, sweep_text, root));
  // Run times of finished jobs (critical-path weights, ETA); a catalog that
  // cannot be read only costs the estimates.
  StageHistory history;
  if (auto h = load_stage_history(root, plan.sweep); h.ok()) history = std::move(*h);
  else MIGVIS_LOG_WARN("no run-time history for the ETA: {}", h.status().message());

  std::vector<SchedJob> jobs;
  jobs.reserve(plan.jobs.size());
  size_t cached = 0;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& pj = plan.jobs[i];
    fs::path dir = sweeps::job_dir_for(root, pj);
    SchedJob j;
    j.id = pj.job_id;
    j.stage = pj.stage;
    j.deps = pj.deps;
    j.launch.dir = dir;
    j.launch.log = dir / schema::kLogFile;
    if (schema::runs_in_orchestrator(pj.stage))
      j.launch.argv = {data_runner, "data", "run-job", dir.string()};
    else
      j.launch.argv = worker_argv(worker, dir, pj.stage, pj.resources.ranks, opts);
    // Threads and ranks: what the scheduler counts against --cores (it sets
    // the thread variables itself when it starts the job).
    j.threads = std::max(1, pj.resources.threads);
    const int r = opts.ranks > 0 ? opts.ranks : pj.resources.ranks;
    j.ranks = worker_argv(worker, dir, pj.stage, r, opts).size() > 3 && !schema::runs_in_orchestrator(pj.stage)
                  ? std::max(1, r)
                  : 1;
    j.weight = history.typical_s(pj.stage).value_or(default_stage_weight(pj.stage));
    if (disk_state(dir) == DiskState::kDone) {
      j.state = JobState::kCached;
      ++cached;
      // A finished job is ingested again (idempotent): a run killed between the
      // worker's result and the DB write leaves no gap.
      Status st = recorder->ingest(dir);
      if (!st.ok()) MIGVIS_LOG_WARN("ingest {}: {}", dir.string(), st.message());
    } else {
      kill_stale_worker(dir);
      if (!fs::exists(dir / schema::kJobFile)) {
        MIGVIS_RETURN_IF_ERROR(schema::write_job_spec(sweeps::job_spec_for(plan, i, root), dir));
        MIGVIS_RETURN_IF_ERROR(write_file_atomic(dir / kHashInputsFile, pj.hash_inputs.dump(2) + "\n"));
      }
    }
    jobs.push_back(std::move(j));
  }

  Scheduler* sched_ptr = nullptr;
  SteadyClock clock;
  ExecHooks hooks(plan, opts, recorder, &sched_ptr, history, &clock);
  hooks.set_cached(cached);
  ProcessLauncher launcher;
  SchedulerOptions so;
  so.max_parallel = opts.jobs;
  so.cores = opts.cores > 0 ? opts.cores : machine_cores();
  so.retries = opts.retries;
  so.poll_interval_s = 0.25;
  Scheduler sched(std::move(jobs), so, &launcher, &clock, &hooks);
  sched_ptr = &sched;
  for (size_t i = 0; i < plan.jobs.size(); ++i)
    if (sched.jobs()[i].state == JobState::kCached) {
      Status st = recorder->job_state(plan.jobs[i], sched.jobs()[i]);
      if (!st.ok()) MIGVIS_LOG_WARN("recording {}: {}", plan.jobs[i].job_id, st.message());
    }
  RunSummary s = sched.run();
  hooks.finish();
  return s;
}

}  // namespace migvis::orch
