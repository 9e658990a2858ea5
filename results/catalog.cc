#include "results/catalog.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "results/h5.h"
#include "schemas/job_spec.h"
#include "schemas/sql_migrations.h"
#include "schemas/stages.h"

namespace migvis::catalog {
namespace {

constexpr int kBusyTimeoutMs = 10000;

// Maps an SQLite result code to our Status codes (one policy per code).
Status sqlite_status(sqlite3* db, int rc, std::string_view what) {
  std::string msg = fmt::format("{}: {} ({})", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                                sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::DataLoss(msg + "; is this really a migvis catalog (SQLite database)?");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg + "; another process holds the database, retry later");
    case SQLITE_CANTOPEN:
      return Status::NotFound(msg);
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Status::InvalidArgument(msg + "; the catalog is opened read-only: only SELECT is allowed");
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
      return Status::InvalidArgument(msg);
    default:
      return Status::Internal(msg);
  }
}

// One prepared statement; finalized by the destructor.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(Stmt&& o) noexcept : db_(o.db_), st_(std::exchange(o.st_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    if (this != &o) {
      sqlite3_finalize(st_);
      db_ = o.db_;
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  Stmt(const Stmt&) = delete;

  // `tail`, if given, receives the offset of the text after the first statement.
  static Result<Stmt> prepare(sqlite3* db, std::string_view sql, size_t* tail = nullptr) {
    Stmt s;
    s.db_ = db;
    const char* end = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s.st_, &end);
    if (tail) *tail = end ? static_cast<size_t>(end - sql.data()) : sql.size();
    if (rc != SQLITE_OK) return sqlite_status(db, rc, "preparing SQL");
    return s;
  }
  sqlite3_stmt* get() const { return st_; }

  Status bind(int i, const Value& v) {
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::monostate>(v)) rc = sqlite3_bind_null(st_, i);
    else if (auto* n = std::get_if<int64_t>(&v)) rc = sqlite3_bind_int64(st_, i, *n);
    else if (auto* d = std::get_if<double>(&v)) rc = sqlite3_bind_double(st_, i, *d);
    else {
      const auto& s = std::get<std::string>(v);
      rc = sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, fmt::format("binding parameter {}", i));
    return Status::Ok();
  }
  Status bind_all(const std::vector<Value>& vs) {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
    for (size_t i = 0; i < vs.size(); ++i) MIGVIS_RETURN_IF_ERROR(bind(static_cast<int>(i + 1), vs[i]));
    return Status::Ok();
  }
  // Runs to completion (for statements that return no rows we need).
  Status run() {
    int rc;
    while ((rc = sqlite3_step(st_)) == SQLITE_ROW) {
    }
    sqlite3_reset(st_);
    if (rc != SQLITE_DONE) return sqlite_status(db_, rc, "running SQL");
    return Status::Ok();
  }
  // Returns true for a row, false when done.
  Result<bool> step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Status s = sqlite_status(db_, rc, "running SQL");
    sqlite3_reset(st_);
    return s;
  }
  std::string text(int col) const {
    auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, col)) : std::string();
  }
  bool is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
  Value value(int col) const {
    switch (sqlite3_column_type(st_, col)) {
      case SQLITE_INTEGER: return static_cast<int64_t>(sqlite3_column_int64(st_, col));
      case SQLITE_FLOAT: return sqlite3_column_double(st_, col);
      case SQLITE_NULL: return std::monostate{};
      default: return text(col);
    }
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

// Read-only connections: allow reading only. This also refuses ATTACH (which
// sqlite3_stmt_readonly() would let through) and every PRAGMA.
int read_only_authorizer(void*, int action, const char*, const char*, const char*, const char*) {
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    default:
      return SQLITE_DENY;
  }
}

// RAII transaction: BEGIN IMMEDIATE now, ROLLBACK unless commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Status begin() {
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, "BEGIN IMMEDIATE");
    open_ = true;
    return Status::Ok();
  }
  Status commit() {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sqlite_status(db_, rc, "COMMIT");
    open_ = false;
    return Status::Ok();
  }
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

std::string dump(const json& j) { return j.dump(); }  // objects are std::map: keys sorted

Result<json> parse_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::DataLoss(fmt::format("catalog column {} holds invalid JSON: {}", what, text));
  return j;
}

std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const char* b = s.c_str();
  char* e = nullptr;
  double d = std::strtod(b, &e);
  if (e != b + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

// Flattens objects into dotted names; arrays and scalars are leaves.
void flatten(const json& v, const std::string& prefix, std::vector<std::pair<std::string, json>>* out) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  if (!prefix.empty()) out->emplace_back(prefix, v);
}

// (value_text, value_num) of a parameter leaf.
std::pair<Value, Value> param_values(const json& v) {
  if (v.is_null()) return {std::monostate{}, std::monostate{}};
  if (v.is_boolean()) return {std::string(v.get<bool>() ? "true" : "false"), int64_t{v.get<bool>() ? 1 : 0}};
  if (v.is_number_integer()) return {std::to_string(v.get<int64_t>()), static_cast<double>(v.get<int64_t>())};
  if (v.is_number()) return {fmt::format("{}", v.get<double>()), v.get<double>()};
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    auto n = parse_number(s);
    return {s, n ? Value(*n) : Value(std::monostate{})};
  }
  return {v.dump(), std::monostate{}};
}

std::string now_iso() { return schema::utc_now_iso8601(); }

const char* kJobColumns =
    "job_id, hash, sweep, stage, key, params, seed, status, attempts, host, dir, started_at, finished_at, "
    "wall_s, provenance, upstream, note";

}  // namespace

// ------------------------------------------------------------------ helpers

fs::path db_path_for_root(const fs::path& root) { return root / kDbFile; }
fs::path ingest_lock_path_for_root(const fs::path& root) { return root / kIngestLockDir; }
Result<std::unique_ptr<DirLock>> lock_catalog_for_writing(const fs::path& root, double timeout_s) {
  DirLockOptions o;
  o.timeout_s = timeout_s;
  auto l = DirLock::acquire(ingest_lock_path_for_root(root), o);
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

// ------------------------------------------------------------------ open

Result<std::unique_ptr<Catalog>> Catalog::open(const fs::path& db, Mode mode) {
  // SQLite's memory statistics take a global mutex on every malloc (~15% of an
  // upsert); we never read them. Must precede the library's initialization.
  static const bool kConfigured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)kConfigured;
  std::error_code ec;
  sqlite3* raw = nullptr;
  if (mode == Mode::kReadOnly) {
    if (!fs::exists(db, ec))
      return Status::NotFound(fmt::format("catalog {} does not exist; run a sweep first or pass --db/--root", db.string()));
    if (fs::is_directory(db, ec))
      return Status::InvalidArgument(fmt::format("catalog {} is a directory, expected an SQLite file", db.string()));
    int rc = sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status s = sqlite_status(raw, rc, "opening " + db.string());
      sqlite3_close(raw);
      return s;
    }
  } else {
    if (db.has_parent_path()) MIGVIS_RETURN_IF_ERROR(make_dirs(db.parent_path()));
    int rc = sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
      Status s = sqlite_status(raw, rc, "opening " + db.string());
      sqlite3_close(raw);
      return s;
    }
  }
  std::unique_ptr<Catalog> c(new Catalog(raw, db, mode));
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  sqlite3_extended_result_codes(raw, 0);
  const std::string where = db.string();

  // The first statement that touches the file tells us whether it is SQLite.
  auto version = [&]() -> Result<int> {
    MIGVIS_ASSIGN_OR_RETURN(Stmt st, Stmt::prepare(raw, "PRAGMA user_version"));
    MIGVIS_ASSIGN_OR_RETURN(bool row, st.step());
    return row ? static_cast<int>(sqlite3_column_int(st.get(), 0)) : 0;
  };
  if (mode == Mode::kReadWrite) {
    MIGVIS_RETURN_IF_ERROR(c->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                                   "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;")
                               .with_context(where));
    MIGVIS_RETURN_IF_ERROR(c->migrate().with_context(where));
  } else {
    MIGVIS_RETURN_IF_ERROR(c->exec("PRAGMA query_only=1").with_context(where));
    auto v = version();
    if (!v.ok()) return v.status().with_context(where);
    if (*v > latest_schema_version())
      return Status::FailedPrecondition(fmt::format(
          "{}: catalog schema version {} is newer than this migvis understands ({}); use a newer migvis", where, *v,
          latest_schema_version()));
    if (*v == 0)
      return Status::FailedPrecondition(
          fmt::format("{}: not a migvis catalog (SQLite file without the migvis schema, user_version 0)", where));
    c->schema_version_ = *v;
    sqlite3_set_authorizer(raw, read_only_authorizer, nullptr);
  }
  return c;
}

Catalog::~Catalog() { sqlite3_close(db_); }

int Catalog::schema_version() const { return schema_version_; }
int Catalog::latest_schema_version() { return schema::sql_migrations().empty() ? 0 : schema::sql_migrations().back().version; }

Status Catalog::exec(const std::string& sql) const {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);  // sqlite3_errmsg() still holds the message
  if (rc != SQLITE_OK) return sqlite_status(db_, rc, "executing SQL");
  return Status::Ok();
}

Status Catalog::migrate() {
  MIGVIS_ASSIGN_OR_RETURN(Stmt st, Stmt::prepare(db_, "PRAGMA user_version"));
  MIGVIS_ASSIGN_OR_RETURN(bool row, st.step());
  int v = row ? sqlite3_column_int(st.get(), 0) : 0;
  if (v > latest_schema_version())
    return Status::FailedPrecondition(
        fmt::format("catalog schema version {} is newer than this migvis understands ({}); use a newer migvis", v,
                    latest_schema_version()));
  for (const auto& m : schema::sql_migrations()) {
    if (m.version <= v) continue;
    Transaction tx(db_);
    MIGVIS_RETURN_IF_ERROR(tx.begin());
    MIGVIS_RETURN_IF_ERROR(exec(m.sql).with_context(std::string("migration ") + m.name));
    MIGVIS_RETURN_IF_ERROR(exec(fmt::format("PRAGMA user_version = {}", m.version)));
    MIGVIS_RETURN_IF_ERROR(tx.commit());
    v = m.version;
  }
  schema_version_ = v;
  return Status::Ok();
}

Status Catalog::require_writable(std::string_view what) const {
  if (mode_ != Mode::kReadWrite)
    return Status::FailedPrecondition(fmt::format("{}: catalog {} is open read-only", what, path_.string()));
  return Status::Ok();
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
  MIGVIS_ASSIGN_OR_RETURN(std::optional<JobRow> existing, job(res.job_id));
  JobRow row;
  if (existing) {
    row = *existing;
  } else {
    auto spec = schema::read_job_spec(dir);
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

Result<QueryResult> Catalog::query(const std::string& sql, const std::vector<Value>& params) const {
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
  while (true) {
    MIGVIS_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    std::vector<Value> r;
    r.reserve(n);
    for (int i = 0; i < n; ++i) r.push_back(st.value(i));
    out.rows.push_back(std::move(r));
  }
  return out;
}

}  // namespace migvis::catalog
