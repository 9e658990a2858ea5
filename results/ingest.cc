// Ingest: a finished job directory (job.yaml, result.yaml, out.h5 curves) ->
// catalog rows. job_row_from_spec is the one conversion of a job record.
#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "common/hash.h"
#include "common/log.h"
#include "results/catalog.h"
#include "results/h5.h"
#include "results/sqlite.h"
#include "schemas/job_spec.h"
#include "schemas/sql_migrations.h"
#include "schemas/stages.h"

namespace migvis::catalog {
using namespace internal;

namespace {
struct Curve {
  std::string name;
  std::vector<std::pair<int64_t, double>> points;
};

Result<std::vector<Curve>> read_curves(const fs::path& out_h5) {
  std::vector<Curve> curves;
  std::error_code ec;
  if (!fs::exists(out_h5, ec)) return curves;
  MIGVIS_ASSIGN_OR_RETURN(h5::File f, h5::File::open(out_h5, h5::Mode::kReadOnly));
  if (!f.is_group("curves")) return curves;
  MIGVIS_ASSIGN_OR_RETURN(h5::Group g, f.open_group("curves"));
  MIGVIS_ASSIGN_OR_RETURN(std::vector<std::string> names, g.children());
  for (const auto& name : names) {
    if (!g.is_dataset(name)) continue;
    MIGVIS_ASSIGN_OR_RETURN(h5::Array<double> a, g.read<double>(name));
    if (a.rank() != 2 || a.dim(1) != 2)
      return Status::InvalidArgument(fmt::format("{}: expected float64 [n,2] (step, value), found rank {} shape [{}]",
                                                 g.where(name), a.rank(),
                                                 a.rank() == 0 ? "" : fmt::format("{}", fmt::join(a.shape, ","))));
    Curve c{name, {}};
    for (size_t i = 0; i < a.dim(0); ++i) {
      double step = a.data[2 * i], value = a.data[2 * i + 1];
      if (!std::isfinite(step))
        return Status::InvalidArgument(fmt::format("{}: row {} has a non-finite step", g.where(name), i));
      c.points.emplace_back(static_cast<int64_t>(std::llround(step)), value);
    }
    curves.push_back(std::move(c));
  }
  return curves;
}

// Upstream job ids from a job.yaml without `upstream` (written before the
// field existed): each input's job directory name (or, for a file input such
// as dataset.h5, its parent directory's name), `dataset` counted as `data`.
json upstream_from_inputs(const std::map<std::string, std::string>& inputs) {
  json u = json::object();
  for (const auto& [name, p] : inputs) {
    fs::path path(p);
    if (path.has_extension()) path = path.parent_path();
    u[name == "dataset" ? "data" : name] = path.filename().string();
  }
  return u;
}
// What ingest believes of a job directory only after checking it: the
// directory is named by result.yaml's job_id, which is job.yaml's job_id and
// its recorded hash's first 16 digits (and hash_inputs.json, when present,
// hashes to that hash); every artifact path stays inside the directory.
// Returns the problem ("" when none). `row_hash` is the catalog's hash of the
// job when it has a row (job.yaml may then be absent).
std::string job_dir_problem(const fs::path& dir, const schema::JobResult& res, const Result<schema::JobSpec>& spec,
                            const std::optional<std::string>& row_hash) {
  const std::string name = dir.filename().string();
  const std::string result_file = (dir / schema::kResultFile).string();
  if (res.job_id != name)
    return fmt::format("{}: job_id {} differs from the job directory's name {}", result_file, res.job_id, name);
  auto hash_names = [&](const std::string& hash, const std::string& where) -> std::string {
    if (hash.empty()) return "";
    if (hash.compare(0, name.size(), name) != 0)
      return fmt::format("{}: the recorded hash {} does not name the job directory {}", where, hash, name);
    return "";
  };
  if (spec.ok()) {
    const std::string job_file = (dir / schema::kJobFile).string();
    if (spec->job_id != name)
      return fmt::format("{}: job_id {} differs from the job directory's name {}", job_file, spec->job_id, name);
    if (auto p = hash_names(spec->hash, job_file); !p.empty()) return p;
    if (spec->stage != res.stage && !res.stage.empty())
      return fmt::format("{}: stage {} differs from job.yaml's stage {}", result_file, res.stage, spec->stage);
    std::error_code ec;
    const fs::path inputs_file = dir / "hash_inputs.json";
    if (!spec->hash.empty() && fs::exists(inputs_file, ec)) {
      auto text = read_file(inputs_file);
      if (!text.ok()) return text.status().message();
      json inputs = json::parse(*text, nullptr, false);
      if (inputs.is_discarded()) return inputs_file.string() + ": not valid JSON";
      if (sha256_hex(inputs.dump()) != spec->hash)
        return fmt::format("{}: hashes to {}, not to job.yaml's hash {}", inputs_file.string(),
                           sha256_hex(inputs.dump()).substr(0, 16), spec->hash.substr(0, 16));
    }
  } else if (row_hash) {
    if (auto p = hash_names(*row_hash, "the catalog"); !p.empty()) return p;
  }
  for (const auto& a : res.artifacts)
    if (std::string p = schema::artifact_path_problem(dir, a.path); !p.empty())
      return fmt::format("{}: artifact {} path \"{}\" {}", result_file, a.kind, a.path, p);
  return "";
}
}  // namespace

JobRow job_row_from_spec(const schema::JobSpec& spec, const fs::path& dir) {
  JobRow row;
  row.job_id = spec.job_id;
  row.hash = spec.hash;
  row.sweep = spec.sweep;
  row.stage = spec.stage;
  for (const auto& [k, v] : spec.key) row.key[k] = v;
  row.params = yaml_to_json(spec.params);
  if (!row.params.is_object()) row.params = json::object();
  row.seed = static_cast<int64_t>(spec.seed);
  row.status = JobStatus::kPlanned;
  row.dir = fs::absolute(dir).lexically_normal().string();
  if (!spec.upstream.empty()) {
    for (const auto& [st, id] : spec.upstream) row.upstream[st] = id;
  } else {
    row.upstream = upstream_from_inputs(spec.inputs);
  }
  json inputs = json::object();
  for (const auto& [k, v] : spec.inputs) inputs[k] = v;
  row.provenance["inputs"] = inputs;
  const schema::Resources& r = spec.resources;
  row.provenance["resources"] = {{"threads", r.threads}, {"ranks", r.ranks}, {"gpus", r.gpus},
                                 {"mem_gb", r.mem_gb}, {"time_min", r.time_min}};
  return row;
}

Status Catalog::ingest_job_dir(const fs::path& dir) {
  MIGVIS_RETURN_IF_ERROR(require_writable("ingest_job_dir"));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound(fmt::format("job directory {} does not exist", dir.string()));
  MIGVIS_ASSIGN_OR_RETURN(schema::JobResult res, schema::read_job_result(dir));
  auto spec = schema::read_job_spec(dir);
  // Nothing from a job directory reaches the catalog before it is checked.
  const fs::path named = fs::absolute(dir).lexically_normal();
  const fs::path real_dir = named.has_filename() ? named : named.parent_path();
  MIGVIS_ASSIGN_OR_RETURN(std::optional<JobRow> existing, job(res.job_id));
  std::optional<std::string> row_hash;
  if (existing) row_hash = existing->hash;
  if (std::string problem = job_dir_problem(real_dir, res, spec, row_hash); !problem.empty()) {
    MIGVIS_LOG_WARN("ingest: {}; skipped, nothing of it written to the catalog", problem);
    return Status::InvalidArgument(problem + "; not ingested");
  }
  JobRow row;
  if (existing) {
    row = *existing;
  } else {
    if (!spec.ok())
      return spec.status().with_context(
          fmt::format("ingesting {}: job {} is not in the catalog and its job.yaml cannot be read", dir.string(),
                      res.job_id));
    row = job_row_from_spec(*spec, dir);
    if (row.job_id != res.job_id)
      return Status::InvalidArgument(fmt::format("{}: job.yaml job_id {} differs from result.yaml job_id {}",
                                                 dir.string(), row.job_id, res.job_id));
  }
  std::vector<Curve> curves;
  if (res.status == "ok") {
    auto c = read_curves(dir / schema::kOutFile);
    if (!c.ok()) return c.status().with_context("ingesting " + dir.string());
    curves = std::move(c).value();
  }

  row.status = res.status == "ok" ? JobStatus::kDone : JobStatus::kFailed;
  row.note = res.status == "ok" ? "" : (res.error.empty() ? fmt::format("failed, exit code {}", res.exit_code) : res.error);
  if (!res.host.empty()) row.host = res.host;
  if (!res.started_at.empty()) row.started_at = res.started_at;
  if (!res.finished_at.empty()) row.finished_at = res.finished_at;
  row.wall_s = res.wall_s;
  json result = json::object();
  for (const auto& [k, v] : res.layout) result["layout"][k] = v;
  for (const auto& [k, v] : res.versions) result["versions"][k] = v;
  result["exit_code"] = res.exit_code;
  row.provenance["result"] = result;

  Transaction tx(db_);
  MIGVIS_RETURN_IF_ERROR(tx.begin());
  MIGVIS_RETURN_IF_ERROR(upsert_job_locked(row));
  MIGVIS_ASSIGN_OR_RETURN(Stmt del_m, Stmt::prepare(db_, "DELETE FROM metrics WHERE job_id=?"));
  MIGVIS_RETURN_IF_ERROR(del_m.bind_all({row.job_id}));
  MIGVIS_RETURN_IF_ERROR(del_m.run());
  MIGVIS_ASSIGN_OR_RETURN(Stmt del_a, Stmt::prepare(db_, "DELETE FROM artifacts WHERE job_id=?"));
  MIGVIS_RETURN_IF_ERROR(del_a.bind_all({row.job_id}));
  MIGVIS_RETURN_IF_ERROR(del_a.run());
  MIGVIS_ASSIGN_OR_RETURN(Stmt ins_m,
                          Stmt::prepare(db_, "INSERT OR REPLACE INTO metrics (job_id, name, step, value) VALUES (?,?,?,?)"));
  for (const auto& [name, v] : res.metrics) {
    MIGVIS_RETURN_IF_ERROR(ins_m.bind_all({row.job_id, name, Value(), std::isfinite(v) ? Value(v) : Value()}));
    MIGVIS_RETURN_IF_ERROR(ins_m.run());
  }
  for (const auto& c : curves)
    for (const auto& [step, v] : c.points) {
      MIGVIS_RETURN_IF_ERROR(ins_m.bind_all({row.job_id, c.name, step, std::isfinite(v) ? Value(v) : Value()}));
      MIGVIS_RETURN_IF_ERROR(ins_m.run());
    }
  MIGVIS_ASSIGN_OR_RETURN(Stmt ins_a,
                          Stmt::prepare(db_, "INSERT OR IGNORE INTO artifacts (job_id, kind, path, h5) VALUES (?,?,?,?)"));
  for (const auto& a : res.artifacts) {
    MIGVIS_RETURN_IF_ERROR(ins_a.bind_all({row.job_id, a.kind, a.path, a.h5}));
    MIGVIS_RETURN_IF_ERROR(ins_a.run());
  }
  return tx.commit();
}


}  // namespace migvis::catalog
