#include "orchestrator/data/csv.h"

#include <fmt/format.h>

namespace migvis::data {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

Result<CsvTable> parse_csv(const std::string& text, const std::string& file) {
  CsvTable t;
  t.file = file;
  std::vector<std::vector<std::string>> records;
  std::vector<int> lines;
  std::vector<std::string> rec;
  std::string field;
  bool in_quotes = false, field_started = false;
  int line = 1, rec_line = 1;
  size_t i = 0;
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 BOM
  auto end_record = [&] {
    rec.push_back(field);
    field.clear();
    field_started = false;
    if (!(rec.size() == 1 && rec[0].empty())) {  // skip blank lines
      records.push_back(rec);
      lines.push_back(rec_line);
    }
    rec.clear();
  };
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') { field += '"'; ++i; }
        else in_quotes = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) { in_quotes = true; field_started = true; }
    else if (c == ',') { rec.push_back(field); field.clear(); field_started = false; }
    else if (c == '\r') {}
    else if (c == '\n') { end_record(); ++line; rec_line = line; }
    else { field += c; field_started = true; }
  }
  if (in_quotes) return Status::InvalidArgument(fmt::format("{}:{}: unterminated quoted field", file, rec_line));
  if (!field.empty() || !rec.empty()) end_record();
  if (records.empty()) return Status::InvalidArgument(file + ": empty CSV (expected a header row)");
  t.header = records[0];
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != t.header.size())
      return Status::InvalidArgument(fmt::format("{}:{}: expected {} fields (as in the header), found {}", file, lines[r],
                                                 t.header.size(), records[r].size()));
    t.rows.push_back(std::move(records[r]));
    t.line_of_row.push_back(lines[r]);
  }
  return t;
}

Result<CsvTable> read_csv(const fs::path& path) {
  MIGVIS_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_csv(text, path.string());
}

}  // namespace migvis::data
