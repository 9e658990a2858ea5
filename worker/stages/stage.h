// What a worker stage gets and gives. One stage function runs one job: it reads
// ctx.spec (job.yaml) and the upstream outputs named in ctx.spec.inputs, writes
// its files into ctx.dir (rank 0 only), and fills ctx.result's metrics and
// artifacts. main.cc writes result.yaml afterwards, so a stage never does.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/files.h"
#include "common/status.h"
#include "schemas/job_spec.h"

namespace migvis::worker {

class Communicator;  // worker/comm.h (single process, MPI, NCCL)

struct StageContext {
  schema::JobSpec spec;
  fs::path dir;                  // the job directory (absolute)
  int threads = 1;               // intra-op threads set for LibTorch
  // "cpu" or "cuda:N", decided once per job (worker/device.h): every stage puts
  // its models and tensors there; data crosses to the host only to be written.
  std::string device = "cpu";
  Communicator* comm = nullptr;  // never null while a stage runs
  schema::JobResult* result = nullptr;  // stage adds metrics and artifacts
  // Set by the signal handler (SIGUSR1/SIGTERM): checkpoint and return
  // Status::Cancelled at the next safe point.
  const volatile int* stop_requested = nullptr;
  bool should_stop() const { return stop_requested && *stop_requested != 0; }
  // Where each model of the stage actually lives (name -> device of its first
  // parameter), filled by record_model_device(); logged, and read by tests.
  std::map<std::string, std::string> model_devices;
};

using StageFn = std::function<Status(StageContext&)>;

// Returns the stage function for `name`, or NotFound listing the known stages.
Result<StageFn> find_stage(const std::string& name);

}  // namespace migvis::worker
