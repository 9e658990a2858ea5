// Catalog: the one SQLite database of a migvis root (`<root>/migvis.db`) that
// records sweeps, jobs, their queryable parameters, metrics and artifacts.
// Schema and migrations: schemas/db.md, schemas/sql/NNN_*.sql.
//
// Ownership and concurrency:
//   - One WRITER per database file: only the orchestrator process opens it
//     kReadWrite (SQLite on a network filesystem with many writers is a known
//     failure). Any number of kReadOnly readers (results/report commands) may
//     read concurrently; WAL mode lets them read while the writer writes.
//   - A Catalog object owns one sqlite3 connection and is thread-compatible,
//     NOT thread-safe: use it from one thread, or guard every call with your own
//     mutex. (The connection is opened SQLITE_OPEN_NOMUTEX.)
//   - Every mutating method runs in one transaction: either all of its rows are
//     written or none are.
//
// Error codes: NotFound (DB missing in kReadOnly, job dir missing), DataLoss (the
// file is not an SQLite database), FailedPrecondition (schema newer than this
// binary; write attempted on a read-only catalog), InvalidArgument (bad SQL, bad
// values, malformed result.yaml), Unavailable (database busy past busy_timeout),
// Internal (any other SQLite failure).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "common/dir_lock.h"
#include "common/files.h"
#include "common/status.h"
#include "schemas/job_spec.h"

struct sqlite3;

namespace migvis::catalog {

using json = nlohmann::json;

// File name of the catalog inside a root: `<root>/migvis.db`; job directories
// live at `<root>/jobs/<stage>/<job_id>`. The default root is "runs".
inline constexpr const char* kDbFile = "migvis.db";
inline constexpr const char* kDefaultRoot = "runs";
fs::path db_path_for_root(const fs::path& root);

// The single-writer lock of a catalog file: `<db>.lock.d` beside the database
// file (a format; a DirLock with a heartbeat, common/dir_lock.h), so every
// writer of one database file - `results ingest [--db]`, the SLURM ingest jobs,
// `sweep run|resume|status|submit`, `results tables` - takes the same lock
// whichever root or --db it was given. Writers hold it only while they write
// (a local `sweep run` takes it around each recorded state change and ingest),
// so only one process writes the SQLite file at a time, even on NFS. Array
// tasks (workers) never write the catalog. (Before 0.2 the lock was
// `<root>/.ingest.lock.d`; a lock left there by an old version is ignored.)
inline constexpr const char* kWriterLockSuffix = ".lock.d";
fs::path writer_lock_path_for_db(const fs::path& db_file);
// Takes the lock of `db_file`, waiting up to `timeout_s` (Unavailable naming
// the holder after that).
Result<std::unique_ptr<DirLock>> lock_catalog_for_writing(const fs::path& db_file, double timeout_s);
// schema::job_dir (schemas/stages.h): `<root>/jobs/<stage>/<job_id>`.
fs::path job_dir_for(const fs::path& root, const std::string& stage, const std::string& job_id);

// Job lifecycle. The names are stored in the DB (a format: never rename).
enum class JobStatus { kPlanned, kQueued, kRunning, kDone, kFailed, kBlocked, kCancelled };
std::string_view job_status_name(JobStatus s);  // "planned", "queued", ...
Result<JobStatus> parse_job_status(std::string_view name);

// One row of the `jobs` table. key/params/provenance/upstream are JSON values
// (stored as compact JSON text with sorted object keys, so equal values compare
// equal as text).
struct JobRow {
  std::string job_id;                      // 16 hex digits (schemas/job.md); primary key
  std::string hash;                        // full content hash
  std::string sweep;                       // sweep that (last) recorded the job
  std::string stage;                       // data | vae | diffusion | critic | synthesis | eval
  json key = json::object();               // e.g. {"animal": "a1", "session": "s1"}
  json params = json::object();            // resolved stage parameters
  std::optional<int64_t> seed;             // the job's seed, if known
  JobStatus status = JobStatus::kPlanned;
  int attempts = 0;
  std::string host;
  std::string dir;                         // job directory (absolute or relative to the root)
  std::string started_at;                  // ISO-8601 UTC or empty
  std::string finished_at;                 // ISO-8601 UTC or empty
  std::optional<double> wall_s;
  json provenance = json::object();        // resolved config, git, versions, layout, ...
  json upstream = json::object();          // every ancestor by stage, e.g. {"data": "<job_id>", "vae": "<job_id>"}
  std::string note;                        // why failed/blocked/cancelled, free text
  bool operator==(const JobRow& o) const;
};

// One change of a job's status (see set_status).
struct StatusUpdate {
  std::string job_id;
  JobStatus status = JobStatus::kPlanned;
  int attempts = 0;
  std::string note;
};

// A value in a query parameter or a result cell: NULL, integer, real or text.
using Value = std::variant<std::monostate, int64_t, double, std::string>;
std::string value_to_string(const Value& v);  // NULL -> "", numbers %.17g trimmed (%g style)

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  bool truncated = false;  // stopped at QueryLimits::max_rows; more rows matched
};

// Bounds on an ad-hoc query (`results query`), so a runaway statement (a
// recursive CTE without end, a cross join of big tables) cannot hang a login
// node or fill its memory. 0 = unbounded.
struct QueryLimits {
  double timeout_s = 0;  // wall-clock budget; past it the statement is interrupted (Unavailable)
  size_t max_rows = 0;   // rows kept; QueryResult::truncated says when more matched
};

// The catalog row of a job from its job.yaml: the one conversion of a job
// record, used by the recorder (a planned job goes through
// sweeps::job_spec_for) and by ingest_job_dir. Status planned; dir absolute;
// provenance {inputs, resources}; upstream every ancestor by stage -> job_id
// (for a job.yaml without `upstream`, written before it existed: its inputs
// by stage, `dataset` counted as stage `data`).
JobRow job_row_from_spec(const schema::JobSpec& spec, const fs::path& dir);

// YAML (job.yaml params) -> JSON: maps -> objects, sequences -> arrays, scalars
// -> number if they parse fully as one, true/false -> bool, null/~ -> null,
// otherwise string.
json yaml_to_json(const YAML::Node& node);

class Catalog {
 public:
  enum class Mode {
    kReadWrite,  // creates the file if missing, WAL, busy_timeout, runs migrations
    kReadOnly,   // the file must exist; SQLITE_OPEN_READONLY + PRAGMA query_only +
                 // an authorizer that denies anything but reading
  };

  // Opens (kReadWrite: creates + migrates) the database at `db`.
  static Result<std::unique_ptr<Catalog>> open(const fs::path& db, Mode mode);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // Schema version of the open file (PRAGMA user_version) and of this binary.
  int schema_version() const;
  static int latest_schema_version();
  Mode mode() const { return mode_; }
  const fs::path& path() const { return path_; }

  // --- writes (kReadWrite only; FailedPrecondition otherwise) ---------------

  // Records (or updates) a sweep: name is the primary key.
  Status record_sweep(const std::string& name, const std::string& path, const std::string& yaml);

  // Inserts or REPLACES each job's row (every column from the JobRow: the
  // caller owns the row; read it with job() first to keep status/attempts),
  // rebuilds its job_params, and adds (row.sweep, job_id) to sweep_jobs. Metrics
  // and artifacts are left alone. One transaction for the whole vector.
  Status upsert_jobs(const std::vector<JobRow>& rows);

  // Sets status, attempts and note of a job (NotFound if unknown). Entering
  // kRunning also sets started_at to now; entering kDone/kFailed/kCancelled sets
  // finished_at to now if it is empty.
  Status set_status(const std::string& job_id, JobStatus status, int attempts, const std::string& note);
  // Several updates in one transaction (e.g. marking all dependents blocked).
  Status set_statuses(const std::vector<StatusUpdate>& updates);

  // Reads `<dir>/result.yaml` (schemas/job_spec.h read_job_result) and, when
  // present, `<dir>/out.h5:/curves/<name>` float64 [n,2] (step, value), then in
  // one transaction: replaces the job's metrics (scalars with step NULL, curve
  // points with their step) and artifacts, and sets status done (result ok) or
  // failed (note = the error), attempts unchanged, host/started_at/finished_at/
  // wall_s from the result. If the job is not in the DB yet, its row is created
  // from `<dir>/job.yaml`. Idempotent: ingesting the same dir twice leaves the
  // same rows. NotFound if there is no result.yaml (job not finished).
  Status ingest_job_dir(const fs::path& dir);

  // --- reads (both modes) ----------------------------------------------------

  Result<std::optional<JobRow>> job(const std::string& job_id) const;
  // Jobs that are members of `sweep` (sweep_jobs), ordered by stage then job_id.
  Result<std::vector<JobRow>> jobs_of_sweep(const std::string& sweep) const;
  // The most recently finished job with status done, the same stage and the
  // same key (JSON, compared after canonical serialization); nullopt if none.
  Result<std::optional<JobRow>> last_done_like(const std::string& stage, const json& key) const;

  // Runs ONE SQL statement with `?` parameters bound in order. On a kReadOnly
  // catalog any statement that would write (INSERT/UPDATE/DELETE/DDL/ATTACH/
  // PRAGMA/...) is refused with InvalidArgument before it runs. More than one
  // statement (`SELECT 1; DROP ...`) is InvalidArgument in both modes.
  // `limits` bound its time (sqlite3_progress_handler) and rows.
  Result<QueryResult> query(const std::string& sql, const std::vector<Value>& params = {},
                            const QueryLimits& limits = {}) const;

 private:
  Catalog(sqlite3* db, fs::path path, Mode mode) : db_(db), path_(std::move(path)), mode_(mode) {}
  Status exec(const std::string& sql) const;  // no parameters, any number of statements
  Status migrate();
  Status require_writable(std::string_view what) const;
  Status upsert_job_locked(const JobRow& row);
  Result<std::vector<JobRow>> select_jobs(const std::string& where_sql, const std::vector<Value>& params) const;

  sqlite3* db_ = nullptr;
  fs::path path_;
  Mode mode_;
  int schema_version_ = 0;
};

}  // namespace migvis::catalog
