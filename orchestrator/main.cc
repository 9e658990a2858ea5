// migvis: the orchestrator CLI. Never links LibTorch, so it runs on a login
// node. Each command group lives in its own cli_*.cc and registers itself here;
// commands return a Status and this file alone maps it to an exit code; an
// exception escaping a command is caught at the error boundary
// (common/error_boundary.h: one line on stderr, a deliberate exit code).
#include <CLI/CLI.hpp>

#include "common/error_boundary.h"
#include "common/log.h"
#include "orchestrator/cli.h"

namespace {

int run(int argc, char** argv) {
  using namespace migvis;
  CLI::App app{"migvis: MIG-Vis at cluster scale.\n"
               "Synthetic or imported IT-cortex datasets, YAML sweeps of the neural VAE and\n"
               "MI-guided diffusion stages, local/MPI/SLURM execution, one SQLite database."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("migvis ") + orch::version_string());
  std::string log_level;
  app.add_option("--log-level", log_level, "debug, info, warn or error (default: $MIGVIS_LOG_LEVEL or info)");

  orch::CommandStatus status;
  orch::register_data_commands(app, &status);
  orch::register_sweep_commands(app, &status);
  orch::register_results_commands(app, &status);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  init_logging(log_level);
  if (!status.ran) return kExitUsage;
  if (!status.status.ok()) {
    fmt::print(stderr, "migvis: error: {}\n", status.status.message());
    return exit_code_for(status.status);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Commands run inside app.parse() (CLI11 callbacks): the boundary covers them.
  return migvis::run_with_error_boundary("migvis", [&] { return run(argc, argv); });
}
