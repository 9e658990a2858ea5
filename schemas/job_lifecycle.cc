#include "schemas/job_lifecycle.h"

#include <unistd.h>

#include <chrono>

namespace migvis::schema {

bool leaves_job_incomplete(const Status& st) {
  return st.code() == StatusCode::kCancelled || st.code() == StatusCode::kUnavailable;
}

JobRunOutcome run_job_lifecycle(const fs::path& dir, JobResult& result, const JobRunOptions& opts,
                                const std::function<Status(JobResult&)>& body) {
  const auto t0 = std::chrono::steady_clock::now();
  result.started_at = utc_now_iso8601();
  result.host = host_name();
  JobRunOutcome out;
  out.status = body(result);
  const Status& st = out.status;
  // Checkpointed (or temporarily failed): no result file, so the job is still
  // incomplete and a requeue resumes it.
  if (leaves_job_incomplete(st)) return out;
  result.finished_at = utc_now_iso8601();
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.status = st.ok() ? "ok" : "failed";
  result.error = st.ok() ? "" : st.to_string();
  result.exit_code = exit_code_for(st);
  if (!st.ok() && !opts.keep_metrics_on_failure) result.metrics.clear();
  if (opts.write_result) out.write_status = write_job_result(result, dir);
  return out;
}

}  // namespace migvis::schema
