// Rendering query results for people and programs: aligned text table, CSV
// (RFC 4180 quoting) and JSON (array of objects; NULL -> null).
#pragma once

#include <string>

#include "common/status.h"
#include "results/catalog.h"

namespace migvis::catalog {

enum class TextFormat { kTable, kCsv, kJson };
// "table" | "csv" | "json"; InvalidArgument otherwise.
Result<TextFormat> parse_text_format(const std::string& name);

std::string render(const QueryResult& r, TextFormat f);

// CSV field quoting: quoted when it holds , " CR or LF (quotes doubled).
std::string csv_field(const std::string& s);

}  // namespace migvis::catalog
