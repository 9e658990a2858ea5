// A stand-in for migvis-worker and `migvis data run-job` that honours the
// job-directory contract (schemas/job.md) without LibTorch, for executor tests:
//   fake_worker --job DIR | fake_worker data run-job DIR
// It checks its inputs exist (upstream result.yaml ok, dataset.h5), appends one
// line to DIR/executions (so tests can count launches), writes progress.yaml,
// the stage's output file (dataset.h5 / out.txt: no HDF5, so no curves), then result.yaml last (atomic).
// Behaviour knobs (environment):
//   FAKE_SLEEP_MS=n        sleep n ms before finishing (kill -9 tests)
//   FAKE_FAIL_STAGE=s      jobs of stage s fail with exit 65 (result.yaml status failed)
//   FAKE_CRASH_ONCE=s      jobs of stage s crash (exit 70, no result) on their first launch
//   FAKE_STEPS=n           write progress.yaml for steps 1..n (phase "train"), FAKE_STEP_MS apart
//   FAKE_STEPS_STAGE=s     ... only in jobs of stage s (default: every stage)
//   FAKE_TRACE=file        append "start|end <monotonic ns> <OMP_NUM_THREADS> <pid>" lines (O_APPEND:
//                          several workers share the file) so tests can replay who ran beside whom
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "common/files.h"
#include "schemas/job_spec.h"

using namespace migvis;

namespace {

void trace(const char* what) {
  const char* file = std::getenv("FAKE_TRACE");
  if (!file) return;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const char* t = std::getenv("OMP_NUM_THREADS");
  std::string line = std::string(what) + " " + std::to_string(static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) +
                     " " + (t ? t : "0") + " " + std::to_string(::getpid()) + "\n";
  int fd = ::open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return;
  if (::write(fd, line.data(), line.size()) < 0) {
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--job" && i + 1 < argc) dir = argv[++i];
    if (a == "run-job" && i + 1 < argc) dir = argv[++i];
  }
  if (dir.empty()) return 64;
  auto spec = schema::read_job_spec(dir);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().message().c_str());
    return 65;
  }
  { std::ofstream(fs::path(dir) / "executions", std::ios::app) << ::getpid() << "\n"; }
  trace("start");
  struct EndTrace {
    ~EndTrace() { trace("end"); }
  } end_trace;
  schema::JobResult r;
  r.job_id = spec->job_id;
  r.stage = spec->stage;
  r.started_at = schema::utc_now_iso8601();
  for (auto& [name, path] : spec->inputs) {
    bool ok = name == "dataset" ? fs::exists(path) : schema::read_job_result(path).ok();
    if (!ok) {
      std::fprintf(stderr, "missing input %s: %s\n", name.c_str(), path.c_str());
      return 66;
    }
  }
  const char* crash = std::getenv("FAKE_CRASH_ONCE");
  if (crash && spec->stage == crash && !fs::exists(fs::path(dir) / "crashed_once")) {
    (void)write_file_atomic(fs::path(dir) / "crashed_once", "1");
    return 70;
  }
  schema::Progress p;
  p.step = 0;
  p.total_steps = 1;
  p.phase = "fake";
  (void)schema::write_progress(p, dir);
  if (const char* ms = std::getenv("FAKE_SLEEP_MS")) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(ms)));
  const char* steps = std::getenv("FAKE_STEPS");
  const char* steps_stage = std::getenv("FAKE_STEPS_STAGE");
  if (steps && (!steps_stage || spec->stage == steps_stage)) {
    const int n = std::atoi(steps);
    const char* step_ms = std::getenv("FAKE_STEP_MS");
    for (int i = 1; i <= n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(step_ms ? std::atoi(step_ms) : 100));
      p.step = i;
      p.total_steps = n;
      p.phase = "train";
      p.updated_at.clear();
      (void)schema::write_progress(p, dir);
    }
  }
  const char* fail = std::getenv("FAKE_FAIL_STAGE");
  if (fail && spec->stage == fail) {
    r.status = "failed";
    r.error = "fake failure for stage " + spec->stage;
    r.exit_code = 65;
    r.finished_at = schema::utc_now_iso8601();
    (void)schema::write_job_result(r, dir);
    return 65;
  }
  Status st = spec->stage == "data" ? write_file_atomic(fs::path(dir) / "dataset.h5", "fake dataset\n")
                                    : write_file_atomic(fs::path(dir) / "out.txt", "fake output\n");
  if (!st.ok()) return 70;
  r.finished_at = schema::utc_now_iso8601();
  r.metrics["seed"] = static_cast<double>(spec->seed);
  r.metrics["test_r2"] = 0.5;
  r.artifacts.push_back({"out", spec->stage == "data" ? "dataset.h5" : "out.txt", ""});
  st = schema::write_job_result(r, dir);
  return st.ok() ? 0 : 70;
}
