// Command registration for the migvis CLI. Each register_* adds a subcommand
// group whose callbacks run the command and store its Status in *out (CLI11
// callbacks cannot return one).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace migvis::orch {

struct CommandStatus {
  bool ran = false;
  Status status;
  void set(Status s) { ran = true; status = std::move(s); }
};

std::string version_string();

// migvis data synth | import | inspect | run-job
void register_data_commands(CLI::App& app, CommandStatus* out);

// migvis sweep run | plan | status | resume | cancel | why (orchestrator/cli_sweep.cc)
void register_sweep_commands(CLI::App& app, CommandStatus* out);
// migvis results query | runs | ingest | tables, and migvis report
// (orchestrator/cli_results.cc). Catalog at --db, default <--root>/migvis.db,
// --root default "runs".
void register_results_commands(CLI::App& app, CommandStatus* out);

}  // namespace migvis::orch
