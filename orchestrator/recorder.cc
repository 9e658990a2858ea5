#include "orchestrator/recorder.h"

#include <unordered_set>

#include <fmt/format.h>

namespace migvis::orch {
namespace {

catalog::JobStatus to_db(JobState s) {
  switch (s) {
    case JobState::kPending: return catalog::JobStatus::kQueued;
    case JobState::kCached: return catalog::JobStatus::kDone;
    case JobState::kRunning: return catalog::JobStatus::kRunning;
    case JobState::kDone: return catalog::JobStatus::kDone;
    case JobState::kFailed: return catalog::JobStatus::kFailed;
    case JobState::kBlocked: return catalog::JobStatus::kBlocked;
    case JobState::kCancelled: return catalog::JobStatus::kCancelled;
  }
  return catalog::JobStatus::kPlanned;
}

// Every write takes the catalog's single-writer lock for its own duration only
// (results/catalog.h), so a run of hours never keeps other writers out.
class CatalogRecorder : public RunRecorder {
 public:
  CatalogRecorder(std::unique_ptr<catalog::Catalog> c, fs::path db_file, double lock_wait_s)
      : cat_(std::move(c)), db_file_(std::move(db_file)), lock_wait_s_(lock_wait_s) {}

  Status record_plan(const sweeps::Plan& plan, const std::string& sweep_text, const fs::path& root) override {
    MIGVIS_ASSIGN_OR_RETURN(auto lock, catalog::lock_catalog_for_writing(db_file_, lock_wait_s_));
    MIGVIS_RETURN_IF_ERROR(cat_->record_sweep(plan.sweep, plan.source, sweep_text));
    // One query for the ids already known (a fresh sweep then needs no per-job reads).
    MIGVIS_ASSIGN_OR_RETURN(auto known_q, cat_->query("SELECT job_id FROM jobs"));
    std::unordered_set<std::string> known;
    for (auto& row : known_q.rows)
      if (auto* s = std::get_if<std::string>(&row.at(0))) known.insert(*s);
    std::vector<catalog::JobRow> rows;
    rows.reserve(plan.jobs.size());
    for (size_t i = 0; i < plan.jobs.size(); ++i) {
      // Keep what the DB already knows (status, attempts, timings) of jobs an
      // earlier run or another sweep recorded; only add the membership.
      std::optional<catalog::JobRow> existing;
      if (known.count(plan.jobs[i].job_id)) {
        MIGVIS_ASSIGN_OR_RETURN(existing, cat_->job(plan.jobs[i].job_id));
      }
      if (existing) {
        existing->sweep = plan.sweep;
        rows.push_back(std::move(*existing));
      } else {
        rows.push_back(job_row_for(plan, i, root));
      }
      // Kept by --keep-cache-on-code-change: visible later in the job's record.
      if (const auto& j = plan.jobs[i]; !j.kept_from_code.empty())
        rows.back().provenance["kept_on_code_change"] = {{"sweep", plan.sweep},
                                                         {"code_built", j.hash_inputs.value("code", "")},
                                                         {"code_now", j.kept_from_code},
                                                         {"at", schema::utc_now_iso8601()}};
    }
    return cat_->upsert_jobs(rows);
  }

  Status job_state(const sweeps::PlannedJob& job, const SchedJob& s) override {
    // Done rows come from ingest_job_dir (with timings and metrics); the status
    // write after it keeps the row right even when the ingest failed.
    if (s.state == JobState::kCached) return Status::Ok();
    MIGVIS_ASSIGN_OR_RETURN(auto lock, catalog::lock_catalog_for_writing(db_file_, lock_wait_s_));
    return cat_->set_status(job.job_id, to_db(s.state), s.attempts, s.note);
  }

  Status ingest(const fs::path& job_dir) override {
    MIGVIS_ASSIGN_OR_RETURN(auto lock, catalog::lock_catalog_for_writing(db_file_, lock_wait_s_));
    return cat_->ingest_job_dir(job_dir);
  }

 private:
  std::unique_ptr<catalog::Catalog> cat_;
  fs::path db_file_;
  double lock_wait_s_;
};

}  // namespace

catalog::JobRow job_row_for(const sweeps::Plan& plan, size_t i, const fs::path& root) {
  // Through job.yaml's record, so the row equals what ingest makes of the job directory.
  return catalog::job_row_from_spec(sweeps::job_spec_for(plan, i, root), sweeps::job_dir_for(root, plan.jobs[i]));
}

Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root, double lock_wait_s) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(root));
  const fs::path db = catalog::db_path_for_root(root);
  MIGVIS_ASSIGN_OR_RETURN(auto cat, catalog::Catalog::open(db, catalog::Catalog::Mode::kReadWrite));
  // Another writer (an ingest job, `results tables`) holds the lock for
  // seconds; the default ten minutes without a turn means something is wrong.
  return std::unique_ptr<RunRecorder>(new CatalogRecorder(std::move(cat), db, lock_wait_s));
}

}  // namespace migvis::orch
