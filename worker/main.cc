// migvis-worker: runs exactly one job from its job directory (schemas/job.md).
// This is the one place where exceptions from LibTorch are caught and turned
// into a Status; the status becomes result.yaml (for data errors) and the exit code.
#include <csignal>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <c10/util/Exception.h>

#include "common/error_boundary.h"
#include "common/log.h"
#include "schemas/code_identity.h"
#include "schemas/job_lifecycle.h"
#include "worker/comm.h"
#include "worker/device.h"
#include "worker/stages/stage.h"
#include "worker/version.h"

namespace {

volatile int g_stop_requested = 0;
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }

// InvalidArgument when job.yaml names a code fingerprint other than this
// build's for its stage (planned by a migvis built from other sources), unless
// allowed. A job.yaml without `code` (hand-made job directories) is not checked.
migvis::Status check_code(const migvis::schema::JobSpec& spec, bool allow_mismatch) {
  using namespace migvis;
  const std::string mine = schema::code_fingerprint(spec.stage);
  if (spec.code.empty() || spec.code == mine) return Status::Ok();
  const std::string what = fmt::format(
      "job.yaml: code: the job was planned for stage {} code {}, but this migvis-worker has {} (the orchestrator and "
      "the worker were built from different sources)",
      spec.stage, spec.code, mine.empty() ? "no code for that stage" : mine);
  if (allow_mismatch) {
    MIGVIS_LOG_WARN("{}; running it anyway (--allow-code-mismatch)", what);
    return Status::Ok();
  }
  return Status::InvalidArgument(what + "; rebuild both from one tree and re-plan the sweep, or pass "
                                        "--allow-code-mismatch to run it with this code");
}

// Runs one job directory with the given communicator; returns the exit code.
int run_job(const migvis::fs::path& dir, int threads_flag, bool allow_code_mismatch,
            migvis::worker::Communicator* comm) {
  using namespace migvis;
  auto spec = schema::read_job_spec(dir);
  if (!spec.ok()) {
    MIGVIS_LOG_ERROR("{}", spec.status().to_string());
    return exit_code_for(spec.status());
  }
  schema::JobResult result;
  result.job_id = spec->job_id;
  result.stage = spec->stage;
  result.versions = worker::library_versions();
  result.versions["code"] = schema::code_fingerprint(spec->stage);
  if (!spec->code.empty() && spec->code != result.versions["code"]) result.versions["code_planned"] = spec->code;

  worker::StageContext ctx;
  ctx.spec = *spec;
  ctx.dir = dir;
  ctx.threads = worker::resolve_threads(threads_flag, spec->resources.threads);
  at::set_num_threads(ctx.threads);
  ctx.device = worker::resolve_device(spec->resources.gpus);
  ctx.comm = comm;
  ctx.result = &result;
  ctx.stop_requested = &g_stop_requested;
  result.layout = {{"threads", std::to_string(ctx.threads)},
                   {"ranks", std::to_string(ctx.comm->size())},
                   {"device", ctx.device},
                   {"comm", ctx.comm->name()}};

  schema::JobRunOptions opts;
  opts.write_result = ctx.comm->is_root();
  const schema::JobRunOutcome out = schema::run_job_lifecycle(dir, result, opts, [&](schema::JobResult& r) -> Status {
    MIGVIS_LOG_INFO("job {} stage {} on {} ({} threads, {} rank(s), {})", spec->job_id, spec->stage, r.host,
                    ctx.threads, ctx.comm->size(), ctx.device);
    MIGVIS_RETURN_IF_ERROR(check_code(*spec, allow_code_mismatch));
    auto fn = worker::find_stage(spec->stage);
    if (!fn.ok()) return fn.status();
    try {
      return (*fn)(ctx);
    } catch (const c10::Error& e) {
      return Status::Internal(std::string("LibTorch: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Status::Internal(e.what());
    }
  });
  const Status& st = out.status;
  const int code = out.exit_code();
  if (schema::leaves_job_incomplete(st)) {
    MIGVIS_LOG_WARN("job {} stopped: {} (exit {})", spec->job_id, st.to_string(), code);
    return code;
  }
  if (!out.write_status.ok()) {
    MIGVIS_LOG_ERROR("cannot write result: {}", out.write_status.to_string());
    return code;
  }
  if (!st.ok()) MIGVIS_LOG_ERROR("job {} failed: {}", spec->job_id, st.to_string());
  else MIGVIS_LOG_INFO("job {} done in {:.1f} s", spec->job_id, result.wall_s);
  return code;
}

}  // namespace

namespace {

int worker_main(int argc, char** argv) {
  using namespace migvis;
  CLI::App app{"migvis-worker: runs MIG-Vis jobs from their job directories.\n"
               "One --job: that job, data-parallel over all ranks when started by mpirun/srun.\n"
               "Several --job under mpirun/srun: the jobs fan out over ranks (rank r runs jobs r, r+size, ...),\n"
               "each on one rank."};
  std::vector<std::string> job_dirs;
  int threads = 0;
  std::string log_level;
  bool allow_code_mismatch = false;
  app.add_option("--job", job_dirs, "job directory holding job.yaml (repeatable)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--threads", threads, "LibTorch intra-op threads (default: job.yaml resources.threads, "
                                        "else SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, else all cores)");
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  app.add_flag("--allow-code-mismatch", allow_code_mismatch,
               "run a job whose job.yaml `code` fingerprint differs from this build's (default: refuse, exit 65)");
  app.set_version_flag("--version", worker::version_string());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  init_logging(log_level);

  std::signal(SIGUSR1, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  worker::SingleProcessCommunicator single;
  if (job_dirs.size() == 1) {
    std::unique_ptr<worker::Communicator> comm = worker::make_communicator();
    return run_job(fs::absolute(job_dirs[0]), threads, allow_code_mismatch, comm ? comm.get() : &single);
  }
  // Fan-out: each rank runs its share of the jobs alone; no collectives needed,
  // so the rank comes from the launcher's environment.
  worker::RankInfo ri = worker::rank_from_environment();
  int worst = 0;
  for (size_t i = static_cast<size_t>(ri.rank); i < job_dirs.size(); i += static_cast<size_t>(ri.size)) {
    if (g_stop_requested) return kExitTempFail;
    int code = run_job(fs::absolute(job_dirs[i]), threads, allow_code_mismatch, &single);
    if (code != 0 && worst == 0) worst = code;
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  // Stage errors (LibTorch included) become a Status and result.yaml inside
  // run_job; this boundary catches what escapes everything else (the
  // communicator's set-up, bad_alloc) so no exception ends in std::terminate.
  return migvis::run_with_error_boundary("migvis-worker", [&] { return worker_main(argc, argv); });
}
