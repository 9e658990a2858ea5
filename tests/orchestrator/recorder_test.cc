// One conversion of a job record: the row the recorder writes before a run and
// the row ingest makes of the finished job directory agree on every field that
// describes the job (upstream = every ancestor by stage).
#include "orchestrator/recorder.h"

#include <set>

#include <gtest/gtest.h>

#include "results/catalog.h"
#include "schemas/job_spec.h"
#include "sweeps/sweep.h"
#include "tests/test_util.h"

namespace migvis::orch {
namespace {

using migvis::testing::TempDir;

// The fields a job record carries (not the lifecycle: status, times, host).
void expect_same_record(catalog::JobRow a, catalog::JobRow b) {
  a.provenance.erase("result");
  b.provenance.erase("result");
  EXPECT_EQ(a.job_id, b.job_id);
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.sweep, b.sweep);
  EXPECT_EQ(a.stage, b.stage);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.dir, b.dir);
  EXPECT_EQ(a.upstream, b.upstream);
  EXPECT_EQ(a.provenance, b.provenance);
}

TEST(RecorderTest, RecordedRowEqualsIngestedRowForEveryStage) {
  TempDir tmp;
  auto plan = sweeps::load_sweep(fs::path(MIGVIS_SOURCE_DIR) / "sweeps" / "tiny.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  const fs::path root = fs::absolute(tmp / "root").lexically_normal();
  auto recorded_db = catalog::Catalog::open(tmp / "recorded.db", catalog::Catalog::Mode::kReadWrite);
  auto ingested_db = catalog::Catalog::open(tmp / "ingested.db", catalog::Catalog::Mode::kReadWrite);
  ASSERT_TRUE(recorded_db.ok() && ingested_db.ok());
  std::set<std::string> seen;
  for (size_t i = 0; i < plan->jobs.size(); ++i) {
    const auto& pj = plan->jobs[i];
    if (!seen.insert(pj.stage).second) continue;  // one job per stage
    const fs::path dir = sweeps::job_dir_for(root, pj);
    ASSERT_TRUE(schema::write_job_spec(sweeps::job_spec_for(*plan, i, root), dir).ok());
    schema::JobResult res;
    res.job_id = pj.job_id;
    res.stage = pj.stage;
    res.host = "node1";
    ASSERT_TRUE(schema::write_job_result(res, dir).ok());

    ASSERT_TRUE((*recorded_db)->upsert_jobs({job_row_for(*plan, i, root)}).ok());
    ASSERT_TRUE((*ingested_db)->ingest_job_dir(dir).ok());
    auto recorded = (*recorded_db)->job(pj.job_id);
    auto ingested = (*ingested_db)->job(pj.job_id);
    ASSERT_TRUE(recorded.ok() && recorded->has_value() && ingested.ok() && ingested->has_value());
    SCOPED_TRACE(pj.stage);
    expect_same_record(**recorded, **ingested);
    // upstream: every ancestor by stage, as the planner knows them.
    nlohmann::json want = nlohmann::json::object();
    for (auto& [st, idx] : pj.upstream) want[st] = plan->jobs[idx].job_id;
    EXPECT_EQ((*ingested)->upstream, want);
  }
  EXPECT_EQ(seen.size(), 6u);
}

}  // namespace
}  // namespace migvis::orch
