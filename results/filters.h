// The `migvis results runs --where ...` filter grammar, and the runs query.
//
//   where    := clause ( 'or' clause )*             (OR inside one --where;
//                                                     several --where are ANDed)
//   clause   := NAME op VALUE | NAME 'in' '(' VALUE (',' VALUE)* ')'
//   op       := '=' | '!=' | '<' | '<=' | '>' | '>='
//   NAME     := [A-Za-z_][A-Za-z0-9_.]*              (a job param, key field, seed,
//                                                     or one of status, job_id, sweep, host)
//   VALUE    := bare word without spaces, quotes, commas or parentheses
//             | 'single quoted' | "double quoted"  (a doubled quote inside is one quote)
// Keywords `or` and `in` are case-insensitive. A VALUE that parses as a number
// compares numerically (value_num), otherwise as text; < <= > >= need numbers.
// `name != v` matches jobs that HAVE the param with another value.
//
// Safety: values are always bound as SQL parameters and names only select
// among fixed SQL fragments or are bound too; no user text is ever pasted into
// SQL. Names are checked against the names present in the catalog.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "results/catalog.h"

namespace migvis::catalog {

enum class FilterOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn };

struct FilterClause {
  std::string name;
  FilterOp op = FilterOp::kEq;
  std::vector<std::string> values;  // one, or several for kIn
};

// One --where: clauses joined by OR.
struct Filter {
  std::vector<FilterClause> any_of;
};

// Parses one --where string. InvalidArgument naming the position on error.
Result<Filter> parse_filter(const std::string& text);

struct RunsRequest {
  std::string stage;                 // empty = all stages
  std::vector<std::string> where;    // each parsed by parse_filter, ANDed
  std::vector<std::string> metrics;  // scalar metric names to add as columns
};

// Runs the request on `cat`: columns job_id, stage, status, the key fields, the
// params named in filters, then the metrics (NULL where a job lacks one).
// InvalidArgument for bad filters or unknown param/metric names (the message
// lists the known ones).
Result<QueryResult> run_runs_query(const Catalog& cat, const RunsRequest& req);

}  // namespace migvis::catalog
