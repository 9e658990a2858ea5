// worker/stages/registry.cc against the stage registry (schemas/stages.h):
// every stage the registry assigns to the worker has a runner, and the worker
// does not claim a stage the orchestrator runs.
#include <gtest/gtest.h>

#include "schemas/stages.h"
#include "worker/stages/stage.h"

namespace migvis::worker {
namespace {

TEST(StageRegistryTest, EveryWorkerStageHasARunner) {
  int worker_stages = 0;
  for (const auto& s : schema::stages()) {
    if (s.runner != schema::StageRunner::kWorker) continue;
    ++worker_stages;
    auto fn = find_stage(s.name);
    ASSERT_TRUE(fn.ok()) << s.name << ": " << fn.status().to_string();
    EXPECT_TRUE(static_cast<bool>(*fn)) << s.name;
  }
  EXPECT_GT(worker_stages, 0);
}

TEST(StageRegistryTest, OrchestratorStagesAreNotRunByTheWorker) {
  for (const auto& s : schema::stages()) {
    if (s.runner == schema::StageRunner::kOrchestrator) {
      EXPECT_FALSE(find_stage(s.name).ok()) << s.name;
    }
  }
}

}  // namespace
}  // namespace migvis::worker
