#include "results/filters.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/format.h>

namespace migvis::catalog {
namespace {

struct Lexer {
  const std::string& s;
  size_t i = 0;

  void skip_ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool at_end() {
    skip_ws();
    return i >= s.size();
  }
  Status error(const std::string& what) const {
    return Status::InvalidArgument(fmt::format("--where '{}': {} at column {}", s, what, i + 1));
  }
  Result<std::string> name() {
    skip_ws();
    size_t b = i;
    if (i < s.size() && (std::isalpha(static_cast<unsigned char>(s[i])) || s[i] == '_')) {
      ++i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.')) ++i;
    }
    if (b == i) return error("expected a parameter name (letters, digits, _ and .)");
    return s.substr(b, i - b);
  }
  // Case-insensitive keyword followed by a non-name character.
  bool keyword(const char* kw) {
    skip_ws();
    size_t n = std::char_traits<char>::length(kw);
    if (i + n > s.size()) return false;
    for (size_t k = 0; k < n; ++k)
      if (std::tolower(static_cast<unsigned char>(s[i + k])) != kw[k]) return false;
    if (i + n < s.size() && (std::isalnum(static_cast<unsigned char>(s[i + n])) || s[i + n] == '_')) return false;
    i += n;
    return true;
  }
  bool punct(char c) {
    skip_ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  Result<FilterOp> op() {
    skip_ws();
    auto two = s.substr(i, 2);
    if (two == "!=" || two == "<>") { i += 2; return FilterOp::kNe; }
    if (two == "<=") { i += 2; return FilterOp::kLe; }
    if (two == ">=") { i += 2; return FilterOp::kGe; }
    if (two == "==") { i += 2; return FilterOp::kEq; }
    if (i < s.size()) {
      switch (s[i]) {
        case '=': ++i; return FilterOp::kEq;
        case '<': ++i; return FilterOp::kLt;
        case '>': ++i; return FilterOp::kGt;
        default: break;
      }
    }
    if (keyword("in")) return FilterOp::kIn;
    return error("expected one of = != < <= > >= in");
  }
  Result<std::string> value() {
    skip_ws();
    if (i >= s.size()) return error("expected a value");
    if (s[i] == '\'' || s[i] == '"') {
      char q = s[i++];
      std::string v;
      while (true) {
        if (i >= s.size()) return error(fmt::format("unterminated {} quote", q));
        if (s[i] == q) {
          if (i + 1 < s.size() && s[i + 1] == q) {  // doubled quote = a literal quote
            v += q;
            i += 2;
            continue;
          }
          ++i;
          return v;
        }
        v += s[i++];
      }
    }
    size_t b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != ',' && s[i] != '(' &&
           s[i] != ')' && s[i] != '\'' && s[i] != '"')
      ++i;
    if (b == i) return error("expected a value");
    return s.substr(b, i - b);
  }
};

bool as_number(const std::string& v, double* out) {
  if (v.empty()) return false;
  char* e = nullptr;
  double d = std::strtod(v.c_str(), &e);
  if (e != v.c_str() + v.size() || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

const char* sql_op(FilterOp op) {
  switch (op) {
    case FilterOp::kEq: return "=";
    case FilterOp::kNe: return "!=";
    case FilterOp::kLt: return "<";
    case FilterOp::kLe: return "<=";
    case FilterOp::kGt: return ">";
    case FilterOp::kGe: return ">=";
    case FilterOp::kIn: return "=";
  }
  return "=";
}

// Job columns a filter may name; the SQL fragment comes from this fixed table.
const std::map<std::string, std::string>& column_names() {
  static const std::map<std::string, std::string> kCols = {
      {"status", "j.status"}, {"job_id", "j.job_id"}, {"sweep", "j.sweep"}, {"host", "j.host"}};
  return kCols;
}

Result<std::set<std::string>> distinct(const Catalog& cat, const std::string& sql, const std::vector<Value>& params) {
  MIGVIS_ASSIGN_OR_RETURN(QueryResult r, cat.query(sql, params));
  std::set<std::string> out;
  for (auto& row : r.rows) out.insert(value_to_string(row[0]));
  return out;
}

std::string list_of(const std::set<std::string>& s) {
  std::string out;
  for (auto& x : s) out += (out.empty() ? "" : ", ") + x;
  return out.empty() ? "(none)" : out;
}

}  // namespace

Result<Filter> parse_filter(const std::string& text) {
  Lexer lx{text};
  Filter f;
  if (lx.at_end()) return lx.error("empty filter");
  do {
    FilterClause c;
    MIGVIS_ASSIGN_OR_RETURN(c.name, lx.name());
    MIGVIS_ASSIGN_OR_RETURN(c.op, lx.op());
    if (c.op == FilterOp::kIn) {
      if (!lx.punct('(')) return lx.error("expected '(' after in");
      do {
        MIGVIS_ASSIGN_OR_RETURN(std::string v, lx.value());
        c.values.push_back(std::move(v));
      } while (lx.punct(','));
      if (!lx.punct(')')) return lx.error("expected ',' or ')' in the in-list");
    } else {
      MIGVIS_ASSIGN_OR_RETURN(std::string v, lx.value());
      double d = 0;
      if (c.op != FilterOp::kEq && c.op != FilterOp::kNe && !as_number(v, &d))
        return lx.error(fmt::format("'{}' {} needs a number, got '{}'", c.name, sql_op(c.op), v));
      c.values.push_back(std::move(v));
    }
    f.any_of.push_back(std::move(c));
    if (lx.at_end()) break;
    if (!lx.keyword("or")) return lx.error("expected 'or' or the end of the filter");
  } while (true);
  return f;
}

Result<QueryResult> run_runs_query(const Catalog& cat, const RunsRequest& req) {
  std::vector<Filter> filters;
  for (const auto& w : req.where) {
    MIGVIS_ASSIGN_OR_RETURN(Filter f, parse_filter(w));
    filters.push_back(std::move(f));
  }
  std::vector<Value> params;
  std::string where = "WHERE 1";
  if (!req.stage.empty()) {
    MIGVIS_ASSIGN_OR_RETURN(auto stages, distinct(cat, "SELECT DISTINCT stage FROM jobs", {}));
    if (!stages.count(req.stage))
      return Status::InvalidArgument(
          fmt::format("--stage {}: no jobs of that stage in the catalog; stages present: {}", req.stage, list_of(stages)));
    where += " AND j.stage = ?";
    params.emplace_back(req.stage);
  }
  MIGVIS_ASSIGN_OR_RETURN(
      auto known,
      distinct(cat,
               "SELECT DISTINCT p.name FROM job_params p JOIN jobs j ON j.job_id = p.job_id WHERE ? = '' OR j.stage = ?",
               {req.stage, req.stage}));
  std::vector<std::string> shown_params;
  for (const auto& f : filters) {
    std::string ors;
    for (const auto& c : f.any_of) {
      auto col = column_names().find(c.name);
      if (col == column_names().end() && !known.count(c.name))
        return Status::InvalidArgument(fmt::format("--where: unknown name '{}'{}; known: {}, {}", c.name,
                                                   req.stage.empty() ? "" : " for stage " + req.stage, list_of(known),
                                                   "status, job_id, sweep, host"));
      std::string clause;
      if (col != column_names().end()) {
        if (c.op != FilterOp::kEq && c.op != FilterOp::kNe && c.op != FilterOp::kIn)
          return Status::InvalidArgument(fmt::format("--where: {} only supports =, != and in", c.name));
        clause = col->second + (c.op == FilterOp::kIn ? " IN (" : std::string(" ") + sql_op(c.op) + " ");
        for (size_t k = 0; k < c.values.size(); ++k) {
          clause += k ? ", ?" : "?";
          params.emplace_back(c.values[k]);
        }
        if (c.op == FilterOp::kIn) clause += ")";
      } else {
        if (std::find(shown_params.begin(), shown_params.end(), c.name) == shown_params.end())
          shown_params.push_back(c.name);
        clause = "EXISTS (SELECT 1 FROM job_params p WHERE p.job_id = j.job_id AND p.name = ? AND (";
        params.emplace_back(c.name);
        for (size_t k = 0; k < c.values.size(); ++k) {
          double d = 0;
          bool num = as_number(c.values[k], &d);
          if (k) clause += " OR ";
          clause += std::string(num ? "p.value_num " : "p.value_text ") + sql_op(c.op) + " ?";
          params.emplace_back(num ? Value(d) : Value(c.values[k]));
        }
        clause += "))";
      }
      ors += (ors.empty() ? "" : " OR ") + clause;
    }
    where += " AND (" + ors + ")";
  }
  if (!req.metrics.empty()) {
    MIGVIS_ASSIGN_OR_RETURN(auto metric_names,
                            distinct(cat, "SELECT DISTINCT name FROM metrics WHERE step IS NULL", {}));
    for (const auto& m : req.metrics)
      if (!metric_names.count(m))
        return Status::InvalidArgument(
            fmt::format("--metrics: no scalar metric named '{}' in the catalog; known: {}", m, list_of(metric_names)));
  }
  // Metric columns: one correlated subquery each; names bound, never pasted.
  std::string select = "SELECT j.job_id, j.stage, j.status, j.key, j.params";
  std::vector<Value> select_params;
  for (const auto& m : req.metrics) {
    select += ", (SELECT m.value FROM metrics m WHERE m.job_id = j.job_id AND m.name = ? AND m.step IS NULL)";
    select_params.emplace_back(m);
  }
  select_params.insert(select_params.end(), params.begin(), params.end());
  MIGVIS_ASSIGN_OR_RETURN(QueryResult raw,
                          cat.query(select + " FROM jobs j " + where + " ORDER BY j.stage, j.key, j.job_id",
                                    select_params));

  // Reshape: key fields and filtered params become columns.
  std::set<std::string> key_names;
  std::vector<json> keys, ps;
  for (auto& row : raw.rows) {
    json k = json::parse(value_to_string(row[3]), nullptr, false);
    json p = json::parse(value_to_string(row[4]), nullptr, false);
    if (!k.is_object()) k = json::object();
    if (!p.is_object()) p = json::object();
    for (auto it = k.begin(); it != k.end(); ++it) key_names.insert(it.key());
    keys.push_back(std::move(k));
    ps.push_back(std::move(p));
  }
  std::vector<std::string> param_cols;
  for (auto& n : shown_params)
    if (!key_names.count(n)) param_cols.push_back(n);
  QueryResult out;
  out.columns = {"job_id", "stage", "status"};
  for (auto& k : key_names) out.columns.push_back(k);
  for (auto& p : param_cols) out.columns.push_back(p);
  for (auto& m : req.metrics) out.columns.push_back(m);
  auto to_value = [](const json& v) -> Value {
    if (v.is_null()) return std::monostate{};
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) return v.get<std::string>();
    return v.dump();
  };
  for (size_t r = 0; r < raw.rows.size(); ++r) {
    std::vector<Value> row = {raw.rows[r][0], raw.rows[r][1], raw.rows[r][2]};
    for (auto& k : key_names) row.push_back(keys[r].contains(k) ? to_value(keys[r][k]) : Value());
    for (auto& p : param_cols) {
      // Dotted names address nested params.
      json cur = ps[r];
      size_t b = 0;
      bool found = true;
      while (found) {
        size_t e = p.find('.', b);
        std::string part = p.substr(b, e == std::string::npos ? std::string::npos : e - b);
        if (!cur.is_object() || !cur.contains(part)) found = false;
        else cur = cur[part];
        if (e == std::string::npos) break;
        b = e + 1;
      }
      row.push_back(found ? to_value(cur) : Value());
    }
    for (size_t m = 0; m < req.metrics.size(); ++m) row.push_back(raw.rows[r][5 + m]);
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace migvis::catalog
