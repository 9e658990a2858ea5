#include "results/render.h"

#include <algorithm>

#include <fmt/format.h>

namespace migvis::catalog {

Result<TextFormat> parse_text_format(const std::string& name) {
  if (name == "table") return TextFormat::kTable;
  if (name == "csv") return TextFormat::kCsv;
  if (name == "json") return TextFormat::kJson;
  return Status::InvalidArgument(fmt::format("--format {}: expected table, csv or json", name));
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {
bool is_number(const Value& v) { return std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v); }

std::string cell_text(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return "NULL";
  if (auto* d = std::get_if<double>(&v)) return fmt::format("{:.6g}", *d);
  return value_to_string(v);
}
}  // namespace

std::string render(const QueryResult& r, TextFormat f) {
  std::string out;
  if (f == TextFormat::kCsv) {
    for (size_t c = 0; c < r.columns.size(); ++c) out += (c ? "," : "") + csv_field(r.columns[c]);
    out += "\n";
    for (auto& row : r.rows) {
      for (size_t c = 0; c < row.size(); ++c) out += (c ? "," : "") + csv_field(value_to_string(row[c]));
      out += "\n";
    }
    return out;
  }
  if (f == TextFormat::kJson) {
    json a = json::array();
    for (auto& row : r.rows) {
      json o = json::object();
      for (size_t c = 0; c < row.size() && c < r.columns.size(); ++c) {
        const Value& v = row[c];
        if (std::holds_alternative<std::monostate>(v)) o[r.columns[c]] = nullptr;
        else if (auto* n = std::get_if<int64_t>(&v)) o[r.columns[c]] = *n;
        else if (auto* d = std::get_if<double>(&v)) o[r.columns[c]] = *d;
        else o[r.columns[c]] = std::get<std::string>(v);
      }
      a.push_back(std::move(o));
    }
    // Object keys are sorted by nlohmann::json; keep column order via "columns".
    json doc = {{"columns", r.columns}, {"rows", a}};
    return doc.dump(2) + "\n";
  }
  std::vector<size_t> w(r.columns.size());
  for (size_t c = 0; c < r.columns.size(); ++c) w[c] = r.columns[c].size();
  for (auto& row : r.rows)
    for (size_t c = 0; c < row.size() && c < w.size(); ++c) w[c] = std::max(w[c], cell_text(row[c]).size());
  for (size_t c = 0; c < r.columns.size(); ++c) out += fmt::format("{}{:<{}}", c ? "  " : "", r.columns[c], w[c]);
  out += "\n";
  for (size_t c = 0; c < r.columns.size(); ++c) out += (c ? "  " : "") + std::string(w[c], '-');
  out += "\n";
  for (auto& row : r.rows) {
    for (size_t c = 0; c < row.size() && c < w.size(); ++c) {
      std::string t = cell_text(row[c]);
      out += c ? "  " : "";
      out += is_number(row[c]) ? fmt::format("{:>{}}", t, w[c]) : fmt::format("{:<{}}", t, w[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\n";
  }
  out += fmt::format("({} row{})\n", r.rows.size(), r.rows.size() == 1 ? "" : "s");
  return out;
}

}  // namespace migvis::catalog
