#include "results/tables.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/results/demo_catalog.h"
#include "tests/test_util.h"

namespace migvis::catalog {
namespace {

using migvis::testing::TempDir;

void expect_golden(const std::string& text, const std::string& name) {
  fs::path golden = fs::path(MIGVIS_SOURCE_DIR) / "tests/results/golden" / name;
  if (std::getenv("MIGVIS_UPDATE_GOLDEN")) {
    ASSERT_TRUE(write_file_atomic(golden, text).ok());
  }
  auto want = read_file(golden);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  EXPECT_EQ(text, *want) << "regenerate with MIGVIS_UPDATE_GOLDEN=1 after checking the diff";
}

using Filler = migvis::Status (*)(Catalog&);

std::vector<PaperTable> build(TempDir& tmp, Filler fill, const TableOptions& o = {}) {
  auto c = Catalog::open(tmp / "migvis.db", Catalog::Mode::kReadWrite);
  EXPECT_TRUE(c.ok());
  if (!c.ok()) return {};
  Status st = fill(**c);
  EXPECT_TRUE(st.ok()) << st.to_string();
  auto t = build_paper_tables(**c, o);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : std::vector<PaperTable>{};
}

size_t column_of(const PaperTable& t, const std::string& label) {
  auto it = std::find(t.columns.begin(), t.columns.end(), label);
  EXPECT_NE(it, t.columns.end()) << "no column " << label;
  return static_cast<size_t>(it - t.columns.begin());
}

size_t row_of(const PaperTable& t, const std::string& label) {
  auto it = std::find(t.rows.begin(), t.rows.end(), label);
  EXPECT_NE(it, t.rows.end()) << "no row \"" << label << "\" in " << t.id;
  return static_cast<size_t>(it - t.rows.begin());
}

bool has_note_with(const PaperTable& t, const std::string& a, const std::string& b) {
  for (auto& n : t.notes)
    if (n.find(a) != std::string::npos && n.find(b) != std::string::npos) return true;
  return false;
}

// ---- The original demo catalog: one configuration per model, pooled sessions.

class TablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::open(tmp_ / "migvis.db", Catalog::Mode::kReadWrite);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(migvis::testing::fill_demo_catalog(**c, tmp_.path()).ok());
    auto t = build_paper_tables(**c);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    tables_ = std::move(t).value();
  }
  TempDir tmp_;
  std::vector<PaperTable> tables_;
};

TEST_F(TablesTest, CellsAreMeanAndStdOverSeeds) {
  ASSERT_EQ(tables_.size(), 4u);
  const PaperTable& t1 = tables_[0];
  EXPECT_EQ(t1.animals, (std::vector<std::string>{"a1", "a2"}));
  // migvis has three configurations (w_tc 0, 1e-6, 1e-3): three rows, none picked.
  EXPECT_EQ(t1.rows, (std::vector<std::string>{"vae", "beta_vae", "tcvae", "migvis (w_tc=0)", "migvis (w_tc=1e-06)",
                                               "migvis (w_tc=0.001)", "migvis_unsup"}));
  // vae, a1, test_r2 = 0.1 + 0 + 0.01*seed over seeds 1..3; the failed seed-9 job is not averaged but counted.
  const Cell& c = t1.cells[0][0][0];
  EXPECT_EQ(c.n, 3);
  EXPECT_EQ(c.n_failed, 1);
  EXPECT_NEAR(c.mean, 0.12, 1e-12);
  EXPECT_NEAR(c.std, 0.01, 1e-12);
  EXPECT_TRUE(has_note_with(t1, "a1 / vae: job ", "(seed 9, session pooled) failed"));
  EXPECT_EQ(t1.cells[4][1][0].n, 3);
  EXPECT_NEAR(t1.cells[4][1][0].mean, 0.1 + 0.15 + 0.02 + 0.02, 1e-12);
  EXPECT_EQ(t1.cells[3][1][0].n, 2);  // a2 w_tc = 0: seeds 1, 2
  // a2 has no tcvae: missing and listed; beta_vae has no pose read-out.
  EXPECT_EQ(t1.cells[2][1][0].n, 0);
  EXPECT_NE(std::find(t1.missing.begin(), t1.missing.end(), "a2 / tcvae: no done jobs"), t1.missing.end());
  EXPECT_TRUE(std::any_of(t1.missing.begin(), t1.missing.end(), [](const std::string& m) {
    return m.rfind("a1 / beta_vae: no ", 0) == 0 && m.find("pose_test_r2, pose_test_rmse") != std::string::npos;
  })) << "beta_vae's missing pose read-out is listed";
  const size_t pose = column_of(t1, "pose R²");
  EXPECT_EQ(t1.cells[0][0][pose].n, 3);
  // Table 2 uses transfer.* over change.*: group g moves factor g-1 toward the
  // target most (marked), though it changes factor g most.
  const PaperTable& t2 = tables_[1];
  ASSERT_EQ(t2.rows.size(), 5u);  // groups 1-4, then the judge's read-out score
  for (int g = 0; g < 4; ++g) EXPECT_EQ(t2.marked[g][0], g) << "group " << g + 1;
  EXPECT_NEAR(t2.cells[0][0][0].mean, 0.6 + 0.03, 1e-12);  // transfer.g1.pose on a1, seeds 1, 2
  EXPECT_EQ(t2.rows[4], "read-out score (CNN judge)");
  EXPECT_NEAR(t2.cells[4][0][1].mean, 0.8, 1e-12);  // judge.category on a1
  EXPECT_EQ(t2.marked[4][0], -1);                   // read-out scores mark nothing
  // a2's size: the judge cannot read it, so its cells say so, not a number,
  // and are not listed as missing.
  ASSERT_EQ(t2.columns.back(), "size");
  EXPECT_EQ(t2.cells[0][1][4].text, "unread");
  EXPECT_EQ(t2.cells[0][1][4].n, 0);
  EXPECT_EQ(format_cell(t2.cells[0][1][4]), "unread");
  EXPECT_TRUE(t2.cells[0][0][4].text.empty());
  EXPECT_EQ(t2.cells[0][0][4].n, 2);
  EXPECT_NEAR(t2.cells[4][1][4].mean, 0.05, 1e-12);  // its read-out score is still shown
  for (auto& m : t2.missing) EXPECT_EQ(m.find("size"), std::string::npos) << m;
  EXPECT_NE(render_table(t2, TableFormat::kMarkdown).find(" | unread |"), std::string::npos);
  EXPECT_NE(render_table(t2, TableFormat::kLatex).find(" & unread \\\\"), std::string::npos);
  // Table 3 claims no selectivity from the guiding critic's own MI.
  EXPECT_EQ(tables_[2].columns, (std::vector<std::string>{"guided change", "guided transfer", "quality"}));
  EXPECT_EQ(tables_[2].rows, (std::vector<std::string>{"γ = 1", "γ = 10", "γ = 100"}));
  // Table 4: only w_tc varies, one configuration per value: the base is the middle one.
  EXPECT_EQ(tables_[3].rows, (std::vector<std::string>{"w_tc = 0", "w_tc = 1e-06 (base)", "w_tc = 0.001"}));
  EXPECT_EQ(tables_[3].cells[2][1][0].n, 0);  // a2 has no w_tc = 1e-3
}

TEST_F(TablesTest, CsvIsLongFormWithNAndFailures) {
  std::string csv = render_table(tables_[0], TableFormat::kCsv);
  EXPECT_EQ(csv.rfind("table,row,animal,column,mean,std,n,n_failed\n", 0), 0u);
  EXPECT_NE(csv.find("table1_reconstruction,vae,a1,R²,0.12"), std::string::npos) << csv.substr(0, 300);
  EXPECT_NE(csv.find(",3,1\ntable1_reconstruction,vae,a1,MSE,"), std::string::npos) << csv.substr(0, 300);
  // rows x animals x columns lines + header
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 7 * 2 * static_cast<long>(tables_[0].columns.size()));
}

// A factor the eval jobs never report (dropped at eval as constant) is no
// column of table 2; the demo reports all five, so all five are columns.
TEST_F(TablesTest, Table2ColumnsAreTheReportedFactors) {
  EXPECT_EQ(tables_[1].columns, (std::vector<std::string>{"pose", "category", "identity", "position", "size"}));
  TempDir tmp;
  auto c = Catalog::open(tmp / "migvis.db", Catalog::Mode::kReadWrite);
  ASSERT_TRUE(c.ok());
  JobRow e;
  e.job_id = "00000000000000e1";
  e.hash = e.job_id;
  e.sweep = "t";
  e.stage = "eval";
  e.key = {{"animal", "a1"}, {"session", "s1"}};
  e.status = JobStatus::kDone;
  ASSERT_TRUE((*c)->upsert_jobs({e}).ok());
  // identity is reported only as unread by the pixel judge: still a column.
  for (auto name : {"transfer.g1.pose", "transfer.g1.category", "judge.pose", "judge.category", "pixel.unread.identity"})
    ASSERT_TRUE((*c)->query("INSERT INTO metrics (job_id, name, step, value) VALUES (?,?,?,?)",
                            {e.job_id, std::string(name), Value(), 0.5}).ok());
  auto t = build_paper_tables(**c);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)[1].columns, (std::vector<std::string>{"pose", "category", "identity"}));
  const std::string md = render_table((*t)[1], TableFormat::kMarkdown);
  EXPECT_EQ(md.find("a1 size"), std::string::npos) << md;
  EXPECT_EQ(md.find("a1 position"), std::string::npos) << md;
}

TEST(TablesEmptyTest, EmptyCatalogSaysWhatIsMissing) {
  TempDir tmp;
  auto c = Catalog::open(tmp / "migvis.db", Catalog::Mode::kReadWrite);
  ASSERT_TRUE(c.ok());
  auto t = build_paper_tables(**c);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 4u);
  for (auto& table : *t) {
    ASSERT_FALSE(table.missing.empty());
    EXPECT_EQ(table.missing[0], "the catalog holds no done vae or eval jobs with metrics");
    EXPECT_NE(render_table(table, TableFormat::kMarkdown).find("Missing:"), std::string::npos);
  }
}

TEST(TablesFormatTest, CellsShowN) {
  EXPECT_EQ(format_cell(Cell{3, 0, 0.81, 0.02}), "0.810 ± 0.020 (n=3)");
  EXPECT_EQ(format_cell(Cell{1, 2, 0.81, 0}), "0.810 (n=1)");
  EXPECT_EQ(format_cell(Cell{0, 2, 0, 0}), "—");
  EXPECT_EQ(format_cell(Cell{0, 0, 0, 0, "unread"}), "unread");
}

// ---- A catalog shaped like a real sweep: upstream chains, sessions, pooled.

class ChainTablesTest : public ::testing::Test {
 protected:
  void SetUp() override { tables_ = build(tmp_, migvis::testing::fill_chain_catalog); }
  TempDir tmp_;
  std::vector<PaperTable> tables_;
};

TEST_F(ChainTablesTest, Table1AggregatesSessionsAndKeepsPooledApart) {
  ASSERT_EQ(tables_.size(), 4u);
  const PaperTable& t1 = tables_[0];
  // vae a1: sessions s1..s3, seed 1 each: n = 3, test_r2 = 0.1 + 0.01 s + 0.001.
  size_t vae = row_of(t1, "vae");
  EXPECT_EQ(t1.cells[vae][0][0].n, 3);
  EXPECT_NEAR(t1.cells[vae][0][0].mean, 0.1 + 0.02 + 0.001, 1e-12);
  EXPECT_NEAR(t1.cells[vae][0][0].std, 0.01, 1e-12);
  EXPECT_EQ(t1.cells[vae][0][0].n_failed, 1);  // the failed seed-2 job on s2
  EXPECT_EQ(t1.cells[vae][1][0].n_failed, 0);
  EXPECT_TRUE(has_note_with(t1, "a1 / vae: job ", "(seed 2, session s2) failed: loss is NaN at epoch 3"));
  // The base migvis configuration over sessions, and the pooled VAEs on their own row.
  size_t base = row_of(t1, "migvis (w_kl=1, w_tc=1e-06)");
  size_t pooled = row_of(t1, "migvis (w_kl=1, w_tc=1e-06, pooled)");
  EXPECT_EQ(t1.cells[base][1][0].n, 3);
  EXPECT_NEAR(t1.cells[base][1][0].mean, 0.1 + 0.05 + 0.02 + 0.001 + 0.5, 1e-12);
  EXPECT_EQ(t1.cells[pooled][1][0].n, 2);
  EXPECT_NEAR(t1.cells[pooled][1][0].mean, 0.1 + 0.05 + 0.0015 + 0.5 + 0.3, 1e-12);
  // a2's NaN sap on s3: n = 2, counted as failed, named in the notes.
  const size_t sap = column_of(t1, "SAP (ref.)");
  EXPECT_EQ(t1.cells[base][1][sap].n, 2);
  EXPECT_EQ(t1.cells[base][1][sap].n_failed, 1);
  EXPECT_TRUE(has_note_with(t1, "a2 / migvis (w_kl=1, w_tc=1e-06) / SAP (ref.): non-finite value from job ", "session s3"));
  // The changed-together configuration is a row of its own.
  size_t combo = row_of(t1, "migvis (w_kl=0.5, w_tc=0.001)");
  EXPECT_EQ(t1.cells[combo][0][0].n, 1);
  EXPECT_EQ(t1.cells[combo][1][0].n, 0);
}

TEST_F(ChainTablesTest, PerSessionSplitsRows) {
  TempDir tmp;
  auto t = build(tmp, migvis::testing::fill_chain_catalog, TableOptions{true});
  ASSERT_EQ(t.size(), 4u);
  size_t s2 = row_of(t[0], "vae (session s2)");
  EXPECT_EQ(t[0].cells[s2][0][0].n, 1);
  EXPECT_NEAR(t[0].cells[s2][0][0].mean, 0.1 + 0.02 + 0.001, 1e-12);
  EXPECT_EQ(t[0].cells[s2][0][0].n_failed, 1);
  row_of(t[0], "migvis (w_kl=1, w_tc=1e-06, pooled)");
  EXPECT_EQ(std::count(t[0].rows.begin(), t[0].rows.end(), "vae"), 0);
}

TEST_F(ChainTablesTest, EvalCellsNeverMixModels) {
  const PaperTable& t2 = tables_[1];
  EXPECT_EQ(t2.rows, (std::vector<std::string>{
                         "group 1 (model=migvis)", "group 2 (model=migvis)", "group 1 (pixel, model=migvis)",
                         "group 2 (pixel, model=migvis)", "read-out score (CNN judge, model=migvis)",
                         "read-out score (pixel judge, model=migvis)", "judge agreement (r, model=migvis)",
                         "group 1 (model=migvis_unsup)", "group 2 (model=migvis_unsup)"}));
  // transfer.g1.pose: diag + off (0.02 s) over sessions s1, s2.
  EXPECT_EQ(t2.cells[0][0][0].n, 2);
  EXPECT_NEAR(t2.cells[0][0][0].mean, 0.6 + 0.03, 1e-12);
  const size_t unsup = row_of(t2, "group 1 (model=migvis_unsup)");
  EXPECT_NEAR(t2.cells[unsup][0][0].mean, 0.2 + 0.03, 1e-12);
  EXPECT_NEAR(t2.cells[unsup][1][0].mean, 0.2 + 0.03 + 0.5, 1e-12);
  EXPECT_EQ(t2.cells[0][0][0].n_failed, 1);  // a1's failed eval on s3
  EXPECT_EQ(t2.cells[0][1][0].n_failed, 0);
  EXPECT_TRUE(has_note_with(t2, "a1 / eval jobs (model=migvis): job ", "(seed 1, session s3) failed: read-out"));
  const PaperTable& t3 = tables_[2];
  EXPECT_EQ(t3.rows, (std::vector<std::string>{"γ = 0 (model=migvis)", "γ = 10 (model=migvis)",
                                               "γ = 0 (model=migvis_unsup)", "γ = 10 (model=migvis_unsup)"}));
  EXPECT_NEAR(t3.cells[3][0][column_of(t3, "guided transfer")].mean, 0.2 + 0.03, 1e-12);  // at γ = 10, unsup
}

// The pixel judge's rows, both read-out scores and the agreement, per
// configuration; unread cells are marked, not missing, and a cell unread in
// only some sessions averages the others with a note.
TEST_F(ChainTablesTest, JudgeRowsAndUnreadCells) {
  const PaperTable& t2 = tables_[1];
  const size_t size = column_of(t2, "size"), pose = column_of(t2, "pose");
  const size_t px1 = row_of(t2, "group 1 (pixel, model=migvis)");
  // pixel.transfer.g1.pose: 0.5 + 0.02 s over s1, s2; marked as the group's factor.
  EXPECT_EQ(t2.cells[px1][0][pose].n, 2);
  EXPECT_NEAR(t2.cells[px1][0][pose].mean, 0.5 + 0.03, 1e-12);
  EXPECT_EQ(t2.marked[px1][0], static_cast<int>(pose));
  // a2: the pixel judge reads size in no session: "unread", not missing.
  EXPECT_EQ(t2.cells[px1][1][size].n, 0);
  EXPECT_EQ(t2.cells[px1][1][size].text, "unread");
  // a1: unread on s1 only: s2's value alone, and a note names s1's job.
  EXPECT_EQ(t2.cells[px1][0][size].n, 1);
  EXPECT_TRUE(t2.cells[px1][0][size].text.empty());
  EXPECT_NEAR(t2.cells[px1][0][size].mean, 0.0 + 0.04 + 0.04, 1e-12);
  EXPECT_TRUE(has_note_with(t2, "a1 / group 1 (pixel, model=migvis) / size: unread (judge below min_readout) by job ",
                            "session s1"));
  // The CNN judge reads size everywhere: numbers.
  EXPECT_EQ(t2.cells[row_of(t2, "group 1 (model=migvis)")][1][size].n, 2);
  // Read-out scores are shown even below min_readout; agreement is unread where either judge is.
  const size_t cnn = row_of(t2, "read-out score (CNN judge, model=migvis)");
  const size_t pix = row_of(t2, "read-out score (pixel judge, model=migvis)");
  const size_t agree = row_of(t2, "judge agreement (r, model=migvis)");
  EXPECT_NEAR(t2.cells[cnn][1][size].mean, 0.5, 1e-12);
  EXPECT_NEAR(t2.cells[pix][1][size].mean, 0.02, 1e-12);
  EXPECT_EQ(t2.cells[pix][1][size].n, 2);
  EXPECT_NEAR(t2.cells[agree][0][pose].mean, 0.5, 1e-12);
  EXPECT_EQ(t2.cells[agree][1][size].text, "unread");
  EXPECT_EQ(t2.cells[agree][0][size].n, 1);
  for (size_t r : {cnn, pix, agree}) EXPECT_EQ(t2.marked[r][0], -1) << t2.rows[r];
  // No unread cell is listed as missing; migvis_unsup reports no judge rows.
  for (auto& m : t2.missing) EXPECT_EQ(m.find("model=migvis)"), std::string::npos) << m;
  EXPECT_EQ(std::count_if(t2.rows.begin(), t2.rows.end(),
                          [](const std::string& r) { return r.find("migvis_unsup") != std::string::npos; }),
            2);
}

TEST_F(ChainTablesTest, AblationHoldsOtherParametersAtBase) {
  const PaperTable& t4 = tables_[3];
  EXPECT_EQ(t4.rows, (std::vector<std::string>{"w_tc = 0", "w_tc = 1e-06 (base)", "w_tc = 1e-06 (base, pooled)",
                                               "w_tc = 0.001", "w_kl = 0.5", "w_kl = 1 (base)",
                                               "w_kl = 1 (base, pooled)", "w_kl = 2"}));
  ASSERT_FALSE(t4.notes.empty());
  EXPECT_EQ(t4.notes[0].rfind("base: w_tc = 1e-06, w_kl = 1, w_guid = 1, group_rank = 2 (", 0), 0u) << t4.notes[0];
  // w_tc = 1e-3: the two seeds at w_kl = 1, not the w_kl = 0.5 job (which is 5 higher).
  size_t r = row_of(t4, "w_tc = 0.001");
  EXPECT_EQ(t4.cells[r][0][0].n, 2);
  EXPECT_NEAR(t4.cells[r][0][0].mean, 0.1 + 0.05 + 0.01 + 0.0015 + 0.2, 1e-12);
  r = row_of(t4, "w_kl = 0.5");
  EXPECT_EQ(t4.cells[r][0][0].n, 2);
  EXPECT_NEAR(t4.cells[r][0][0].mean, 0.1 + 0.05 + 0.01 + 0.0015 - 0.1, 1e-12);
}

TEST_F(ChainTablesTest, MarkdownGolden) {
  std::string all;
  for (auto& t : tables_) all += render_table(t, TableFormat::kMarkdown);
  expect_golden(all, "tables.md");
}

TEST_F(ChainTablesTest, LatexGolden) {
  std::string all;
  for (auto& t : tables_) all += render_table(t, TableFormat::kLatex);
  expect_golden(all, "tables.tex");
}

TEST(TwoDatasetTablesTest, DatasetsAreNotPooled) {
  TempDir tmp;
  auto t = build(tmp, migvis::testing::fill_two_dataset_catalog);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].rows[3], "migvis (dataset=default)");
  EXPECT_EQ(t[0].rows[4], "migvis (dataset=paper)");
  for (size_t a = 0; a < 2; ++a) {
    EXPECT_EQ(t[0].cells[3][a][0].n, 3);
    EXPECT_NEAR(t[0].cells[3][a][0].mean, 0.1 + 0.02 + 0.001, 1e-12);
    EXPECT_NEAR(t[0].cells[4][a][0].mean, 1.1 + 0.02 + 0.001, 1e-12);
  }
  // Eval chains: recorded (every ancestor) on paper, direct inputs on default;
  // either way the dataset is found and the rows stay apart.
  EXPECT_EQ(t[1].rows, (std::vector<std::string>{"group 1 (dataset=default)", "group 2 (dataset=default)",
                                                 "group 1 (dataset=paper)", "group 2 (dataset=paper)"}));
  EXPECT_EQ(t[1].cells[0][0][0].n, 1);
  EXPECT_NEAR(t[1].cells[2][0][0].mean, 0.6 + 1.0, 1e-12);
  expect_golden(render_table(t[1], TableFormat::kMarkdown), "tables_two_datasets.md");
}

}  // namespace
}  // namespace migvis::catalog
