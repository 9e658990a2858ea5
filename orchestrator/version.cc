#include "orchestrator/cli.h"

#include "migvis_build_info.h"

namespace migvis::orch {
std::string version_string() { return std::string(MIGVIS_VERSION) + " (" + MIGVIS_GIT_COMMIT + ")"; }
}  // namespace migvis::orch
