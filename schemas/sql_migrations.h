// The catalog's SQL migrations (schemas/sql/NNN_*.sql), embedded into the
// binary at build time by schemas/CMakeLists.txt (generated
// migvis_sql_migrations.cc), so `migvis` needs no files besides itself.
// Migration N brings a database from PRAGMA user_version N-1 to N.
#pragma once

#include <vector>

namespace migvis::schema {

struct SqlMigration {
  int version;       // = NNN of the file name; consecutive from 1
  const char* name;  // file name, e.g. "001_init.sql"
  const char* sql;   // the file's text
};

// All migrations in version order.
const std::vector<SqlMigration>& sql_migrations();

}  // namespace migvis::schema
