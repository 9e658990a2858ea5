#include "orchestrator/slurm/sweep_submit.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "schemas/job_spec.h"
#include "schemas/stages.h"

namespace migvis::orch {


// Levels (one per stage) of the plan jobs `include` selects, in plan order;
// writes missing job dirs. `extra_after_ok(i)` adds SLURM ids job i must wait
// for beyond the selected jobs (resume: parents still queued from earlier rounds).
Result<std::vector<slurm::Level>> levels_for(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                             const std::function<bool(size_t)>& include,
                                             const std::function<std::vector<std::string>(size_t)>& extra_after_ok) {
  const fs::path root = fs::absolute(opts.root);
  std::vector<slurm::Level> levels;
  std::map<std::string, size_t> level_of_stage;
  std::vector<std::set<std::string>> parent_stages;
  std::vector<std::set<std::string>> extra;
  std::map<size_t, std::pair<size_t, size_t>> where;  // plan job -> (level, index in it)
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& pj = plan.jobs[i];
    const fs::path dir = sweeps::job_dir_for(root, pj);
    if (!include(i)) continue;
    if (!fs::exists(dir / schema::kJobFile)) {
      MIGVIS_RETURN_IF_ERROR(schema::write_job_spec(sweeps::job_spec_for(plan, i, root), dir));
      MIGVIS_RETURN_IF_ERROR(write_file_atomic(dir / "hash_inputs.json", pj.hash_inputs.dump(2) + "\n"));
    }
    auto it = level_of_stage.find(pj.stage);
    if (it == level_of_stage.end()) {
      slurm::Level lv;
      auto& s = lv.spec;
      s.sweep = plan.sweep;
      s.stage = pj.stage;
      s.name = fmt::format("migvis-{}-{}", plan.sweep, pj.stage);
      if (schema::runs_in_orchestrator(pj.stage)) s.command = {opts.self, "data", "run-job"};
      else s.command = {opts.worker, "--job"};
      // One allocation shape per stage: the stage's resources (the sweep sets them per stage).
      s.cpus_per_task = std::max(1, pj.resources.threads);
      s.ntasks = schema::is_data_parallel(pj.stage) ? std::max(1, pj.resources.ranks) : 1;
      s.gpus = pj.resources.gpus;
      s.mem_gb = pj.resources.mem_gb;
      s.time_min = pj.resources.time_min;
      s.partition = opts.partition;
      s.account = opts.account;
      s.qos = opts.qos;
      s.throttle = opts.throttle;
      s.signal_seconds = opts.signal_seconds;
      s.log_dir = root / "slurm" / plan.sweep / "logs";
      it = level_of_stage.emplace(pj.stage, levels.size()).first;
      levels.push_back(std::move(lv));
      parent_stages.emplace_back();
      extra.emplace_back();
    }
    slurm::Level& lv = levels[it->second];
    where[i] = {it->second, lv.spec.job_dirs.size()};
    lv.spec.job_dirs.push_back(dir);
    std::vector<std::pair<size_t, size_t>> parents;
    for (size_t d : pj.deps)
      if (include(d)) {
        parent_stages[it->second].insert(plan.jobs[d].stage);
        parents.push_back(where.at(d));  // plan order: parents precede
      }
    auto ids = extra_after_ok(i);
    for (auto& id : ids) extra[it->second].insert(id);
    if (!opts.barriers) {
      lv.job_parents.push_back(std::move(parents));
      lv.job_after_ok.push_back(std::move(ids));
    }
  }
  for (size_t l = 0; l < levels.size(); ++l) {
    for (auto& st : parent_stages[l]) {
      auto p = level_of_stage.find(st);
      // A parent stage with no pending jobs is complete: nothing to wait for.
      if (p != level_of_stage.end() && p->second != l) levels[l].parents.push_back(p->second);
    }
    if (opts.barriers) levels[l].spec.after_ok.assign(extra[l].begin(), extra[l].end());
  }
  return levels;
}

// One submitted level as the record stores it (schemas/slurm_record.md).
nlohmann::json level_record(const slurm::SubmittedLevel& l, const std::vector<slurm::Level>& levels) {
  nlohmann::json jl = {{"stage", l.stage}, {"arrays", l.array_ids}, {"array_sizes", l.array_sizes},
                       {"ingest", l.ingest_id}, {"ingests", l.ingest_ids}, {"shape", l.shape}};
  if (!l.job_dirs.empty()) {
    std::vector<std::string> dirs;
    for (auto& d : l.job_dirs) dirs.push_back(d.string());
    jl["job_dirs"] = dirs;
    jl["task_ids"] = l.task_ids;
    return jl;
  }
  for (auto& lv : levels)
    if (lv.spec.stage == l.stage) {
      std::vector<std::string> dirs;
      for (auto& d : lv.spec.job_dirs) dirs.push_back(d.string());
      jl["job_dirs"] = dirs;
    }
  return jl;
}

slurm::SubmitOptions submit_options(const SlurmSubmitOptions& opts, const fs::path& script_dir) {
  slurm::SubmitOptions so;
  so.script_dir = script_dir;
  so.dry_run = opts.dry_run;
  so.max_array_size = opts.max_array_size;
  so.ingest_argv = {opts.self, "results", "ingest", "--root", fs::absolute(opts.root).string()};
  so.max_split = opts.max_split;
  so.ingest_batch = opts.barriers ? 0 : opts.ingest_batch;
  return so;
}

Result<std::vector<slurm::Level>> slurm_levels(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                               size_t* cached) {
  const fs::path root = fs::absolute(opts.root);
  std::vector<bool> pending(plan.jobs.size());
  *cached = 0;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    pending[i] = disk_state(sweeps::job_dir_for(root, plan.jobs[i])) != DiskState::kDone;
    if (!pending[i]) ++*cached;
  }
  return levels_for(plan, opts, [&](size_t i) { return bool(pending[i]); },
                    [](size_t) { return std::vector<std::string>{}; });
}

Result<SlurmSubmission> submit_plan_to_slurm(const sweeps::Plan& plan, const std::string& sweep_text,
                                             const SlurmSubmitOptions& opts, RunRecorder* recorder,
                                             slurm::CommandRunner* runner) {
  const fs::path root = fs::absolute(opts.root);
  if (!opts.dry_run) MIGVIS_RETURN_IF_ERROR(recorder->record_plan(plan, sweep_text, root));
  SlurmSubmission out;
  MIGVIS_ASSIGN_OR_RETURN(auto levels, slurm_levels(plan, opts, &out.cached));
  slurm::SubmitOptions so = submit_options(opts, root / "slurm" / plan.sweep);
  MIGVIS_ASSIGN_OR_RETURN(out.levels, slurm::submit_levels(levels, so, runner));
  nlohmann::json rec = {{"sweep", plan.sweep}, {"submitted_at", schema::utc_now_iso8601()}, {"dry_run", opts.dry_run},
                        {"retries", opts.retries}, {"levels", nlohmann::json::array()},
                        {"options", {{"partition", opts.partition}, {"account", opts.account}, {"qos", opts.qos},
                                     {"throttle", opts.throttle}, {"signal_seconds", opts.signal_seconds},
                                     {"barriers", opts.barriers}, {"max_split", opts.max_split},
                                     {"ingest_batch", opts.ingest_batch}}}};
  for (auto& l : out.levels) rec["levels"].push_back(level_record(l, levels));
  out.record = root / "slurm" / (plan.sweep + ".json");
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(out.record, rec.dump(2) + "\n"));
  return out;
}

}  // namespace migvis::orch
