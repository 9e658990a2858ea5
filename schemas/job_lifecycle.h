// The lifecycle of one job run, the same for `migvis-worker` (worker/main.cc)
// and `migvis data run-job` (orchestrator/data/data_job.cc): stamp the start
// time and host, run the job's body, stamp the end, and write result.yaml last
// - or, when the body was preempted or failed temporarily, write nothing so the
// job stays incomplete and a requeue resumes it (schemas/job.md, exit 75).
// Torch-free, so both programs link it.
#pragma once

#include <functional>
#include <string>

#include "common/files.h"
#include "common/status.h"
#include "common/strings.h"
#include "schemas/job_spec.h"

namespace migvis::schema {

using ::migvis::host_name;  // common/strings.h

struct JobRunOptions {
  bool write_result = true;             // false on ranks other than 0
  bool keep_metrics_on_failure = true;  // false: a failed job reports no metrics
};

struct JobRunOutcome {
  Status status;        // the body's
  Status write_status;  // writing result.yaml; ok when nothing was written
  // The process's exit code: the write error's when writing failed, else the body's.
  int exit_code() const { return exit_code_for(write_status.ok() ? status : write_status); }
};

// Runs `body(result)` for the job in `dir` (whose job.yaml the caller has read:
// a job.yaml that cannot be read leaves no result file). Before the body,
// result.started_at and result.host are set; after it finished_at, wall_s,
// status (ok | failed), error and exit_code, and result.yaml is written when
// opts.write_result. When the body returns Cancelled or Unavailable nothing is
// stamped or written. The caller fills job_id, stage, versions and layout.
JobRunOutcome run_job_lifecycle(const fs::path& dir, JobResult& result, const JobRunOptions& opts,
                                const std::function<Status(JobResult&)>& body);

// True for the statuses after which a job leaves no result file (exit 75).
bool leaves_job_incomplete(const Status& st);

}  // namespace migvis::schema
