// The SQLite RAII layer of the catalog (internal to results/): result-code ->
// Status mapping (one policy per code), prepared statements finalized by their
// destructor, transactions rolled back unless committed, and the read-only
// authorizer of `results query`. Catalog::open and the migrations are in
// sqlite.cc; queries in catalog.cc; ingest in ingest.cc.
#pragma once

#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "results/catalog.h"
#include "schemas/job_spec.h"

namespace migvis::catalog::internal {

using json = nlohmann::json;

inline constexpr int kBusyTimeoutMs = 10000;

// Maps an SQLite result code to our Status codes (one policy per code).
inline Status sqlite_status(sqlite3* db, int rc, std::string_view what) {
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
inline int read_only_authorizer(void*, int action, const char*, const char*, const char*, const char*) {
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


// --- values and JSON columns shared by queries and ingest --------------------

inline std::string dump(const json& j) { return j.dump(); }  // objects are std::map: keys sorted

inline Result<json> parse_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::DataLoss(fmt::format("catalog column {} holds invalid JSON: {}", what, text));
  return j;
}

inline std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const char* b = s.c_str();
  char* e = nullptr;
  double d = std::strtod(b, &e);
  if (e != b + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

// Flattens objects into dotted names; arrays and scalars are leaves.
inline void flatten(const json& v, const std::string& prefix, std::vector<std::pair<std::string, json>>* out) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  if (!prefix.empty()) out->emplace_back(prefix, v);
}

// (value_text, value_num) of a parameter leaf.
inline std::pair<Value, Value> param_values(const json& v) {
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

inline std::string now_iso() { return schema::utc_now_iso8601(); }

inline const char* kJobColumns =
    "job_id, hash, sweep, stage, key, params, seed, status, attempts, host, dir, started_at, finished_at, "
    "wall_s, provenance, upstream, note";

}  // namespace migvis::catalog::internal
