#include "orchestrator/slurm_submit.h"

#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "schemas/job_spec.h"

namespace migvis::orch {

Result<std::vector<slurm::Level>> slurm_levels(const sweeps::Plan& plan, const SlurmSubmitOptions& opts,
                                               size_t* cached) {
  const fs::path root = fs::absolute(opts.root);
  std::vector<slurm::Level> levels;
  std::map<std::string, size_t> level_of_stage;
  std::vector<std::set<std::string>> parent_stages;
  *cached = 0;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& pj = plan.jobs[i];
    const fs::path dir = sweeps::job_dir_for(root, pj);
    if (disk_state(dir) == DiskState::kDone) {
      ++*cached;
      continue;
    }
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
      if (pj.stage == "data") s.command = {opts.self, "data", "run-job"};
      else s.command = {opts.worker, "--job"};
      // One allocation shape per stage: the stage's resources (the sweep sets them per stage).
      s.cpus_per_task = std::max(1, pj.resources.threads);
      s.ntasks = (pj.stage == "diffusion" || pj.stage == "synthesis") ? std::max(1, pj.resources.ranks) : 1;
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
    }
    levels[it->second].spec.job_dirs.push_back(dir);
    for (size_t d : pj.deps) parent_stages[it->second].insert(plan.jobs[d].stage);
  }
  for (size_t l = 0; l < levels.size(); ++l)
    for (auto& st : parent_stages[l]) {
      auto p = level_of_stage.find(st);
      // A parent stage with no pending jobs is complete: nothing to wait for.
      if (p != level_of_stage.end() && p->second != l) levels[l].parents.push_back(p->second);
    }
  return levels;
}

Result<SlurmSubmission> submit_plan_to_slurm(const sweeps::Plan& plan, const std::string& sweep_text,
                                             const SlurmSubmitOptions& opts, RunRecorder* recorder,
                                             slurm::CommandRunner* runner) {
  const fs::path root = fs::absolute(opts.root);
  if (!opts.dry_run) MIGVIS_RETURN_IF_ERROR(recorder->record_plan(plan, sweep_text, root));
  SlurmSubmission out;
  MIGVIS_ASSIGN_OR_RETURN(auto levels, slurm_levels(plan, opts, &out.cached));
  slurm::SubmitOptions so;
  so.script_dir = root / "slurm" / plan.sweep;
  so.dry_run = opts.dry_run;
  so.max_array_size = opts.max_array_size;
  so.ingest_argv = {opts.self, "results", "ingest", "--root", root.string()};
  MIGVIS_ASSIGN_OR_RETURN(out.levels, slurm::submit_levels(levels, so, runner));
  nlohmann::json rec = {{"sweep", plan.sweep}, {"submitted_at", schema::utc_now_iso8601()}, {"dry_run", opts.dry_run}};
  for (auto& l : out.levels) {
    nlohmann::json jl = {{"stage", l.stage}, {"arrays", l.array_ids}, {"array_sizes", l.array_sizes},
                         {"ingest", l.ingest_id}};
    for (auto& lv : levels)
      if (lv.spec.stage == l.stage) {
        std::vector<std::string> dirs;
        for (auto& d : lv.spec.job_dirs) dirs.push_back(d.string());
        jl["job_dirs"] = dirs;
      }
    rec["levels"].push_back(jl);
  }
  out.record = root / "slurm" / (plan.sweep + ".json");
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(out.record, rec.dump(2) + "\n"));
  return out;
}

}  // namespace migvis::orch

namespace migvis::orch {
namespace {

Result<nlohmann::json> read_record(const fs::path& record) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(record));
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.contains("levels")) return nlohmann::json(nlohmann::json::object({{"levels", nlohmann::json::array()}}));
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Status::DataLoss(record.string() + ": not a submission record: " + e.what());
  }
}

}  // namespace

Result<std::vector<SlurmTaskState>> slurm_task_states(const fs::path& record, slurm::CommandRunner* runner,
                                                      const std::function<void(double)>& sleep_s) {
  MIGVIS_ASSIGN_OR_RETURN(auto rec, read_record(record));
  std::vector<SlurmTaskState> tasks;
  std::vector<std::string> ids;
  for (auto& l : rec["levels"]) {
    auto arrays = l.value("arrays", std::vector<std::string>{});
    auto dirs = l.value("job_dirs", std::vector<std::string>{});
    ids.insert(ids.end(), arrays.begin(), arrays.end());
    auto sizes = l.value("array_sizes", std::vector<size_t>{});
    if (sizes.size() != arrays.size())
      return Status::DataLoss(record.string() + ": array_sizes does not match arrays for stage " + l.value("stage", "?"));
    // Arrays were cut at MaxArraySize in order: task k of array i is dirs[offset_i + k].
    size_t offset = 0;
    for (size_t i = 0; i < arrays.size(); ++i) {
      for (size_t k = 0; k < sizes[i] && offset + k < dirs.size(); ++k) {
        SlurmTaskState t;
        t.stage = l.value("stage", "");
        t.task_id = arrays[i] + "_" + std::to_string(k);
        t.job_dir = dirs[offset + k];
        tasks.push_back(t);
      }
      offset += sizes[i];
    }
  }
  if (ids.empty()) return tasks;
  std::string start = rec.value("submitted_at", "now-7days");
  if (start.size() > 19) start = start.substr(0, 19);  // sacct takes YYYY-MM-DDTHH:MM:SS
  MIGVIS_ASSIGN_OR_RETURN(auto acct, slurm::query_accounting(runner, ids, start, 5, sleep_s));
  std::map<std::string, const slurm::AccountingRecord*> by_id;
  for (auto& r : acct) by_id[r.job_id] = &r;
  MIGVIS_ASSIGN_OR_RETURN(auto queue, slurm::query_queue(runner, ids));
  std::map<std::string, std::string> queued;
  for (auto& q : queue)
    for (auto& id : slurm::expand_array_id(q.job_id)) queued[id] = std::string(slurm::state_name(q.state));
  for (auto& t : tasks) {
    auto a = by_id.find(t.task_id);
    if (a != by_id.end()) {
      t.outcome = slurm::classify(*a->second);
      t.raw_state = a->second->raw_state;
    }
    auto q = queued.find(t.task_id);
    if (q != queued.end()) {  // still in the queue: squeue is the fresher source
      t.outcome = slurm::Outcome::kStillQueued;
      t.raw_state = q->second;
    }
  }
  return tasks;
}

Result<size_t> slurm_cancel(const fs::path& record, slurm::CommandRunner* runner) {
  MIGVIS_ASSIGN_OR_RETURN(auto rec, read_record(record));
  std::vector<std::string> argv = {"scancel"};
  for (auto& l : rec["levels"]) {
    for (auto& a : l.value("arrays", std::vector<std::string>{})) argv.push_back(a);
    std::string ingest = l.value("ingest", "");
    if (!ingest.empty()) argv.push_back(ingest);
  }
  if (argv.size() == 1) return size_t{0};
  MIGVIS_ASSIGN_OR_RETURN(auto out, runner->run(argv));
  if (out.exit_code != 0) return Status::Unavailable("scancel failed: " + out.err);
  return argv.size() - 1;
}

}  // namespace migvis::orch
