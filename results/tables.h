// The paper's four tables (shared/MIGVIS_METHOD.md "Tables to regenerate"),
// rebuilt from whatever the catalog holds, for every animal side by side, as
// mean +- std over seeds. Metric names: notes/CONVENTIONS.md.
//
// Which jobs make a cell: done jobs of the stage that match the cell (e.g. vae
// jobs with params.model = tcvae and key.animal = a2) are grouped by their
// configuration (key + params without `seed`); the cell uses the group with the
// most jobs (ties: the smallest configuration text, so output is stable), and a
// note says when other configurations were ignored. Statistics are over that
// group's jobs that have the metric: mean and sample std (n-1; n=1 shows the
// mean alone).
//   1 reconstruction + disentanglement: rows models (vae, beta_vae, tcvae,
//     migvis, migvis_unsup), vae metrics test_r2 ... sap_group;
//   2 group selectivity: rows groups of the eval jobs, columns factors, cells
//     change.g<g>.<factor>; the dominant factor per row is marked;
//   3 guidance sweep: rows gammas; mi.gamma<γ>, guided_change.gamma<γ>,
//     quality.gamma<γ> of the eval jobs;
//   4 ablations: rows `w_tc = v`, `w_kl = v`, `w_guid = v`, `group_rank = v` of
//     model=migvis vae jobs (a parameter with one value is not an ablation and
//     is skipped with a note); table 1's columns.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "results/catalog.h"

namespace migvis::catalog {

struct Cell {
  int n = 0;  // 0 = missing
  double mean = 0;
  double std = 0;
  std::string text;  // shown instead of a number when set (n = 0), e.g. "unread"
};

struct PaperTable {
  std::string id;     // file stem, e.g. "table1_reconstruction"
  std::string title;  // "Table 1: Reconstruction and disentanglement"
  std::string caption;
  std::string row_header;                // e.g. "model"
  std::vector<std::string> animals;      // column groups
  std::vector<std::string> rows;         // row labels
  std::vector<std::string> columns;      // column labels within each animal
  std::vector<std::vector<std::vector<Cell>>> cells;  // [row][animal][column]
  std::vector<std::vector<int>> marked;  // [row][animal] column to mark (dominant), -1 none
  std::vector<std::string> missing;      // human-readable missing cells
  std::vector<std::string> notes;
};

// Reads the catalog and builds the four tables (always four, possibly empty).
Result<std::vector<PaperTable>> build_paper_tables(const Catalog& cat);

enum class TableFormat { kMarkdown, kLatex, kCsv, kHtml };
// "md" | "latex" | "csv" (html is for the report).
Result<TableFormat> parse_table_format(const std::string& name);
const char* table_file_extension(TableFormat f);  // "md", "tex", "csv", "html"

// One table in the format. CSV is long-form: row,animal,column,mean,std,n.
std::string render_table(const PaperTable& t, TableFormat f);

// Escapes <, >, & and " for HTML text and attribute values.
std::string html_escape(const std::string& s);

// "0.512 ± 0.013" (plain text), "—" when missing.
std::string format_cell(const Cell& c);

}  // namespace migvis::catalog
