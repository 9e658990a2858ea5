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
  EXPECT_EQ(t1.rows, (std::vector<std::string>{"vae", "beta_vae", "tcvae", "migvis", "migvis_unsup"}));
  // vae, a1, test_r2 = 0.1 + 0 + 0.01*seed over seeds 1..3 (the failed seed-9 job is ignored).
  const Cell& c = t1.cells[0][0][0];
  EXPECT_EQ(c.n, 3);
  EXPECT_NEAR(c.mean, 0.12, 1e-12);
  EXPECT_NEAR(c.std, 0.01, 1e-12);
  // migvis on a2: the 3-seed default configuration wins over the 2-seed ablation one.
  EXPECT_EQ(t1.cells[3][1][0].n, 3);
  EXPECT_NEAR(t1.cells[3][1][0].mean, 0.1 + 0.15 + 0.02 + 0.02, 1e-12);
  // a2 has no tcvae: missing and listed.
  EXPECT_EQ(t1.cells[2][1][0].n, 0);
  EXPECT_NE(std::find(t1.missing.begin(), t1.missing.end(), "a2 / tcvae: no done jobs"), t1.missing.end());
  // Table 2 uses transfer.* over change.*: group g moves factor g-1 toward the
  // target most (marked), though it changes factor g most.
  const PaperTable& t2 = tables_[1];
  ASSERT_EQ(t2.rows.size(), 5u);  // groups 1-4, then the judge's read-out score
  for (int g = 0; g < 4; ++g) EXPECT_EQ(t2.marked[g][0], g) << "group " << g + 1;
  EXPECT_NEAR(t2.cells[0][0][0].mean, 0.6 + 0.03, 1e-12);  // transfer.g1.pose on a1, seeds 1, 2
  EXPECT_EQ(t2.rows[4], "read-out score (CNN judge)");
  EXPECT_NEAR(t2.cells[4][0][1].mean, 0.8, 1e-12);  // judge.category on a1
  // a2's size: the judge cannot read it, so its cells say so, not a number.
  ASSERT_EQ(t2.columns.back(), "size");
  EXPECT_EQ(t2.cells[0][1][4].text, "unread");
  EXPECT_EQ(format_cell(t2.cells[0][1][4]), "unread");
  EXPECT_TRUE(t2.cells[0][0][4].text.empty());
  // Table 3 claims no selectivity from the guiding critic's own MI.
  EXPECT_EQ(tables_[2].columns, (std::vector<std::string>{"guided change", "guided transfer", "quality"}));
  // Table 3: gammas 1, 10, 100 in numeric order.
  EXPECT_EQ(tables_[2].rows, (std::vector<std::string>{"γ = 1", "γ = 10", "γ = 100"}));
  // Table 4: only w_tc varies among migvis jobs.
  EXPECT_EQ(tables_[3].rows, (std::vector<std::string>{"w_tc = 0", "w_tc = 1e-06", "w_tc = 0.001"}));
  EXPECT_EQ(tables_[3].cells[2][1][0].n, 0);  // a2 has no w_tc = 1e-3
}

TEST_F(TablesTest, MarkdownGolden) {
  std::string all;
  for (auto& t : tables_) all += render_table(t, TableFormat::kMarkdown);
  expect_golden(all, "tables.md");
}

TEST_F(TablesTest, LatexGolden) {
  std::string all;
  for (auto& t : tables_) all += render_table(t, TableFormat::kLatex);
  expect_golden(all, "tables.tex");
}

TEST_F(TablesTest, CsvIsLongForm) {
  std::string csv = render_table(tables_[0], TableFormat::kCsv);
  EXPECT_EQ(csv.rfind("table,row,animal,column,mean,std,n\n", 0), 0u);
  EXPECT_NE(csv.find("table1_reconstruction,vae,a1,R²,0.12"), std::string::npos) << csv.substr(0, 300);
  // rows x animals x columns lines + header
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 5 * 2 * 9);
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
  for (auto name : {"transfer.g1.pose", "transfer.g1.category", "judge.pose", "judge.category"})
    ASSERT_TRUE((*c)->query("INSERT INTO metrics (job_id, name, step, value) VALUES (?,?,?,?)",
                            {e.job_id, std::string(name), Value(), 0.5}).ok());
  auto t = build_paper_tables(**c);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)[1].columns, (std::vector<std::string>{"pose", "category"}));
  const std::string md = render_table((*t)[1], TableFormat::kMarkdown);
  EXPECT_EQ(md.find("size"), std::string::npos) << md;
  EXPECT_EQ(md.find("rxz"), std::string::npos) << md;
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

}  // namespace
}  // namespace migvis::catalog
