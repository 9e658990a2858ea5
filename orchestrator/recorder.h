// The RunRecorder the CLI uses: records plans, job states and finished job
// directories into <root>/migvis.db through the catalog (the orchestrator is
// the only writer of the database; it holds the root lock while it writes).
#pragma once

#include <memory>

#include "orchestrator/executor.h"
#include "results/catalog.h"

namespace migvis::orch {

// The catalog row for a planned job as recorded before the run: the row
// catalog::job_row_from_spec makes of its job.yaml (sweeps::job_spec_for), so
// it equals the row ingest makes of the same job directory (status planned).
catalog::JobRow job_row_for(const sweeps::Plan& plan, size_t i, const fs::path& root);

// Opens (creating) <root>/migvis.db read-write.
// Each write takes the catalog's single-writer lock for its own duration,
// waiting up to `lock_wait_s` (then that write fails with Unavailable). Never
// call it while holding that lock yourself: the lock is not re-entrant.
Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root, double lock_wait_s = 600);

}  // namespace migvis::orch
