#include "orchestrator/scheduler.h"

#include <fmt/format.h>

namespace migvis::orch {

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

void Scheduler::start_ready() {
  while (next_ < jobs_.size() && jobs_[next_].state != JobState::kPending) ++next_;
  for (size_t i = next_; i < jobs_.size() && running_.size() < static_cast<size_t>(opts_.max_parallel); ++i) {
    if (!ready(i)) continue;
    SchedJob& j = jobs_[i];
    Status st = hooks_->before_start(i, j);
    if (st.ok()) {
      auto h = launcher_->start(j.launch);
      if (h.ok()) {
        j.started_s = clock_->now_s();
        running_[*h] = i;
        set_state(i, JobState::kRunning);
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
      if (i < next_) next_ = i;
      return;
    }
    j.note = fmt::format("gave up after {} requeues (exit 75)", j.requeues - 1);
  } else {
    ++j.attempts;
    bool retryable = code != 65 && code != 66 && code != 73 && code != 74;
    if (retryable && j.attempts <= opts_.retries) {
      j.note = fmt::format("retrying after exit {} (attempt {} of {})", code, j.attempts + 1, opts_.retries + 1);
      set_state(i, JobState::kPending);
      if (i < next_) next_ = i;
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
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (jobs_[i].state == JobState::kPending) {
      jobs_[i].note = "cancelled before start";
      set_state(i, JobState::kCancelled);
    }
}

double Scheduler::eta_s() const {
  double sum = 0;
  size_t n = 0, remaining = 0;
  for (auto& j : jobs_) {
    if (j.state == JobState::kDone) {
      sum += j.wall_s;
      ++n;
    }
    if (j.state == JobState::kPending || j.state == JobState::kRunning) ++remaining;
  }
  if (n == 0) return -1;
  return sum / static_cast<double>(n) * static_cast<double>(remaining) / static_cast<double>(opts_.max_parallel);
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
