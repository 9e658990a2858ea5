#include "orchestrator/scheduler.h"

#include <algorithm>

#include <fmt/format.h>

namespace migvis::orch {

std::map<std::string, std::string> thread_env(int threads_per_rank, bool shared) {
  std::string n = std::to_string(std::max(1, threads_per_rank));
  std::map<std::string, std::string> env = {
      {"OMP_NUM_THREADS", n}, {"MKL_NUM_THREADS", n}, {"OPENBLAS_NUM_THREADS", n}};
  // Spin-waiting OpenMP threads burn cores another job needs (issue 15 measured
  // a 13x slowdown with two 2-thread jobs on 2 cores); passive waiting costs a
  // job alone on its cores a little latency, so only when sharing.
  if (shared) env["OMP_WAIT_POLICY"] = "PASSIVE";
  return env;
}

const char* job_state_name(JobState s) {
  switch (s) {
    case JobState::kPending: return "pending";
    case JobState::kCached: return "cached";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kBlocked: return "blocked";
    case JobState::kCancelled: return "cancelled";
  }
  return "?";
}

Scheduler::Scheduler(std::vector<SchedJob> jobs, SchedulerOptions opts, Launcher* launcher, Clock* clock,
                     SchedulerHooks* hooks)
    : jobs_(std::move(jobs)), opts_(opts), launcher_(launcher), clock_(clock), hooks_(hooks) {
  dependents_.resize(jobs_.size());
  for (size_t i = 0; i < jobs_.size(); ++i)
    for (size_t d : jobs_[i].deps) dependents_[d].push_back(i);
  if (opts_.max_parallel < 1) opts_.max_parallel = 1;
  if (opts_.cores < 0) opts_.cores = 0;
  // Critical path: jobs come in topological order (deps precede), so one
  // backward pass gives each job its longest weighted path to a sink.
  priority_.assign(jobs_.size(), 0);
  for (size_t k = jobs_.size(); k-- > 0;) {
    double down = 0;
    for (size_t d : dependents_[k]) down = std::max(down, priority_[d]);
    priority_[k] = std::max(0.0, jobs_[k].weight) + down;
  }
  // A job whose upstream is already failed/blocked (e.g. given so) is blocked too.
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (jobs_[i].state == JobState::kFailed) block_dependents(i);
}

bool Scheduler::ready(size_t i) const {
  if (jobs_[i].state != JobState::kPending) return false;
  for (size_t d : jobs_[i].deps)
    if (jobs_[d].state != JobState::kDone && jobs_[d].state != JobState::kCached) return false;
  return true;
}

void Scheduler::set_state(size_t i, JobState s) {
  jobs_[i].state = s;
  hooks_->on_state(i, jobs_[i]);
}

void Scheduler::block_dependents(size_t failed) {
  std::vector<size_t> stack = dependents_[failed];
  while (!stack.empty()) {
    size_t j = stack.back();
    stack.pop_back();
    if (jobs_[j].state != JobState::kPending) continue;
    // The note names the root cause (the failed job), also for transitive dependents.
    jobs_[j].note = fmt::format("blocked: upstream {} {} {}", jobs_[failed].stage, jobs_[failed].id,
                                jobs_[failed].state == JobState::kFailed ? "failed" : "is blocked");
    set_state(j, JobState::kBlocked);
    for (size_t k : dependents_[j]) stack.push_back(k);
  }
}

int Scheduler::cost(size_t i) const {
  int c = std::max(1, jobs_[i].threads) * std::max(1, jobs_[i].ranks);
  return opts_.cores > 0 ? std::min(c, opts_.cores) : c;
}

void Scheduler::start_ready() {
  // Ready jobs, most critical first (ties: plan order, which is stage order).
  std::vector<size_t> ready_jobs;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (ready(i)) ready_jobs.push_back(i);
  std::stable_sort(ready_jobs.begin(), ready_jobs.end(),
                   [&](size_t a, size_t b) { return priority_[a] > priority_[b]; });
  const int cores = opts_.cores;
  for (size_t i : ready_jobs) {
    if (running_.size() >= static_cast<size_t>(opts_.max_parallel)) break;
    SchedJob& j = jobs_[i];
    const int want = std::max(1, j.threads) * std::max(1, j.ranks);
    const bool oversized = cores > 0 && want > cores;
    if (oversized && !running_.empty()) {
      // It needs the whole machine: start nothing smaller in front of it, or
      // a stream of small jobs could keep it waiting forever.
      break;
    }
    if (cores > 0 && used_threads_ + cost(i) > cores) continue;  // a smaller job may still fit
    int per_rank = std::max(1, j.threads);
    if (oversized) {
      per_rank = std::max(1, cores / std::max(1, j.ranks));
      j.note = fmt::format("asks for {} threads > --cores {}: runs alone with {}", want, cores,
                           per_rank * std::max(1, j.ranks));
    }
    j.granted_threads = per_rank;
    // Shared: another job may run beside it now or later.
    const bool shared = opts_.max_parallel > 1 && (cores == 0 || per_rank * std::max(1, j.ranks) < cores);
    for (auto& [k, v] : thread_env(per_rank, shared)) j.launch.env[k] = v;
    Status st = hooks_->before_start(i, j);
    if (st.ok()) {
      auto h = launcher_->start(j.launch);
      if (h.ok()) {
        j.started_s = clock_->now_s();
        running_[*h] = i;
        used_threads_ += cost(i);
        set_state(i, JobState::kRunning);
        if (oversized) break;
        continue;
      }
      st = h.status();
    }
    j.note = "could not start: " + st.message();
    set_state(i, JobState::kFailed);
    block_dependents(i);
  }
}

void Scheduler::on_exit(int64_t handle, int code) {
  auto it = running_.find(handle);
  if (it == running_.end()) return;
  size_t i = it->second;
  running_.erase(it);
  used_threads_ -= cost(i);
  SchedJob& j = jobs_[i];
  j.wall_s = clock_->now_s() - j.started_s;
  if (j.state == JobState::kCancelled) return;
  if (hooks_->result_ok(i, j, code)) {
    ++j.attempts;
    j.note.clear();
    set_state(i, JobState::kDone);
    return;
  }
  // schemas/job.md: 65/66 bad or missing input, 73/74 permanent I/O (permission,
  // read-only filesystem, disk full, quota) -> failed; 75 -> requeue (free);
  // 70, other codes and signals -> retried up to the cap.
  if (code == 75) {
    if (++j.requeues <= opts_.max_requeues) {
      j.note = "requeued after exit 75 (temporary failure / preempted)";
      set_state(i, JobState::kPending);
      return;
    }
    j.note = fmt::format("gave up after {} requeues (exit 75)", j.requeues - 1);
  } else {
    ++j.attempts;
    bool retryable = code != 65 && code != 66 && code != 73 && code != 74;
    if (retryable && j.attempts <= opts_.retries) {
      j.note = fmt::format("retrying after exit {} (attempt {} of {})", code, j.attempts + 1, opts_.retries + 1);
      set_state(i, JobState::kPending);
      return;
    }
    std::string what = code == 65   ? "bad input"
                       : code == 66 ? "missing input"
                       : code == 70 ? "internal error"
                       : code == 73 ? "permission denied / read-only filesystem"
                       : code == 74 ? "I/O error: disk full, quota or device"
                       : code > 128 ? fmt::format("killed by signal {}", code - 128)
                                    : "crashed";
    j.note = fmt::format("exit {} ({}) after {} attempt{}; see {}", code, what, j.attempts, j.attempts == 1 ? "" : "s",
                         j.launch.log.string());
  }
  set_state(i, JobState::kFailed);
  block_dependents(i);
}

void Scheduler::cancel_all() {
  for (auto& [h, i] : running_) {
    launcher_->kill(h);
    jobs_[i].note = "cancelled while running";
    set_state(i, JobState::kCancelled);
  }
  running_.clear();
  used_threads_ = 0;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (jobs_[i].state == JobState::kPending) {
      jobs_[i].note = "cancelled before start";
      set_state(i, JobState::kCancelled);
    }
}

RunSummary Scheduler::summarize() const {
  RunSummary s;
  for (auto& j : jobs_) {
    switch (j.state) {
      case JobState::kDone: ++s.done; break;
      case JobState::kCached: ++s.cached; break;
      case JobState::kFailed: ++s.failed; s.lines.push_back(fmt::format("failed  {} {}: {}", j.stage, j.id, j.note)); break;
      case JobState::kBlocked: ++s.blocked; s.lines.push_back(fmt::format("blocked {} {}: {}", j.stage, j.id, j.note)); break;
      case JobState::kCancelled: ++s.cancelled; break;
      default: break;
    }
  }
  return s;
}

RunSummary Scheduler::run() {
  bool cancelled = false;
  while (true) {
    if (!cancelled && hooks_->should_cancel()) {
      cancelled = true;
      cancel_all();
    }
    if (!cancelled) start_ready();
    // Reap everything that has exited.
    while (auto e = launcher_->poll()) on_exit(e->first, e->second);
    if (!cancelled) start_ready();
    hooks_->on_tick(clock_->now_s());
    if (running_.empty()) {
      bool pending = false;
      for (size_t i = 0; i < jobs_.size() && !pending; ++i) pending = ready(i);
      if (!pending || cancelled) break;
      continue;
    }
    launcher_->wait(opts_.poll_interval_s);
  }
  // Pending jobs that can never start (should not happen: failures block) stay pending.
  return summarize();
}

}  // namespace migvis::orch
