// Opening a catalog (WAL, busy timeout, read-only authorizer) and its schema
// migrations (schemas/sql/*.sql, in order, each in one transaction).
#include <sqlite3.h>

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


}  // namespace migvis::catalog
