#include "orchestrator/slurm/sweep_status.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "schemas/job_spec.h"
#include "schemas/stages.h"

namespace migvis::orch {
namespace {

Result<nlohmann::json> read_record(const fs::path& record) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(record));
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) return Status::DataLoss(record.string() + ": not a submission record: not a JSON object");
    if (!j.contains("levels")) j["levels"] = nlohmann::json::array();  // nothing was submitted
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
    // Task k of array i is dirs[offset_i + k]; its id is task_ids[i][k] (absent: k).
    auto tids = l.value("task_ids", std::vector<std::vector<int>>{});
    if (!tids.empty() && tids.size() != arrays.size())
      return Status::DataLoss(record.string() + ": task_ids does not match arrays for stage " + l.value("stage", "?"));
    size_t offset = 0;
    for (size_t i = 0; i < arrays.size(); ++i) {
      if (!tids.empty() && tids[i].size() != sizes[i])
        return Status::DataLoss(record.string() + ": task_ids does not match array_sizes for stage " +
                                l.value("stage", "?"));
      for (size_t k = 0; k < sizes[i] && offset + k < dirs.size(); ++k) {
        SlurmTaskState t;
        t.stage = l.value("stage", "");
        t.task_id = arrays[i] + "_" + std::to_string(tids.empty() ? static_cast<int>(k) : tids[i][k]);
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
  std::map<std::string, const slurm::QueueRecord*> queued;
  for (auto& q : queue)
    for (auto& id : slurm::expand_array_id(q.job_id)) queued[id] = &q;
  for (auto& t : tasks) {
    auto a = by_id.find(t.task_id);
    if (a != by_id.end()) {
      t.outcome = slurm::classify(*a->second);
      t.raw_state = a->second->raw_state;
      t.known = true;
    }
    auto q = queued.find(t.task_id);
    if (q != queued.end()) {  // still in the queue: squeue is the fresher source
      t.outcome = slurm::Outcome::kStillQueued;
      t.raw_state = std::string(slurm::state_name(q->second->state));
      t.reason = q->second->reason;
      t.known = true;
    }
  }
  return tasks;
}

Result<size_t> slurm_cancel(const fs::path& record, slurm::CommandRunner* runner) {
  MIGVIS_ASSIGN_OR_RETURN(auto rec, read_record(record));
  std::vector<std::string> argv = {"scancel"};
  for (auto& l : rec["levels"]) {
    for (auto& a : l.value("arrays", std::vector<std::string>{})) argv.push_back(a);
    std::set<std::string> ingests;
    for (auto& id : l.value("ingests", std::vector<std::string>{})) ingests.insert(id);
    std::string ingest = l.value("ingest", "");
    if (!ingest.empty()) ingests.insert(ingest);
    argv.insert(argv.end(), ingests.begin(), ingests.end());
  }
  if (argv.size() == 1) return size_t{0};
  MIGVIS_ASSIGN_OR_RETURN(auto out, runner->run(argv));
  if (out.exit_code != 0) return Status::Unavailable("scancel failed: " + out.err);
  return argv.size() - 1;
}

namespace {

// "vae/0123abcd..." from ".../jobs/vae/0123abcd...": the record's job dirs are
// absolute at submit time; the key survives a different --root spelling.
std::string job_key(const fs::path& dir) {
  return (dir.parent_path().filename() / dir.filename()).string();
}

}  // namespace

Result<SlurmResumeReport> resume_submitted_sweep(const sweeps::Plan& plan, const SlurmSubmitOptions& given,
                                                 int retries, slurm::CommandRunner* runner,
                                                 const std::function<void(double)>& sleep_s) {
  const fs::path root = fs::absolute(given.root);
  const fs::path record = root / "slurm" / (plan.sweep + ".json");
  MIGVIS_ASSIGN_OR_RETURN(auto rec, read_record(record));
  // Resubmit where the sweep was submitted unless told otherwise.
  SlurmSubmitOptions opts = given;
  const nlohmann::json o = rec.value("options", nlohmann::json::object());
  if (opts.partition.empty()) opts.partition = o.value("partition", "");
  if (opts.account.empty()) opts.account = o.value("account", "");
  if (opts.qos.empty()) opts.qos = o.value("qos", "");
  if (opts.throttle == 0) opts.throttle = o.value("throttle", 0);
  opts.signal_seconds = o.value("signal_seconds", opts.signal_seconds);
  // The same dependency shapes as the submission (records without them: barriers).
  opts.barriers = o.value("barriers", true);
  opts.max_split = o.value("max_split", opts.max_split);
  opts.ingest_batch = o.value("ingest_batch", opts.ingest_batch);
  SlurmResumeReport out;
  out.retries = retries >= 0 ? retries : rec.value("retries", 2);
  MIGVIS_ASSIGN_OR_RETURN(auto tasks, slurm_task_states(record, runner, sleep_s));
  // The latest task of each job (rounds are appended in order).
  std::map<std::string, const SlurmTaskState*> latest;
  for (auto& t : tasks) latest[job_key(t.job_dir)] = &t;
  nlohmann::json& jobs = rec["jobs"];
  if (!jobs.is_object()) jobs = nlohmann::json::object();

  const size_t n = plan.jobs.size();
  enum class Verdict { kDone, kQueued, kSubmit, kOverBudget, kBlocked };
  std::vector<Verdict> verdict(n, Verdict::kSubmit);
  std::vector<std::string> why(n);
  std::vector<std::string> queued_task(n);
  std::vector<std::string> stuck;  // tasks that can never start: scancel before resubmitting
  for (size_t i = 0; i < n; ++i) {
    const fs::path dir = sweeps::job_dir_for(root, plan.jobs[i]);
    const std::string key = job_key(dir);
    if (disk_state(dir) == DiskState::kDone) {
      verdict[i] = Verdict::kDone;
      continue;
    }
    bool parent_stopped = false;
    for (size_t d : plan.jobs[i].deps)
      if (verdict[d] == Verdict::kOverBudget || verdict[d] == Verdict::kBlocked) parent_stopped = true;
    auto it = latest.find(key);
    if (it != latest.end()) {
      const SlurmTaskState& t = *it->second;
      if (t.outcome == slurm::Outcome::kStillQueued && t.known && t.reason != "DependencyNeverSatisfied") {
        verdict[i] = Verdict::kQueued;
        queued_task[i] = t.task_id;
        continue;
      }
      if (t.outcome == slurm::Outcome::kStillQueued && t.known) stuck.push_back(t.task_id);
      // SLURM says done but the directory has no ok result: the job's own failure.
      const bool own = slurm::counts_against_retries(t.outcome) || t.outcome == slurm::Outcome::kDone;
      if (t.known && t.outcome != slurm::Outcome::kStillQueued) {
        nlohmann::json& j = jobs[key];
        if (!j.is_object()) j = {{"charged", nlohmann::json::array()}, {"free", nlohmann::json::array()}};
        nlohmann::json& list = j[own ? "charged" : "free"];
        if (std::find(list.begin(), list.end(), nlohmann::json(t.task_id)) == list.end()) list.push_back(t.task_id);
      }
      const size_t charged = jobs.contains(key) ? jobs[key].value("charged", nlohmann::json::array()).size() : 0;
      why[i] = fmt::format("task {} {}: {}", t.task_id, t.known ? t.raw_state : std::string("unknown to SLURM"),
                           t.known ? std::string(slurm::outcome_name(t.outcome)) : std::string("lost"));
      if (charged > static_cast<size_t>(out.retries)) {
        verdict[i] = Verdict::kOverBudget;
        why[i] += fmt::format("; {} own failure{} > retries {}: not resubmitted", charged, charged == 1 ? "" : "s",
                              out.retries);
        continue;
      }
      why[i] += own ? fmt::format(" (counts: {} of {} retries used)", charged, out.retries)
                    : std::string(" (free: not the job's fault)");
    } else {
      why[i] = "never submitted";
    }
    if (parent_stopped) {
      verdict[i] = Verdict::kBlocked;
      why[i] = "blocked: an upstream job is over its retry budget";
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& pj = plan.jobs[i];
    switch (verdict[i]) {
      case Verdict::kDone: ++out.done; break;
      case Verdict::kQueued: ++out.queued; break;
      case Verdict::kSubmit:
        ++out.resubmitted;
        out.lines.push_back(fmt::format("resubmit {} {}: {}", pj.stage, pj.job_id, why[i]));
        break;
      case Verdict::kOverBudget:
        ++out.over_budget;
        out.lines.push_back(fmt::format("failed {} {}: {}", pj.stage, pj.job_id, why[i]));
        break;
      case Verdict::kBlocked:
        ++out.blocked;
        out.lines.push_back(fmt::format("blocked {} {}: {}", pj.stage, pj.job_id, why[i]));
        break;
    }
  }

  if (!stuck.empty() && !opts.dry_run) {
    std::vector<std::string> argv = {"scancel"};
    argv.insert(argv.end(), stuck.begin(), stuck.end());
    MIGVIS_ASSIGN_OR_RETURN(auto r, runner->run(argv));
    if (r.exit_code != 0) return Status::Unavailable("scancel of tasks that can never start failed: " + r.err);
  }
  if (out.resubmitted > 0) {
    // A failed attempt's result.yaml must not be taken for the next attempt's.
    for (size_t i = 0; i < n; ++i)
      if (verdict[i] == Verdict::kSubmit && !opts.dry_run) {
        std::error_code ec;
        fs::remove(sweeps::job_dir_for(root, plan.jobs[i]) / schema::kResultFile, ec);
      }
    auto include = [&](size_t i) { return verdict[i] == Verdict::kSubmit; };
    auto extra = [&](size_t i) {
      std::vector<std::string> ids;
      for (size_t d : plan.jobs[i].deps)
        if (verdict[d] == Verdict::kQueued) ids.push_back(queued_task[d]);
      return ids;
    };
    MIGVIS_ASSIGN_OR_RETURN(auto levels, levels_for(plan, opts, include, extra));
    const int round = rec.value("rounds", 0) + 1;
    slurm::SubmitOptions so = submit_options(opts, root / "slurm" / plan.sweep / fmt::format("resume{}", round));
    MIGVIS_ASSIGN_OR_RETURN(out.levels, slurm::submit_levels(levels, so, runner));
    if (opts.dry_run) return out;
    for (auto& l : out.levels) {
      nlohmann::json jl = level_record(l, levels);
      jl["round"] = round;
      rec["levels"].push_back(jl);
    }
    rec["rounds"] = round;
    rec["resumed_at"] = schema::utc_now_iso8601();
  }
  if (!opts.dry_run) MIGVIS_RETURN_IF_ERROR(write_file_atomic(record, rec.dump(2) + "\n"));
  return out;
}

}  // namespace migvis::orch
