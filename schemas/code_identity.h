// Code identity: per pipeline stage, a fingerprint of the sources that compute
// its outputs (the table and the hashing: cmake/code_fingerprint.cmake). Both
// programs embed the table of the tree they were built from; the planner puts a
// stage's fingerprint into its jobs' hash inputs and job.yaml `code`, and the
// worker refuses a job.yaml whose `code` differs from its own (schemas/job.md).
// Thread-safe (immutable after first use).
#pragma once

#include <map>
#include <string>

namespace migvis::schema {

// Stage name -> fingerprint (16 hex digits).
using CodeFingerprints = std::map<std::string, std::string>;

// The table this program was built with: one row per stage of schema::stages().
const CodeFingerprints& built_in_code_fingerprints();

// The built-in fingerprint of `stage`; empty for an unknown stage.
std::string code_fingerprint(const std::string& stage);

}  // namespace migvis::schema
