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

class CatalogRecorder : public RunRecorder {
 public:
  explicit CatalogRecorder(std::unique_ptr<catalog::Catalog> c) : cat_(std::move(c)) {}

  Status record_plan(const sweeps::Plan& plan, const std::string& sweep_text, const fs::path& root) override {
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
    return cat_->set_status(job.job_id, to_db(s.state), s.attempts, s.note);
  }

  Status ingest(const fs::path& job_dir) override { return cat_->ingest_job_dir(job_dir); }

 private:
  std::unique_ptr<catalog::Catalog> cat_;
};

}  // namespace

catalog::JobRow job_row_for(const sweeps::Plan& plan, size_t i, const fs::path& root) {
  // Through job.yaml's record, so the row equals what ingest makes of the job directory.
  return catalog::job_row_from_spec(sweeps::job_spec_for(plan, i, root), sweeps::job_dir_for(root, plan.jobs[i]));
}

Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(root));
  MIGVIS_ASSIGN_OR_RETURN(auto cat, catalog::Catalog::open(catalog::db_path_for_root(root), catalog::Catalog::Mode::kReadWrite));
  return std::unique_ptr<RunRecorder>(new CatalogRecorder(std::move(cat)));
}

}  // namespace migvis::orch
