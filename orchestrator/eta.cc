#include "orchestrator/eta.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include <fmt/format.h>

#include "results/catalog.h"

namespace migvis::orch {

void StageHistory::add(const std::string& stage, double wall_s) {
  if (std::isfinite(wall_s) && wall_s >= 0) wall_s_[stage].push_back(wall_s);
}

std::optional<double> StageHistory::typical_s(const std::string& stage) const {
  auto it = wall_s_.find(stage);
  if (it == wall_s_.end() || it->second.empty()) return std::nullopt;
  // Median: one slow outlier (a cold cache, a busy neighbour) does not move it.
  std::vector<double> v = it->second;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t StageHistory::count(const std::string& stage) const {
  auto it = wall_s_.find(stage);
  return it == wall_s_.end() ? 0 : it->second.size();
}

Result<StageHistory> load_stage_history(const fs::path& root, const std::string& sweep) {
  StageHistory h;
  fs::path db = catalog::db_path_for_root(root);
  if (!fs::exists(db)) return h;
  MIGVIS_ASSIGN_OR_RETURN(auto cat, catalog::Catalog::open(db, catalog::Catalog::Mode::kReadOnly));
  MIGVIS_ASSIGN_OR_RETURN(auto q, cat->query("SELECT stage, wall_s, sweep FROM jobs WHERE status = 'done' AND "
                                             "wall_s IS NOT NULL ORDER BY stage"));
  // Stages with finished jobs in this sweep use only those.
  std::set<std::string> in_sweep;
  for (auto& row : q.rows)
    if (catalog::value_to_string(row.at(2)) == sweep) in_sweep.insert(catalog::value_to_string(row.at(0)));
  for (auto& row : q.rows) {
    std::string stage = catalog::value_to_string(row.at(0));
    if (in_sweep.count(stage) && catalog::value_to_string(row.at(2)) != sweep) continue;
    h.add(stage, std::atof(catalog::value_to_string(row.at(1)).c_str()));
  }
  return h;
}

std::optional<double> remaining_from_progress(const EtaJob& j) {
  if (j.remaining_s >= 0) return j.remaining_s;
  if (j.total_steps <= 0 || j.step <= 0 || j.elapsed_s <= 0) return std::nullopt;
  double f = std::min(1.0, static_cast<double>(j.step) / static_cast<double>(j.total_steps));
  return j.elapsed_s * (1 - f) / f;
}

std::optional<double> estimate_remaining_s(const std::vector<EtaJob>& jobs, const StageHistory& history,
                                           int max_parallel, int cores) {
  const size_t n = jobs.size();
  auto remaining = [&](size_t i) { return jobs[i].state == JobState::kPending || jobs[i].state == JobState::kRunning; };
  // A stage without history borrows the projected length of its running jobs.
  std::map<std::string, std::pair<double, int>> projected;  // stage -> (sum of projected totals, count)
  for (auto& j : jobs)
    if (j.state == JobState::kRunning)
      if (auto r = remaining_from_progress(j)) {
        projected[j.stage].first += j.elapsed_s + *r;
        projected[j.stage].second += 1;
      }
  auto typical = [&](const std::string& stage) -> std::optional<double> {
    if (auto t = history.typical_s(stage)) return t;
    auto it = projected.find(stage);
    if (it != projected.end()) return it->second.first / it->second.second;
    return std::nullopt;
  };
  std::vector<double> left(n, 0);  // seconds each remaining job still needs
  for (size_t i = 0; i < n; ++i) {
    if (!remaining(i)) continue;
    const EtaJob& j = jobs[i];
    if (j.state == JobState::kRunning) {
      if (auto r = remaining_from_progress(j)) {
        left[i] = *r;
      } else if (auto t = typical(j.stage)) {
        left[i] = std::max(0.0, *t - j.elapsed_s);
      } else {
        return std::nullopt;
      }
    } else {
      auto t = typical(j.stage);
      if (!t) return std::nullopt;
      left[i] = *t;
    }
  }
  // Critical-path priorities from these durations (deps precede dependents).
  std::vector<std::vector<size_t>> dependents(n);
  for (size_t i = 0; i < n; ++i)
    for (size_t d : jobs[i].deps) dependents[d].push_back(i);
  std::vector<double> prio(n, 0);
  for (size_t k = n; k-- > 0;) {
    double down = 0;
    for (size_t d : dependents[k]) down = std::max(down, prio[d]);
    prio[k] = left[k] + down;
  }
  // Event simulation with the scheduler's rule (scheduler.cc start_ready).
  auto cost = [&](size_t i) { return cores > 0 ? std::min(std::max(1, jobs[i].cost), cores) : std::max(1, jobs[i].cost); };
  std::vector<int> state(n, 0);  // 0 waiting, 1 running, 2 finished (or not waited for)
  std::vector<double> ends(n, 0);
  int used = 0;
  size_t running = 0;
  double t = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!remaining(i)) state[i] = 2;
    else if (jobs[i].state == JobState::kRunning) {
      state[i] = 1;
      ends[i] = left[i];
      used += cost(i);
      ++running;
    }
  }
  const size_t cap = static_cast<size_t>(std::max(1, max_parallel));
  while (true) {
    std::vector<size_t> ready;
    for (size_t i = 0; i < n; ++i) {
      if (state[i] != 0) continue;
      bool ok = true;
      for (size_t d : jobs[i].deps)
        ok &= state[d] == 2 && jobs[d].state != JobState::kFailed && jobs[d].state != JobState::kBlocked &&
              jobs[d].state != JobState::kCancelled;
      if (ok) ready.push_back(i);
    }
    std::stable_sort(ready.begin(), ready.end(), [&](size_t a, size_t b) { return prio[a] > prio[b]; });
    for (size_t i : ready) {
      if (running >= cap) break;
      const bool oversized = cores > 0 && jobs[i].cost > cores;
      if (oversized && running > 0) break;
      if (cores > 0 && used + cost(i) > cores) continue;
      state[i] = 1;
      ends[i] = t + left[i];
      used += cost(i);
      ++running;
      if (oversized) break;
    }
    if (running == 0) break;  // nothing runs and nothing can start: done (or stuck behind failures)
    double next = INFINITY;
    for (size_t i = 0; i < n; ++i)
      if (state[i] == 1) next = std::min(next, ends[i]);
    t = next;
    for (size_t i = 0; i < n; ++i)
      if (state[i] == 1 && ends[i] <= t) {
        state[i] = 2;
        used -= cost(i);
        --running;
      }
  }
  return t;
}

double default_stage_weight(const std::string& stage) {
  // Rough shares of the quick start's wall time (docs/BENCHMARKS.md): only the
  // order matters for the critical path until history replaces them.
  static const std::map<std::string, double> w = {{"data", 1},  {"vae", 3},       {"diffusion", 30},
                                                 {"critic", 3}, {"synthesis", 20}, {"eval", 5}};
  auto it = w.find(stage);
  return it == w.end() ? 1 : it->second;
}

}  // namespace migvis::orch
