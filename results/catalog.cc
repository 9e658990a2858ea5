// Catalog writes (sweeps, job rows, statuses) and reads (jobs, ad-hoc
// queries). The SQLite layer is results/sqlite.{h,cc}; ingest is ingest.cc.
#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "results/catalog.h"
#include "results/h5.h"
#include "results/sqlite.h"
#include "schemas/job_spec.h"
#include "schemas/sql_migrations.h"
#include "schemas/stages.h"

namespace migvis::catalog {
using namespace internal;

// ------------------------------------------------------------------ helpers

fs::path db_path_for_root(const fs::path& root) { return root / kDbFile; }
fs::path writer_lock_path_for_db(const fs::path& db_file) {
  const fs::path abs = fs::absolute(db_file).lexically_normal();
  return abs.parent_path() / (abs.filename().string() + kWriterLockSuffix);
}
Result<std::unique_ptr<DirLock>> lock_catalog_for_writing(const fs::path& db_file, double timeout_s) {
  DirLockOptions o;
  o.timeout_s = timeout_s;
  auto l = DirLock::acquire(writer_lock_path_for_db(db_file), o);
  if (!l.ok()) return l.status().with_context("the catalog's single-writer lock");
  return l;
}
fs::path job_dir_for(const fs::path& root, const std::string& stage, const std::string& job_id) {
  return schema::job_dir(root, stage, job_id);
}

std::string_view job_status_name(JobStatus s) {
  switch (s) {
    case JobStatus::kPlanned: return "planned";
    case JobStatus::kQueued: return "queued";
    case JobStatus::kRunning: return "running";
    case JobStatus::kDone: return "done";
    case JobStatus::kFailed: return "failed";
    case JobStatus::kBlocked: return "blocked";
    case JobStatus::kCancelled: return "cancelled";
  }
  return "planned";
}

Result<JobStatus> parse_job_status(std::string_view name) {
  for (JobStatus s : {JobStatus::kPlanned, JobStatus::kQueued, JobStatus::kRunning, JobStatus::kDone,
                      JobStatus::kFailed, JobStatus::kBlocked, JobStatus::kCancelled})
    if (job_status_name(s) == name) return s;
  return Status::InvalidArgument(fmt::format(
      "unknown job status '{}'; expected planned|queued|running|done|failed|blocked|cancelled", name));
}

bool JobRow::operator==(const JobRow& o) const {
  return job_id == o.job_id && hash == o.hash && sweep == o.sweep && stage == o.stage && key == o.key &&
         params == o.params && seed == o.seed && status == o.status && attempts == o.attempts && host == o.host &&
         dir == o.dir && started_at == o.started_at && finished_at == o.finished_at && wall_s == o.wall_s &&
         provenance == o.provenance && upstream == o.upstream && note == o.note;
}

std::string value_to_string(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return "";
  if (auto* n = std::get_if<int64_t>(&v)) return std::to_string(*n);
  if (auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  return std::get<std::string>(v);
}

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (auto it : node) o[it.first.as<std::string>()] = yaml_to_json(it.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (auto x : node) a.push_back(yaml_to_json(x));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted in the YAML: keep it a string
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
      if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
      {
        const char* b = s.c_str();
        char* e = nullptr;
        long long i = std::strtoll(b, &e, 10);
        if (!s.empty() && e == b + s.size()) return static_cast<int64_t>(i);
      }
      if (auto d = parse_number(s)) return *d;
      return s;
    }
    default:
      return nullptr;
  }
}


// ------------------------------------------------------------------ writes

Status Catalog::record_sweep(const std::string& name, const std::string& path, const std::string& yaml) {
  MIGVIS_RETURN_IF_ERROR(require_writable("record_sweep"));
  MIGVIS_ASSIGN_OR_RETURN(Stmt st, Stmt::prepare(db_,
                                                 "INSERT INTO sweeps (name, path, yaml, created_at) VALUES (?,?,?,?) "
                                                 "ON CONFLICT(name) DO UPDATE SET path=excluded.path, yaml=excluded.yaml"));
  MIGVIS_RETURN_IF_ERROR(st.bind_all({name, path, yaml, now_iso()}));
  return st.run();
}

namespace {
struct UpsertStmts {
  Stmt job, del_params, param, member;
};
Result<UpsertStmts> prepare_upsert(sqlite3* db) {
  UpsertStmts s;
  MIGVIS_ASSIGN_OR_RETURN(
      s.job, Stmt::prepare(db, fmt::format(
                                   "INSERT INTO jobs ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                                   "ON CONFLICT(job_id) DO UPDATE SET hash=excluded.hash, sweep=excluded.sweep, "
                                   "stage=excluded.stage, key=excluded.key, params=excluded.params, seed=excluded.seed, "
                                   "status=excluded.status, attempts=excluded.attempts, host=excluded.host, "
                                   "dir=excluded.dir, started_at=excluded.started_at, finished_at=excluded.finished_at, "
                                   "wall_s=excluded.wall_s, provenance=excluded.provenance, upstream=excluded.upstream, "
                                   "note=excluded.note",
                                   kJobColumns)));
  MIGVIS_ASSIGN_OR_RETURN(s.del_params, Stmt::prepare(db, "DELETE FROM job_params WHERE job_id=?"));
  MIGVIS_ASSIGN_OR_RETURN(
      s.param, Stmt::prepare(db, "INSERT OR REPLACE INTO job_params (job_id, name, value_text, value_num) VALUES (?,?,?,?)"));
  MIGVIS_ASSIGN_OR_RETURN(s.member, Stmt::prepare(db, "INSERT OR IGNORE INTO sweep_jobs (sweep, job_id) VALUES (?,?)"));
  return s;
}

Status upsert_one(UpsertStmts& s, const JobRow& r) {
  if (r.job_id.empty()) return Status::InvalidArgument("upsert_jobs: a JobRow has an empty job_id");
  if (r.stage.empty()) return Status::InvalidArgument("upsert_jobs: job " + r.job_id + " has an empty stage");
  if (!r.key.is_object() || !r.params.is_object())
    return Status::InvalidArgument("upsert_jobs: job " + r.job_id + ": key and params must be JSON objects");
  MIGVIS_RETURN_IF_ERROR(s.job.bind_all({r.job_id, r.hash, r.sweep, r.stage, dump(r.key), dump(r.params),
                                         r.seed ? Value(*r.seed) : Value(), std::string(job_status_name(r.status)),
                                         int64_t{r.attempts}, r.host, r.dir, r.started_at, r.finished_at,
                                         r.wall_s ? Value(*r.wall_s) : Value(), dump(r.provenance), dump(r.upstream),
                                         r.note}));
  MIGVIS_RETURN_IF_ERROR(s.job.run().with_context("job " + r.job_id));
  MIGVIS_RETURN_IF_ERROR(s.del_params.bind_all({r.job_id}));
  MIGVIS_RETURN_IF_ERROR(s.del_params.run());
  // Params first, then key fields and the seed, so those win on a name clash.
  std::vector<std::pair<std::string, json>> leaves;
  flatten(r.params, "", &leaves);
  flatten(r.key, "", &leaves);
  if (r.seed) leaves.emplace_back("seed", *r.seed);
  for (const auto& [name, v] : leaves) {
    auto [text, num] = param_values(v);
    MIGVIS_RETURN_IF_ERROR(s.param.bind_all({r.job_id, name, text, num}));
    MIGVIS_RETURN_IF_ERROR(s.param.run());
  }
  if (!r.sweep.empty()) {
    MIGVIS_RETURN_IF_ERROR(s.member.bind_all({r.sweep, r.job_id}));
    MIGVIS_RETURN_IF_ERROR(s.member.run());
  }
  return Status::Ok();
}
}  // namespace

Status Catalog::upsert_jobs(const std::vector<JobRow>& rows) {
  MIGVIS_RETURN_IF_ERROR(require_writable("upsert_jobs"));
  Transaction tx(db_);
  MIGVIS_RETURN_IF_ERROR(tx.begin());
  MIGVIS_ASSIGN_OR_RETURN(UpsertStmts s, prepare_upsert(db_));
  for (const auto& r : rows) MIGVIS_RETURN_IF_ERROR(upsert_one(s, r));
  return tx.commit();
}

Status Catalog::upsert_job_locked(const JobRow& row) {
  MIGVIS_ASSIGN_OR_RETURN(UpsertStmts s, prepare_upsert(db_));
  return upsert_one(s, row);
}

namespace {
constexpr const char* kSetStatusSql =
    "UPDATE jobs SET status=?1, attempts=?2, note=?3, "
    "started_at = CASE WHEN ?1='running' THEN ?4 ELSE started_at END, "
    "finished_at = CASE WHEN ?1 IN ('done','failed','cancelled') AND finished_at='' THEN ?4 ELSE finished_at END "
    "WHERE job_id=?5";
}  // namespace

Status Catalog::set_status(const std::string& job_id, JobStatus status, int attempts, const std::string& note) {
  return set_statuses({StatusUpdate{job_id, status, attempts, note}});
}

Status Catalog::set_statuses(const std::vector<StatusUpdate>& updates) {
  MIGVIS_RETURN_IF_ERROR(require_writable("set_status"));
  Transaction tx(db_);
  MIGVIS_RETURN_IF_ERROR(tx.begin());
  MIGVIS_ASSIGN_OR_RETURN(Stmt st, Stmt::prepare(db_, kSetStatusSql));
  const std::string now = now_iso();
  for (const auto& u : updates) {
    MIGVIS_RETURN_IF_ERROR(
        st.bind_all({std::string(job_status_name(u.status)), int64_t{u.attempts}, u.note, now, u.job_id}));
    MIGVIS_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db_) == 0)
      return Status::NotFound(fmt::format("set_status: job {} is not in catalog {}", u.job_id, path_.string()));
  }
  return tx.commit();
}


// ------------------------------------------------------------------ reads

Result<std::vector<JobRow>> Catalog::select_jobs(const std::string& where_sql, const std::vector<Value>& params) const {
  std::string cols;
  for (std::string_view c : {"job_id", "hash", "sweep", "stage", "key", "params", "seed", "status", "attempts", "host",
                             "dir", "started_at", "finished_at", "wall_s", "provenance", "upstream", "note"})
    cols += (cols.empty() ? "j." : ", j.") + std::string(c);
  MIGVIS_ASSIGN_OR_RETURN(Stmt st, Stmt::prepare(db_, "SELECT " + cols + " FROM jobs j " + where_sql));
  MIGVIS_RETURN_IF_ERROR(st.bind_all(params));
  std::vector<JobRow> out;
  while (true) {
    MIGVIS_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    JobRow r;
    r.job_id = st.text(0);
    r.hash = st.text(1);
    r.sweep = st.text(2);
    r.stage = st.text(3);
    MIGVIS_ASSIGN_OR_RETURN(r.key, parse_json(st.text(4), "jobs.key of " + r.job_id));
    MIGVIS_ASSIGN_OR_RETURN(r.params, parse_json(st.text(5), "jobs.params of " + r.job_id));
    if (!st.is_null(6)) r.seed = sqlite3_column_int64(st.get(), 6);
    MIGVIS_ASSIGN_OR_RETURN(r.status, parse_job_status(st.text(7)));
    r.attempts = sqlite3_column_int(st.get(), 8);
    r.host = st.text(9);
    r.dir = st.text(10);
    r.started_at = st.text(11);
    r.finished_at = st.text(12);
    if (!st.is_null(13)) r.wall_s = sqlite3_column_double(st.get(), 13);
    MIGVIS_ASSIGN_OR_RETURN(r.provenance, parse_json(st.text(14), "jobs.provenance of " + r.job_id));
    MIGVIS_ASSIGN_OR_RETURN(r.upstream, parse_json(st.text(15), "jobs.upstream of " + r.job_id));
    r.note = st.text(16);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::optional<JobRow>> Catalog::job(const std::string& job_id) const {
  MIGVIS_ASSIGN_OR_RETURN(std::vector<JobRow> rows, select_jobs("WHERE j.job_id = ?", {job_id}));
  if (rows.empty()) return std::optional<JobRow>();
  return std::optional<JobRow>(std::move(rows.front()));
}

Result<std::vector<JobRow>> Catalog::jobs_of_sweep(const std::string& sweep) const {
  return select_jobs("JOIN sweep_jobs s ON s.job_id = j.job_id WHERE s.sweep = ? ORDER BY j.stage, j.job_id", {sweep});
}

Result<std::optional<JobRow>> Catalog::last_done_like(const std::string& stage, const json& key) const {
  MIGVIS_ASSIGN_OR_RETURN(
      std::vector<JobRow> rows,
      select_jobs("WHERE j.stage = ? AND j.key = ? AND j.status = 'done' ORDER BY j.finished_at DESC, j.rowid DESC "
                  "LIMIT 1",
                  {stage, dump(key)}));
  if (rows.empty()) return std::optional<JobRow>();
  return std::optional<JobRow>(std::move(rows.front()));
}

namespace {
// sqlite3_progress_handler callback: non-zero interrupts the running statement.
int past_deadline(void* deadline) {
  return std::chrono::steady_clock::now() > *static_cast<std::chrono::steady_clock::time_point*>(deadline) ? 1 : 0;
}
}  // namespace

Result<QueryResult> Catalog::query(const std::string& sql, const std::vector<Value>& params,
                                   const QueryLimits& limits) const {
  size_t tail = 0;
  auto prepared = Stmt::prepare(db_, sql, &tail);
  if (!prepared.ok()) {
    // The authorizer's refusal can surface as SQLITE_AUTH or SQLITE_SCHEMA.
    if (mode_ == Mode::kReadOnly && prepared.status().code() == StatusCode::kInternal)
      return Status::InvalidArgument(fmt::format("SQL `{}` refused: the catalog is opened read-only, only SELECT is "
                                                 "allowed ({})",
                                                 sql, prepared.status().message()));
    return prepared.status().with_context("SQL `" + sql + "`");
  }
  Stmt st = std::move(prepared).value();
  if (!st.get()) return Status::InvalidArgument("empty SQL statement (only whitespace or comments)");
  if (tail < sql.size()) {
    std::string rest = sql.substr(tail);
    sqlite3_stmt* next = nullptr;
    int rc = sqlite3_prepare_v2(db_, rest.c_str(), -1, &next, nullptr);
    bool more = rc != SQLITE_OK || next != nullptr;
    sqlite3_finalize(next);
    if (more)
      return Status::InvalidArgument(
          fmt::format("SQL has more than one statement; run one at a time (extra: `{}`)", rest));
  }
  if (mode_ == Mode::kReadOnly && !sqlite3_stmt_readonly(st.get()))
    return Status::InvalidArgument("the catalog is opened read-only: only SELECT statements are allowed, got `" + sql +
                                   "`");
  if (static_cast<size_t>(sqlite3_bind_parameter_count(st.get())) != params.size())
    return Status::InvalidArgument(fmt::format("SQL has {} parameters, {} values given",
                                               sqlite3_bind_parameter_count(st.get()), params.size()));
  MIGVIS_RETURN_IF_ERROR(st.bind_all(params));
  QueryResult out;
  int n = sqlite3_column_count(st.get());
  for (int i = 0; i < n; ++i) out.columns.emplace_back(sqlite3_column_name(st.get(), i));
  // The deadline is checked every 1000 virtual-machine instructions; the
  // handler is removed again however this function returns.
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(limits.timeout_s));
  struct HandlerGuard {
    sqlite3* db;
    ~HandlerGuard() { sqlite3_progress_handler(db, 0, nullptr, nullptr); }
  } guard{db_};
  if (limits.timeout_s > 0) sqlite3_progress_handler(db_, 1000, &past_deadline, &deadline);
  while (true) {
    auto step = st.step();
    if (!step.ok()) {
      if (limits.timeout_s > 0 && std::chrono::steady_clock::now() > deadline)
        return Status::Unavailable(fmt::format("SQL `{}` stopped after its time limit of {:g} s (results query "
                                               "--timeout); narrow the query or raise the limit",
                                               sql, limits.timeout_s));
      return step.status();
    }
    const bool row = *step;
    if (!row) break;
    if (limits.max_rows > 0 && out.rows.size() >= limits.max_rows) {
      out.truncated = true;
      break;
    }
    std::vector<Value> r;
    r.reserve(n);
    for (int i = 0; i < n; ++i) r.push_back(st.value(i));
    out.rows.push_back(std::move(r));
  }
  return out;
}


}  // namespace migvis::catalog
