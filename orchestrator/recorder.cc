#include "orchestrator/recorder.h"

namespace migvis::orch {

// Until the catalog (results/catalog.h) is merged, runs are recorded only in
// their job directories, which stay the source of truth either way.
Result<std::unique_ptr<RunRecorder>> make_catalog_recorder(const fs::path& root) {
  return std::unique_ptr<RunRecorder>(new RunRecorder());
}

}  // namespace migvis::orch
