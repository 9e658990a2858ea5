#include "results/filters.h"

#include <gtest/gtest.h>

#include "results/render.h"
#include "tests/results/demo_catalog.h"
#include "tests/test_util.h"

namespace migvis::catalog {
namespace {

using migvis::testing::TempDir;

TEST(FilterParseTest, Grammar) {
  auto f = parse_filter("animal=a1");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ(f->any_of.size(), 1u);
  EXPECT_EQ(f->any_of[0].name, "animal");
  EXPECT_EQ(f->any_of[0].op, FilterOp::kEq);
  EXPECT_EQ(f->any_of[0].values, std::vector<std::string>{"a1"});

  f = parse_filter(" model IN ( vae , 'beta vae',migvis ) ");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->any_of[0].op, FilterOp::kIn);
  EXPECT_EQ(f->any_of[0].values, (std::vector<std::string>{"vae", "beta vae", "migvis"}));

  f = parse_filter("w_tc>=1e-6 or animal = \"a 2\" OR opt.lr<0.1");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ(f->any_of.size(), 3u);
  EXPECT_EQ(f->any_of[0].op, FilterOp::kGe);
  EXPECT_EQ(f->any_of[1].values[0], "a 2");
  EXPECT_EQ(f->any_of[2].name, "opt.lr");
  EXPECT_EQ(f->any_of[2].op, FilterOp::kLt);
  for (auto [text, op] : std::vector<std::pair<std::string, FilterOp>>{
           {"a!=1", FilterOp::kNe}, {"a<1", FilterOp::kLt}, {"a<=1", FilterOp::kLe}, {"a>1", FilterOp::kGt}})
    EXPECT_EQ(parse_filter(text)->any_of[0].op, op) << text;
  // Bad filters: InvalidArgument naming the filter and the column.
  for (const char* bad : {"", "animal", "animal=", "=a1", "animal=a1 and x=1", "w_tc>=big", "model in vae",
                          "model in (vae", "animal='a1", "animal=a1' OR 1=1 --", "x; DROP TABLE jobs", "1x=2",
                          "animal=a1 or", "a=(1)"}) {
    auto r = parse_filter(bad);
    EXPECT_FALSE(r.ok()) << "accepted: " << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("--where"), std::string::npos) << r.status().message();
    }
  }
}

class RunsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::open(tmp_ / "migvis.db", Catalog::Mode::kReadWrite);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(migvis::testing::fill_demo_catalog(**c, tmp_.path()).ok());
    c->reset();
    auto ro = Catalog::open(tmp_ / "migvis.db", Catalog::Mode::kReadOnly);
    ASSERT_TRUE(ro.ok());
    cat_ = std::move(ro).value();
  }
  Result<QueryResult> runs(std::string stage, std::vector<std::string> where, std::vector<std::string> metrics = {}) {
    return run_runs_query(*cat_, RunsRequest{std::move(stage), std::move(where), std::move(metrics)});
  }
  int64_t jobs_count() {
    return std::get<int64_t>(cat_->query("SELECT count(*) FROM jobs")->rows[0][0]);
  }
  TempDir tmp_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(RunsTest, FiltersSelectTheRightJobs) {
  auto r = runs("vae", {"animal=a1"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->rows.size(), 5u * 3 + 4 + 1);  // 5 models x 3 seeds + ablation + the failed one
  r = runs("vae", {"animal=a1", "model in (vae,migvis)"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows.size(), 3u + 3 + 4 + 1);
  r = runs("vae", {"animal=a1 or animal=a2", "w_tc>=1e-6", "model=migvis"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows.size(), 3u + 3 + 2);  // migvis default on a1 and a2, plus a1 w_tc=1e-3
  r = runs("vae", {"w_tc>0.0005"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows.size(), 2u);
  r = runs("vae", {"model!=vae", "animal=a2"}, {"test_r2", "mig_group"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows.size(), 3u * 3 + 2);  // beta_vae migvis migvis_unsup x3 + ablation w_tc=0 x2
  EXPECT_EQ(r->columns, (std::vector<std::string>{"job_id", "stage", "status", "animal", "session", "model",
                                                  "test_r2", "mig_group"}));
  for (auto& row : r->rows) {
    EXPECT_EQ(std::get<std::string>(row[3]), "a2");
    EXPECT_NE(std::get<std::string>(row[5]), "vae");
    EXPECT_TRUE(std::holds_alternative<double>(row[6]));
  }
  r = runs("vae", {"status=failed"}, {"test_r2"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<double>(r->rows[0].back()), -5.0);
  r = runs("", {"seed in (9)"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows.size(), 1u);
  // Every output format renders (spot checks).
  auto table = render(*r, TextFormat::kTable);
  EXPECT_NE(table.find("(1 row)"), std::string::npos) << table;
  EXPECT_NE(render(*r, TextFormat::kCsv).find("job_id,stage,status"), std::string::npos);
  auto j = json::parse(render(*r, TextFormat::kJson));
  EXPECT_EQ(j["rows"].size(), 1u);
}

TEST_F(RunsTest, InjectionAttemptsChangeNothing) {
  int64_t before = jobs_count();
  // Quoted values are data: they match nothing and change nothing.
  for (const char* w : {"animal='a1'' OR 1=1 --'", "animal='x; DROP TABLE jobs'", "animal=\"a1' OR '1'='1\"",
                        "model in ('vae); DELETE FROM jobs; --')"}) {
    auto r = runs("vae", {w});
    ASSERT_TRUE(r.ok()) << w << ": " << r.status().to_string();
    EXPECT_EQ(r->rows.size(), 0u) << w;
  }
  // Unquoted attempts do not parse; unknown names are refused with the known list.
  for (const char* w : {"animal=a1' OR 1=1 --", "x; DROP TABLE jobs", "animal=a1; DROP TABLE jobs"}) {
    auto r = runs("vae", {w});
    EXPECT_FALSE(r.ok()) << w;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  auto r = runs("vae", {"nosuch=1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown name 'nosuch'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("w_tc"), std::string::npos) << r.status().message();
  r = runs("vae", {}, {"test_r2; DROP TABLE jobs"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no scalar metric"), std::string::npos);
  r = runs("vae' OR '1'='1", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(jobs_count(), before);
  // The one legit a1 query still works after all that.
  EXPECT_EQ(runs("vae", {"animal=a1", "model=tcvae"})->rows.size(), 3u);
}

}  // namespace
}  // namespace migvis::catalog
