// migvis sweep run | plan | status | resume | cancel | why
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "orchestrator/cli.h"
#include "results/dataset_io.h"
#include "orchestrator/executor.h"
#include "orchestrator/progress_display.h"
#include "orchestrator/slurm/sweep_status.h"
#include "orchestrator/recorder.h"
#include "orchestrator/rerun_trigger.h"
#include "schemas/job_spec.h"
#include "schemas/stages.h"
#include "sweeps/sweep.h"
#include "sweeps/unused.h"

namespace migvis::orch {
namespace {

// How long catalog writers wait for the single-writer lock (results/catalog.h):
// commands that must write wait long; `status` only ingests opportunistically.
constexpr double kStatusLockWaitS = 5;
constexpr double kDefaultLockWaitS = 600;

// Puts every finished job of the plan (a result.yaml on disk) into the catalog
// again (idempotent), whoever ran it. The recorder takes the writer lock
// around each ingest (never hold it around this: it is not re-entrant); the
// first refusal after lock_wait_s stops ingesting and is returned as `busy`.
struct IngestSummary {
  size_t ingested = 0;
  Status busy;
};
Result<IngestSummary> ingest_finished_jobs(const fs::path& root, const sweeps::Plan& plan, double lock_wait_s) {
  MIGVIS_ASSIGN_OR_RETURN(auto recorder, make_catalog_recorder(root, lock_wait_s));
  IngestSummary out;
  for (auto& j : plan.jobs) {
    fs::path d = sweeps::job_dir_for(root, j);
    if (!fs::exists(d / schema::kResultFile)) continue;
    Status st = recorder->ingest(d);
    if (st.code() == StatusCode::kUnavailable) {
      out.busy = st;
      break;
    }
    if (st.ok()) ++out.ingested;
  }
  return out;
}

struct SweepArgs {
  std::string file;
  std::string root = "runs";
  int jobs = 1;
  int cores = 0;  // 0: machine_cores()
  double progress_every_s = 30;
  double watch_s = 0;  // sweep status --watch interval; 0: once
  int retries = 1;
  size_t max_jobs = 100000;
  std::string name;
  std::string job;
  bool verbose = false;
  std::string executor = "local";
  int ranks = 0;
  // submit
  std::string partition, account, qos;
  int throttle = 0;
  int signal_seconds = 120;
  bool dry_run = false;
  bool keep_cache_on_code_change = false;  // run, resume
  bool prune_unused = false, barriers = false;
};

std::string self_path() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("migvis") : p.string();
}

// `keep_cache_root`: --keep-cache-on-code-change, keeping completed jobs under it.
Result<std::pair<sweeps::Plan, std::string>> load(const std::string& file, size_t max_jobs,
                                                  const fs::path& keep_cache_root = {}) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(file));
  sweeps::ExpandOptions o;
  o.max_jobs = max_jobs;
  if (!keep_cache_root.empty()) o.kept_cache = kept_cache_under(fs::absolute(keep_cache_root));
  MIGVIS_ASSIGN_OR_RETURN(sweeps::Plan plan, sweeps::expand_sweep(text, file, o));
  // An imported migvis file (format hdf5) must be a valid migvis dataset now,
  // not when its data job fails after the plan was submitted (the planner
  // already checked that every imported file exists: it hashes its content).
  for (const auto& j : plan.jobs) {
    if (j.stage != "data" || !j.params.contains("import")) continue;
    const auto& imp = j.params["import"];
    if (imp.value("format", "") != "hdf5") continue;
    data::ReadOptions ro;
    ro.images = false;
    ro.sessions = false;
    auto d = data::read_dataset(imp.value("path", ""), ro);
    if (!d.ok())
      return Status::InvalidArgument(fmt::format("{}: data.params.import.path: not a valid migvis dataset: {}", file,
                                                 d.status().message()));
  }
  return std::make_pair(std::move(plan), std::move(text));
}

// The saved copy of a sweep run earlier under root (resume/status/cancel by name).
Result<std::string> saved_sweep(const fs::path& root, const std::string& name) {
  fs::path dir = root / "sweeps";
  if (!name.empty()) {
    if (!sweeps::is_safe_name(name)) return Status::InvalidArgument(fmt::format("\"{}\" is not a sweep name", name));
    fs::path p = dir / (name + ".yaml");
    if (!fs::exists(p))
      return Status::NotFound(fmt::format("{}: no sweep \"{}\" was run under {}", p.string(), name, root.string()));
    return p.string();
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".yaml") found.push_back(e.path().string());
  if (found.empty()) return Status::NotFound(fmt::format("{}: no sweep has been run under this root", dir.string()));
  if (found.size() > 1)
    return Status::InvalidArgument(fmt::format("{} sweeps were run under {}; name one", found.size(), root.string()));
  return found.front();
}

Status do_submit(const SweepArgs& a, int retries) {
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(a.file, a.max_jobs));
  auto& [plan, text] = loaded;
  MIGVIS_ASSIGN_OR_RETURN(auto unused, sweeps::unused_lines(&plan, a.prune_unused, a.verbose));
  for (auto& line : unused) fmt::print("unused: {}\n", line);
  SlurmSubmitOptions o;
  o.barriers = a.barriers;
  o.root = a.root;
  o.partition = a.partition;
  o.account = a.account;
  o.qos = a.qos;
  o.throttle = a.throttle;
  o.signal_seconds = a.signal_seconds;
  o.dry_run = a.dry_run;
  o.retries = retries;
  o.self = self_path();
  o.worker = resolve_worker("", o.self);
  MIGVIS_ASSIGN_OR_RETURN(auto lock, RootLock::acquire(a.root));
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(fs::path(a.root) / "sweeps" / (plan.sweep + ".yaml"), text));
  MIGVIS_ASSIGN_OR_RETURN(auto recorder, make_catalog_recorder(a.root));
  slurm::SystemCommandRunner runner;
  MIGVIS_ASSIGN_OR_RETURN(auto sub, submit_plan_to_slurm(plan, text, o, recorder.get(), &runner));
  fmt::print("sweep {}: {} jobs, {} already complete; {} SLURM arrays{}\n", plan.sweep, plan.jobs.size(), sub.cached,
             sub.levels.size(), a.dry_run ? " (dry run: nothing submitted)" : "");
  for (auto& l : sub.levels) {
    std::string ids;
    for (auto& id : l.array_ids) ids += (ids.empty() ? "" : ",") + id;
    fmt::print("  {:<10} arrays {}{}\n", l.stage, ids, l.ingest_id.empty() ? "" : ", ingest " + l.ingest_id);
    fmt::print("             dependency: {}; {} ingest job(s)\n", l.shape, l.commands.size() - l.scripts.size());
    for (auto& s : l.scripts) fmt::print("             script {}\n", s.string());
    if (a.dry_run)
      for (auto& c : l.commands) {
        std::string line;
        for (auto& w : c) line += (line.empty() ? "" : " ") + slurm::shell_quote(w);
        fmt::print("             {}\n", line);
      }
  }
  fmt::print("record: {}\n", sub.record.string());
  return Status::Ok();
}

Status do_run(const SweepArgs& a, const std::string& file) {
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(file, a.max_jobs, a.keep_cache_on_code_change ? fs::path(a.root) : fs::path()));
  auto& [plan, text] = loaded;
  std::map<std::string, size_t> kept;
  for (auto& j : plan.jobs)
    if (!j.kept_from_code.empty()) ++kept[j.stage];
  for (auto& [st, n] : kept)
    fmt::print("sweep {}: {} {} job(s) kept although the code of stage {} changed (--keep-cache-on-code-change; "
               "recorded in the catalog's job provenance)\n",
               plan.sweep, n, st, st);
  RunOptions o;
  o.root = a.root;
  o.jobs = std::max(1, a.jobs);
  o.cores = a.cores;
  o.progress_every_s = a.progress_every_s;
  o.retries = std::max(0, a.retries);
  o.self = self_path();
  o.tty = ::isatty(1);
  o.executor = a.executor;
  o.ranks = a.ranks;
  MIGVIS_ASSIGN_OR_RETURN(auto lock, RootLock::acquire(a.root));  // before the DB: one writer
  // The run writes the catalog as jobs finish; the recorder takes the
  // single-writer lock around each write only, so `results tables`, `sweep
  // status` and SLURM ingest jobs on the same catalog get their turn.
  MIGVIS_RETURN_IF_ERROR(make_dirs(a.root));
  MIGVIS_ASSIGN_OR_RETURN(auto recorder, make_catalog_recorder(a.root));
  auto t0 = std::chrono::steady_clock::now();
  MIGVIS_ASSIGN_OR_RETURN(RunSummary s, run_plan(plan, text, o, recorder.get()));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("sweep {}: {} jobs: {} done, {} cached, {} failed, {} blocked, {} cancelled in {:.1f} s\n", plan.sweep,
             plan.jobs.size(), s.done, s.cached, s.failed, s.blocked, s.cancelled, wall);
  for (auto& l : s.lines) fmt::print("  {}\n", l);
  if (s.cancelled) return Status::Cancelled(fmt::format("sweep {} was cancelled; `migvis sweep resume {}` continues it", plan.sweep, plan.sweep));
  if (!s.ok())
    return Status::FailedPrecondition(fmt::format("sweep {}: {} failed and {} blocked jobs (listed above)", plan.sweep,
                                                  s.failed, s.blocked));
  return Status::Ok();
}

Status do_plan(const SweepArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(a.file, a.max_jobs));
  auto& plan = loaded.first;
  MIGVIS_ASSIGN_OR_RETURN(auto unused, sweeps::unused_lines(&plan, a.prune_unused, a.verbose));
  for (auto& line : unused) fmt::print("unused: {}\n", line);
  fs::path root = fs::absolute(a.root);
  RerunExplainer explainer(root, &plan);
  std::vector<RerunTrigger> why(plan.jobs.size());
  std::map<std::string, std::array<size_t, 3>> per;  // cached, would run, failed before
  std::map<std::string, size_t> by_trigger;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    why[i] = explainer.explain(plan.jobs[i]);
    auto& c = per[plan.jobs[i].stage];
    if (!why[i].runs) ++c[0];
    else ++c[1];
    if (why[i].label == "failed before") ++c[2];
    if (why[i].runs) ++by_trigger[why[i].label];
  }
  fmt::print("sweep {} ({}): {} jobs under {}\n", plan.sweep, a.file, plan.jobs.size(), root.string());
  fmt::print("  {:<10} {:>7} {:>7} {:>9}   upstream\n", "stage", "jobs", "cached", "would run");
  size_t run = 0;
  for (auto& st : sweeps::stage_names()) {
    if (!per.count(st)) continue;
    auto& c = per[st];
    run += c[1];
    std::string ups;
    for (auto& j : plan.jobs)
      if (j.stage == st) {
        std::vector<std::string> us;
        for (size_t d : j.deps) us.push_back(plan.jobs[d].stage);
        ups = fmt::format("{}", fmt::join(us, ", "));
        break;
      }
    fmt::print("  {:<10} {:>7} {:>7} {:>9}   {}{}\n", st, c[0] + c[1], c[0], c[1], ups.empty() ? "-" : ups,
               c[2] ? fmt::format("  ({} failed before: will retry)", c[2]) : "");
  }
  fmt::print("{} of {} jobs would run.\n", run, plan.jobs.size());
  if (!by_trigger.empty()) {
    fmt::print("  {:>7}   trigger (why they would run)\n", "jobs");
    for (auto& [label, n] : by_trigger) fmt::print("  {:>7}   {}\n", n, label);
  }
  if (a.verbose) {
    for (size_t i = 0; i < plan.jobs.size(); ++i) {
      const auto& j = plan.jobs[i];
      std::vector<std::string> key;
      for (auto& [k, v] : j.key) key.push_back(k + "=" + v);
      fmt::print("{} {:<9} {:<24} {} {}{}\n", j.job_id, j.stage, fmt::join(key, ","), why[i].runs ? "run   " : "cached",
                 j.params.dump(), why[i].runs ? "  [" + why[i].label + "]" : "");
    }
  }
  return Status::Ok();
}

Status do_status(const SweepArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(std::string file, saved_sweep(a.root, a.name));
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(file, a.max_jobs));
  auto& plan = loaded.first;
  fs::path root = fs::absolute(a.root);
  std::map<std::string, std::array<size_t, 4>> per;
  std::array<size_t, 4> tot{};
  std::vector<std::string> failed;
  for (auto& j : plan.jobs) {
    auto st = disk_state(sweeps::job_dir_for(root, j));
    per[j.stage][static_cast<int>(st)]++;
    tot[static_cast<int>(st)]++;
    if (st == DiskState::kFailed) {
      auto r = schema::read_job_result(sweeps::job_dir_for(root, j));
      failed.push_back(fmt::format("{} {}: {}", j.stage, j.job_id, r.ok() ? r->error : "?"));
    }
  }
  fmt::print("sweep {}: {} jobs: {} done, {} running, {} failed, {} pending\n", plan.sweep, plan.jobs.size(),
             tot[int(DiskState::kDone)], tot[int(DiskState::kRunning)], tot[int(DiskState::kFailed)],
             tot[int(DiskState::kPending)]);
  fmt::print("  {:<10} {:>6} {:>8} {:>7} {:>8}\n", "stage", "done", "running", "failed", "pending");
  for (auto& st : sweeps::stage_names())
    if (per.count(st))
      fmt::print("  {:<10} {:>6} {:>8} {:>7} {:>8}\n", st, per[st][int(DiskState::kDone)],
                 per[st][int(DiskState::kRunning)], per[st][int(DiskState::kFailed)], per[st][int(DiskState::kPending)]);
  for (auto& f : failed) fmt::print("  failed {}\n", f);

  // Finished jobs go into the catalog again, unless another writer (a running
  // sweep, an ingest job) holds the lock for long: it ingests them itself.
  {
    MIGVIS_ASSIGN_OR_RETURN(auto ing, ingest_finished_jobs(root, plan, kStatusLockWaitS));
    if (!ing.busy.ok()) fmt::print("  catalog: not ingesting now ({})\n", ing.busy.message());
    else fmt::print("  catalog: {} finished job(s) ingested into {}\n", ing.ingested, (root / "migvis.db").string());
  }

  // Submitted to SLURM: what the scheduler says about the tasks not yet done.
  std::map<std::string, std::string> slurm_state;  // job dir -> SLURM state, for the running-work lines
  fs::path record = root / "slurm" / (plan.sweep + ".json");
  if (fs::exists(record)) {
    slurm::SystemCommandRunner runner;
    auto tasks = slurm_task_states(record, &runner, [](double sec) {
      std::this_thread::sleep_for(std::chrono::duration<double>(sec));
    });
    if (!tasks.ok()) {
      fmt::print("  slurm: cannot reach the controller ({})\n", tasks.status().message());
    } else {
      std::map<std::string, size_t> by_outcome;
      std::vector<std::string> problems;
      // A job resubmitted by `sweep resume` has several tasks: its latest counts.
      std::map<fs::path, size_t> latest;
      for (size_t i = 0; i < tasks->size(); ++i) latest[(*tasks)[i].job_dir] = i;
      for (size_t i = 0; i < tasks->size(); ++i) {
        const auto& t = (*tasks)[i];
        if (latest[t.job_dir] != i) continue;
        if (disk_state(t.job_dir) == DiskState::kDone) continue;
        if (t.known) slurm_state[t.job_dir.string()] = t.raw_state;
        if (!t.known) {  // neither sacct nor squeue knows it
          by_outcome["lost"]++;
          problems.push_back(fmt::format("{} {}: unknown to SLURM (lost; `migvis sweep resume` resubmits it)", t.stage,
                                         t.task_id));
          continue;
        }
        by_outcome[std::string(slurm::outcome_name(t.outcome))]++;
        if (t.outcome != slurm::Outcome::kStillQueued && t.outcome != slurm::Outcome::kDone)
          problems.push_back(fmt::format("{} {} ({}): {}{}", t.stage, t.task_id, t.raw_state,
                                         slurm::outcome_name(t.outcome),
                                         slurm::counts_against_retries(t.outcome) ? "" : " (not the job's fault)"));
      }
      std::string summary;
      for (auto& [k, v] : by_outcome) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", v, k);
      fmt::print("  slurm ({}): {}\n", record.string(), summary.empty() ? "every submitted job is done" : summary);
      for (auto& p : problems) fmt::print("    {}\n", p);
    }
  }
  for (auto& l : active_job_lines(plan, root, slurm_state)) fmt::print("{}\n", l);
  return Status::Ok();
}

// `sweep resume` of a sweep submitted to SLURM (and not as a dry run): ingest
// what finished, then resubmit what is lost or failed within its budget
// (resume_submitted_sweep); nothing runs on this machine.
Status do_resume_submitted(const SweepArgs& a, const sweeps::Plan& plan, bool retries_given) {
  const fs::path root = fs::absolute(a.root);
  MIGVIS_ASSIGN_OR_RETURN(auto lock, RootLock::acquire(root));
  {
    // What could not be ingested now stays on disk; resume reads job states
    // from the job directories, not from the catalog.
    MIGVIS_ASSIGN_OR_RETURN(auto ing, ingest_finished_jobs(root, plan, kDefaultLockWaitS));
    if (!ing.busy.ok()) fmt::print("  catalog: not ingesting now ({})\n", ing.busy.message());
  }
  SlurmSubmitOptions o;
  o.root = root;
  o.self = self_path();
  o.worker = resolve_worker("", o.self);
  slurm::SystemCommandRunner runner;
  MIGVIS_ASSIGN_OR_RETURN(auto rep, resume_submitted_sweep(plan, o, retries_given ? a.retries : -1, &runner, [](double sec) {
    std::this_thread::sleep_for(std::chrono::duration<double>(sec));
  }));
  fmt::print("sweep {} (SLURM): {} jobs: {} done, {} queued or running, {} resubmitted, {} over their retry budget, "
             "{} blocked (retries {})\n",
             plan.sweep, plan.jobs.size(), rep.done, rep.queued, rep.resubmitted, rep.over_budget, rep.blocked,
             rep.retries);
  for (auto& l : rep.lines) fmt::print("  {}\n", l);
  for (auto& l : rep.levels) {
    std::string ids;
    for (auto& id : l.array_ids) ids += (ids.empty() ? "" : ",") + id;
    fmt::print("  {:<10} arrays {}{}\n", l.stage, ids, l.ingest_id.empty() ? "" : ", ingest " + l.ingest_id);
  }
  if (rep.over_budget || rep.blocked)
    return Status::FailedPrecondition(fmt::format(
        "sweep {}: {} job(s) over their retry budget and {} blocked (listed above); fix the cause, then `migvis sweep "
        "resume {} --retries N` with a larger N",
        plan.sweep, rep.over_budget, rep.blocked, plan.sweep));
  return Status::Ok();
}

Status do_resume(const SweepArgs& a, bool retries_given) {
  MIGVIS_ASSIGN_OR_RETURN(std::string file, saved_sweep(a.root, a.name));
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(file, a.max_jobs));
  const fs::path record = fs::absolute(a.root) / "slurm" / (loaded.first.sweep + ".json");
  if (fs::exists(record)) {
    MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(record));
    auto rec = nlohmann::json::parse(text, nullptr, false);
    if (!rec.is_discarded() && !rec.value("dry_run", false)) return do_resume_submitted(a, loaded.first, retries_given);
  }
  return do_run(a, file);
}

Status do_cancel(const SweepArgs& a) {
  MIGVIS_ASSIGN_OR_RETURN(std::string file, saved_sweep(a.root, a.name));
  MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(file, a.max_jobs));
  auto& plan = loaded.first;
  fs::path root = fs::absolute(a.root);
  fs::path record = root / "slurm" / (plan.sweep + ".json");
  if (fs::exists(record)) {  // submitted to SLURM: cancel this sweep's jobs only
    slurm::SystemCommandRunner runner;
    MIGVIS_ASSIGN_OR_RETURN(size_t n, slurm_cancel(record, &runner));
    fmt::print("sweep {}: scancel on its {} SLURM job(s)\n", plan.sweep, n);
  }
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(root / "sweeps" / (plan.sweep + ".cancel"), "cancel\n"));
  // No orchestrator running: kill workers it left behind ourselves.
  auto lock = RootLock::acquire(root);
  if (lock.ok()) {
    size_t n = 0;
    for (auto& j : plan.jobs) {
      fs::path d = sweeps::job_dir_for(root, j);
      if (disk_state(d) == DiskState::kRunning) {
        kill_stale_worker(d);
        ++n;
      }
    }
    std::error_code ec;
    fs::remove(root / "sweeps" / (plan.sweep + ".cancel"), ec);
    fmt::print("sweep {}: no orchestrator was running; killed {} leftover worker(s)\n", plan.sweep, n);
  } else {
    fmt::print("sweep {}: asked the running orchestrator to stop (it kills its workers)\n", plan.sweep);
  }
  return Status::Ok();
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) flatten(v, prefix.empty() ? k : prefix + "." + k, out);
  } else {
    out[prefix] = j.dump();
  }
}

Status do_why(const SweepArgs& a) {
  fs::path root = fs::absolute(a.root);
  if (a.job.size() < 4 || a.job.find_first_not_of("0123456789abcdef") != std::string::npos)
    return Status::InvalidArgument(fmt::format("\"{}\": expected a job id (hex, at least 4 digits)", a.job));
  // Find the job: in the given sweep's plan, else among the job directories.
  nlohmann::json mine;
  std::string stage;
  std::map<std::string, std::string> key;
  fs::path mydir;
  std::string science;
  std::optional<sweeps::Plan> plan;
  if (!a.file.empty()) {
    MIGVIS_ASSIGN_OR_RETURN(auto loaded, load(a.file, a.max_jobs));
    plan = std::move(loaded.first);
    for (auto& j : plan->jobs)
      if (j.job_id.rfind(a.job, 0) == 0) {
        mine = j.hash_inputs;
        stage = j.stage;
        key = j.key;
        mydir = sweeps::job_dir_for(root, j);
        science = j.science_hash;
        break;
      }
  } else {
    std::error_code ec;
    for (auto& st : fs::directory_iterator(schema::jobs_dir(root), ec))
      for (auto& d : fs::directory_iterator(st.path(), ec))
        if (d.path().filename().string().rfind(a.job, 0) == 0) {
          auto t = read_file(d.path() / "hash_inputs.json");
          if (!t.ok()) continue;
          mine = nlohmann::json::parse(*t, nullptr, false);
          stage = st.path().filename().string();
          mydir = d.path();
          if (auto spec = schema::read_job_spec(d.path()); spec.ok()) science = spec->science;
          if (mine.is_object() && mine.contains("key"))
            for (auto& [k, v] : mine["key"].items()) key[k] = v.get<std::string>();
        }
  }
  if (mine.is_null() || mine.is_discarded())
    return Status::NotFound(fmt::format("job {}: not in {} (give --sweep FILE for a job not written yet)", a.job,
                                        schema::jobs_dir(root).string()));
  RerunExplainer explainer(root, plan ? &*plan : nullptr);
  const RerunTrigger t = explainer.explain(stage, mine, science, mydir);
  if (!t.runs) {
    fmt::print("job {} ({} {}) is complete: cached, it would not run again.\n", mydir.filename().string(), stage,
               mine["key"].dump());
    return Status::Ok();
  }
  fmt::print("job {} ({} {}) would run: {}", mydir.filename().string(), stage, mine["key"].dump(), t.label);
  if (t.previous.empty()) {
    if (t.label == "new job") fmt::print(" (no completed {} job with this key exists yet).\n", stage);
    else fmt::print(".\n");
    return Status::Ok();
  }
  fmt::print(".\nIts hash inputs differ from the last completed one like it, {} (finished {}):\n", t.previous,
             t.previous_finished);
  const nlohmann::json& other = t.previous_inputs;
  std::map<std::string, std::string> x, y;
  flatten(other, "", x);
  flatten(mine, "", y);
  std::set<std::string> keys;
  for (auto& [k, v] : x) keys.insert(k);
  for (auto& [k, v] : y) keys.insert(k);
  for (auto& k : keys) {
    auto xi = x.find(k), yi = y.find(k);
    if (xi != x.end() && yi != y.end() && xi->second == yi->second) continue;
    fmt::print("  {:<28} {} -> {}\n", k, xi == x.end() ? "(absent)" : xi->second, yi == y.end() ? "(absent)" : yi->second);
  }
  return Status::Ok();
}

}  // namespace

void register_sweep_commands(CLI::App& app, CommandStatus* out) {
  auto* sw = app.add_subcommand("sweep", "Expand YAML sweeps into job DAGs and run them (schemas/sweep.md)");
  sw->require_subcommand(1);
  auto a = std::make_shared<SweepArgs>();
  auto add_root = [a](CLI::App* c) { c->add_option("--root", a->root, "runs directory (default: runs)"); };
  auto add_exec = [a](CLI::App* c) {
    c->add_option("--jobs,-j", a->jobs, "at most this many worker processes at once (default 1)")->check(CLI::Range(1, 4096));
    c->add_option("--cores", a->cores,
                  "run jobs only while their resources.threads (x ranks under --executor mpi) sum to at most N; a "
                  "job asking for more runs alone with N threads (default: this machine's cores). Workers get "
                  "OMP/MKL/OPENBLAS_NUM_THREADS to match")
        ->check(CLI::Range(1, 65536));
    c->add_option("--progress-every", a->progress_every_s,
                  "when stdout is not a terminal: a progress line per running job every this many seconds (default 30)")
        ->check(CLI::Range(1.0, 86400.0));
    c->add_option("--retries", a->retries, "extra attempts after a crash or exit 70 (default 1); resume of a sweep submitted to SLURM: "
                    "resubmissions per job for failures of its own (default: submit's --retries)")->check(CLI::Range(0, 100));
    c->add_option("--executor", a->executor,
                  "local (default: one process per job) or mpi (data-parallel stages - diffusion, synthesis - "
                  "run under mpirun with --ranks or their resources.ranks)")
        ->check(CLI::IsMember({"local", "mpi"}));
    c->add_option("--ranks", a->ranks, "ranks per data-parallel job with --executor mpi (default: resources.ranks)")
        ->check(CLI::Range(1, 1024));
  };
  auto add_max = [a](CLI::App* c) { c->add_option("--max-jobs", a->max_jobs, "refuse sweeps expanding beyond this (default 100000)"); };

  auto* run = sw->add_subcommand("run", "Run a sweep: write job dirs, launch workers, skip completed jobs");
  run->add_option("sweep", a->file, "sweep YAML file")->required();
  add_root(run);
  add_exec(run);
  add_max(run);
  auto add_keep = [a](CLI::App* c) {
    c->add_flag("--keep-cache-on-code-change", a->keep_cache_on_code_change,
                "keep completed jobs whose only difference is the code fingerprint of a stage (for cosmetic code "
                "changes; seeds are unaffected either way); recorded in each kept job's catalog provenance");
  };
  add_keep(run);
  run->callback([a, out] { out->set(do_run(*a, a->file)); });

  auto* submit = sw->add_subcommand(
      "submit", "Submit a sweep to SLURM: job arrays per stage with per-task dependencies (aftercorr where tasks "
                "correspond), ingest jobs on slices of tasks; exits at once (log out freely)");
  submit->add_option("sweep", a->file, "sweep YAML file")->required();
  add_root(submit);
  add_max(submit);
  submit->add_option("--partition", a->partition, "SLURM partition");
  submit->add_option("--account", a->account, "SLURM account");
  submit->add_option("--qos", a->qos, "SLURM QOS");
  submit->add_option("--throttle", a->throttle, "at most N tasks of an array at once (%N)")->check(CLI::Range(0, 100000));
  submit->add_option("--signal-seconds", a->signal_seconds,
                     "USR1 this many seconds before the time limit: workers checkpoint and requeue (default 120)")
      ->check(CLI::Range(10, 3600));
  submit->add_flag("--dry-run", a->dry_run, "write the sbatch scripts and print the plan; submit nothing");
  submit->add_option("--retries", a->retries,
                     "resubmissions `sweep resume` allows a job for failures of its own (default 2; preemption and "
                     "node failures never count)")
      ->check(CLI::Range(0, 100));
  submit->add_flag("--prune-unused", a->prune_unused, "drop jobs no downstream job reads and no table uses");
  submit->add_flag("--barriers", a->barriers,
                   "every stage waits for its whole parent stages (default: per-task dependencies, README Cluster)");
  submit->add_flag("--verbose,-v", a->verbose, "list unused jobs one by one");
  submit->callback([a, out, submit] { out->set(do_submit(*a, submit->count("--retries") > 0 ? a->retries : 2)); });

  auto* plan = sw->add_subcommand("plan", "Expand without running: jobs per stage, cached vs would run");
  plan->add_option("sweep", a->file, "sweep YAML file")->required();
  plan->add_flag("--verbose,-v", a->verbose, "list every job");
  plan->add_flag("--prune-unused", a->prune_unused, "drop jobs no downstream job reads and no table uses");
  add_root(plan);
  add_max(plan);
  plan->callback([a, out] { out->set(do_plan(*a)); });

  auto* status = sw->add_subcommand("status", "Progress of a sweep run under --root (from its job directories)");
  status->add_option("name", a->name, "sweep name (optional when only one was run)");
  add_root(status);
  status->add_option("--watch", a->watch_s, "refresh every this many seconds until interrupted (e.g. --watch 2)")
      ->check(CLI::Range(0.2, 3600.0));
  status->callback([a, out] {
    out->set(a->watch_s > 0 ? watch(a->watch_s, stdout, [a] { return do_status(*a); }) : do_status(*a));
  });

  auto* resume = sw->add_subcommand(
      "resume", "Finish an interrupted sweep (stale running jobs are rerun). A sweep submitted to SLURM is resubmitted "
                "through SLURM: lost and failed jobs within their retry budget (preemption and node failures are free)");
  resume->add_option("name", a->name, "sweep name (optional when only one was run)");
  add_root(resume);
  add_exec(resume);
  add_keep(resume);
  resume->callback([a, out, resume] { out->set(do_resume(*a, resume->count("--retries") > 0)); });

  auto* cancel = sw->add_subcommand("cancel", "Stop a running sweep (its workers are killed; resume continues)");
  cancel->add_option("name", a->name, "sweep name (optional when only one was run)");
  add_root(cancel);
  cancel->callback([a, out] { out->set(do_cancel(*a)); });

  auto* why = sw->add_subcommand("why", "Why a job would (re)run - params, upstream, code of stage X, dataset file content, new job - and its hash "
      "inputs vs the last completed job like it");
  why->add_option("job", a->job, "job id or prefix")->required();
  why->add_option("--sweep", a->file, "sweep file (for jobs not written yet)");
  add_root(why);
  why->callback([a, out] { out->set(do_why(*a)); });
}

}  // namespace migvis::orch
