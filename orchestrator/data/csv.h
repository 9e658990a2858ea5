// A small RFC-4180 CSV reader for stimulus-set tables (quoted fields, embedded
// commas/quotes/newlines, CRLF). The first row is the header.
#pragma once

#include <string>
#include <vector>

#include "common/files.h"
#include "common/status.h"

namespace migvis::data {

struct CsvTable {
  std::string file;                               // for messages
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;     // every row has header.size() fields
  std::vector<int> line_of_row;                   // 1-based source line of each row
  int column(const std::string& name) const;      // index or -1
};

// InvalidArgument naming file and line for a row with the wrong field count or
// an unterminated quote; NotFound if the file is missing.
Result<CsvTable> read_csv(const fs::path& path);
Result<CsvTable> parse_csv(const std::string& text, const std::string& file);

}  // namespace migvis::data
