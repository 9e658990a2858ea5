// The paper's four tables (shared/MIGVIS_METHOD.md "Tables to regenerate"),
// rebuilt from whatever the catalog holds, for every animal side by side.
// Metric names: notes/CONVENTIONS.md; rules: schemas/tables.md.
//
// Which jobs make a cell. A job's *table identity* is its resolved params and
// those of its whole upstream chain (jobs.upstream, walked recursively: the
// dataset's name and params, the VAE's model and params, the diffusion model's,
// the critic's, ...), without the replicate seed (the `seed` column; a data
// job's `seed` param is kept: it defines the dataset). Animal and session are
// not identity: the animal is the column group and sessions are aggregated.
// A cell is the mean and sample std (n-1; n=1 shows the mean alone) of one
// metric over the done jobs of ONE identity and animal - every session (except
// `pooled`) x every seed - and shows n. Cells never average two identities: when
// several identities fit a row (model `migvis` with two w_tc, or two datasets
// under one root), each gets its own row, labelled by the entries that differ
// ("migvis (w_tc=0.1)", "group 1 (model=migvis_unsup)", "migvis (dataset=paper)").
// VAEs on the pooled sessions (key.session = pooled) are rows of their own,
// labelled "pooled" when the table also holds per-session ones;
// TableOptions::per_session splits rows by session instead of aggregating.
// Notes list, per row and animal, the jobs (by id, seed and session) that
// failed, are not finished, lack a metric or gave a non-finite value.
//   1 reconstruction + disentanglement: rows models (vae, beta_vae, tcvae,
//     migvis, migvis_unsup), vae metrics test_r2 ... factorvae_factors_group, sap, factorvae, pose_test_r2, pose_test_rmse;
//   2 group selectivity: rows groups of the eval jobs, columns the factors the
//     eval jobs report, cells transfer.g<g>.<factor> (else nchange.*, else
//     change.*); the dominant factor per row is marked; then, when reported, the
//     pixel judge's rows "group g (pixel)" (pixel.transfer.g<g>.<factor>), each
//     judge's read-out score (judge.<factor>, pixel.judge.<factor>) and their
//     agreement (agreement.<factor>); a cell whose judge cannot read the factor
//     ([pixel.]unread.<factor>) shows "unread" and is not missing;
//   3 guidance sweep: rows gammas; guided_change.gamma<γ>,
//     guided_transfer.gamma<γ>, quality.gamma<γ> of the eval jobs (not the
//     critic's own mi.gamma<γ>: circular);
//   4 ablations: model=migvis vae jobs with one of w_tc, w_kl, w_guid,
//     group_rank changed and every other identity entry at its base value (the
//     most common value among the model=migvis identities; ties: the middle
//     value), rows `w_tc = v`; a notes line gives the base. Table 1's columns.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "results/catalog.h"

namespace migvis::catalog {

struct Cell {
  int n = 0;         // finite values averaged; 0 = missing
  int n_failed = 0;  // jobs of the cell that failed, or gave a non-finite value
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

struct TableOptions {
  bool per_session = false;  // one row per session instead of aggregating sessions
};

// Reads the catalog and builds the four tables (always four, possibly empty).
Result<std::vector<PaperTable>> build_paper_tables(const Catalog& cat, const TableOptions& opts = {});

enum class TableFormat { kMarkdown, kLatex, kCsv, kHtml };
// "md" | "latex" | "csv" (html is for the report).
Result<TableFormat> parse_table_format(const std::string& name);
const char* table_file_extension(TableFormat f);  // "md", "tex", "csv", "html"

// One table in the format. CSV is long-form: table,row,animal,column,mean,std,n,n_failed.
std::string render_table(const PaperTable& t, TableFormat f);

// Escapes <, >, & and " for HTML text and attribute values.
std::string html_escape(const std::string& s);

// "0.512 ± 0.013 (n=3)" (plain text), "0.512 (n=1)", "—" when missing, or the
// cell's text ("unread").
std::string format_cell(const Cell& c);

}  // namespace migvis::catalog
