// The RunRecorder the CLI uses: records plans, job states and finished job
// directories into <root>/migvis.db through the catalog (the orchestrator is
// the only writer of the database; it holds the root lock while it writes).
#pragma once

#include <memory>

#include "orchestrator/executor.h"
#include "results/catalog.h"

namespace migvis::orch {

// The catalog row for a planned job (status planned, provenance = hash inputs
// and resources), as recorded before the run.
catalog::JobRow job_row_for(const sweeps::Plan& plan, size_t i, const fs::path& root);

// Opens (creating) <root>/migvis.db read-write.
Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root);

}  // namespace migvis::orch
