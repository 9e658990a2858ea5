// The RunRecorder the CLI uses: records plans, job states and finished job
// directories into <root>/migvis.db through the catalog (the orchestrator is
// the only writer of the database).
#pragma once

#include <memory>

#include "orchestrator/executor.h"

namespace migvis::orch {

Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root);

}  // namespace migvis::orch
