#include "sweeps/unused.h"

#include <fmt/format.h>

namespace migvis::sweeps {

bool stage_feeds_tables(const std::string& stage) { return stage == "vae" || stage == "eval"; }

std::vector<size_t> unused_jobs(const Plan& plan) {
  const size_t n = plan.jobs.size();
  std::vector<bool> used(n);
  for (size_t i = 0; i < n; ++i) used[i] = stage_feeds_tables(plan.jobs[i].stage);
  // Plan order is topological (a job's deps precede it): one backward pass
  // carries "used" from every job to everything it reads.
  for (size_t i = n; i-- > 0;)
    if (used[i])
      for (size_t d : plan.jobs[i].deps) used[d] = true;
  std::vector<size_t> out;
  for (size_t i = 0; i < n; ++i)
    if (!used[i]) out.push_back(i);
  return out;
}

Result<Plan> drop_jobs(const Plan& plan, const std::vector<size_t>& drop) {
  const size_t n = plan.jobs.size();
  std::vector<bool> gone(n);
  for (size_t i : drop) {
    if (i >= n) return Status::InvalidArgument(fmt::format("no job {} in a plan of {}", i, n));
    gone[i] = true;
  }
  std::vector<size_t> new_index(n, n);
  Plan out = plan;
  out.jobs.clear();
  for (size_t i = 0; i < n; ++i) {
    if (gone[i]) continue;
    PlannedJob j = plan.jobs[i];
    for (size_t& d : j.deps) {
      if (gone[d])
        return Status::InvalidArgument(fmt::format("{} job {} reads {} job {}, which would be dropped", j.stage,
                                                   j.job_id, plan.jobs[d].stage, plan.jobs[d].job_id));
      d = new_index[d];
    }
    for (auto& [stage, u] : j.upstream) {
      if (gone[u])
        return Status::InvalidArgument(fmt::format("{} job {} descends from {} job {}, which would be dropped", j.stage,
                                                   j.job_id, plan.jobs[u].stage, plan.jobs[u].job_id));
      u = new_index[u];
    }
    new_index[i] = out.jobs.size();
    out.jobs.push_back(std::move(j));
  }
  return out;
}

std::vector<std::string> unused_report(const Plan& plan, const std::vector<size_t>& unused, bool list) {
  std::map<std::string, size_t> per, total = plan.count_by_stage();
  for (size_t i : unused) ++per[plan.jobs[i].stage];
  std::vector<std::string> lines;
  for (auto& st : stage_names()) {
    auto it = per.find(st);
    if (it == per.end()) continue;
    lines.push_back(fmt::format("{}: {} of {} jobs feed nothing (no downstream job reads them, no table uses them)",
                                st, it->second, total[st]));
    if (!list) continue;
    for (size_t i : unused) {
      const auto& j = plan.jobs[i];
      if (j.stage != st) continue;
      std::string key;
      for (auto& [k, v] : j.key) key += (key.empty() ? "" : ",") + k + "=" + v;
      lines.push_back(fmt::format("  {} {}", j.job_id, key));
    }
  }
  return lines;
}

Result<std::vector<std::string>> unused_lines(Plan* plan, bool prune, bool list) {
  auto unused = unused_jobs(*plan);
  auto lines = unused_report(*plan, unused, list);
  if (unused.empty()) return lines;
  if (!prune) {
    lines.push_back("--prune-unused drops them");
    return lines;
  }
  MIGVIS_ASSIGN_OR_RETURN(*plan, drop_jobs(*plan, unused));
  lines.push_back(fmt::format("{} jobs dropped (--prune-unused)", unused.size()));
  return lines;
}

}  // namespace migvis::sweeps
