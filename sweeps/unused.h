// Dead jobs at plan time: jobs whose outputs no downstream job of the plan
// reads and no table uses (`sweep plan`, `sweep submit --dry-run`), and the plan
// without them (`--prune-unused`). Pure, like the rest of sweeps/.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sweeps/sweep.h"

namespace migvis::sweeps {

// Stages whose jobs a table or the report reads straight from the catalog
// (results/tables.cc, results/report.cc: vae and eval). A job of any other
// stage is useful only through a downstream job that is.
bool stage_feeds_tables(const std::string& stage);

// Indices (ascending) of the jobs no used job depends on, transitively: a job is
// used when its stage feeds the tables or a used job lists it in deps.
std::vector<size_t> unused_jobs(const Plan& plan);

// The plan without `drop` (indices), deps and upstream renumbered. Dropping a
// job that a kept job depends on is an error (InvalidArgument).
Result<Plan> drop_jobs(const Plan& plan, const std::vector<size_t>& drop);

// Human lines: one per stage with unused jobs ("critic: 72 of 120 jobs feed
// nothing (no downstream job reads them, no table uses them)"), plus, with
// `list`, one per job (id and key). Empty when there are none.
std::vector<std::string> unused_report(const Plan& plan, const std::vector<size_t>& unused, bool list);

// What `sweep plan` / `sweep submit` print (unused_report, then how to drop
// them); with `prune`, drops the unused jobs from *plan and says so.
Result<std::vector<std::string>> unused_lines(Plan* plan, bool prune, bool list);

}  // namespace migvis::sweeps
