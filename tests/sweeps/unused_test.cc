// Dead jobs named at plan time (sweeps/unused.h): jobs no downstream job reads
// and no table uses, and the plan without them.
#include "sweeps/unused.h"

#include <gtest/gtest.h>

#include "common/files.h"

namespace migvis::sweeps {
namespace {

const std::string kSrc = MIGVIS_SOURCE_DIR;

// paper.yaml as it was before issue 19: a critic for every VAE, baselines included.
std::string paper_with_critics_for_every_vae() {
  auto text = read_file(kSrc + "/sweeps/paper.yaml");
  EXPECT_TRUE(text.ok());
  std::string t = *text;
  const std::string block = "  exclude:\n    - {vae.model: [vae, beta_vae, tcvae]}\n  resources: {threads: 4, gpus: 1, mem_gb: 16, time_min: 120}\nsynthesis:";
  size_t p = t.find(block);
  EXPECT_NE(p, std::string::npos) << "paper.yaml's critic block changed shape";
  if (p != std::string::npos) t.replace(p, block.find("  resources"), "");
  return t;
}

TEST(UnusedJobsTest, ShippedPaperSweepHasNone) {
  for (auto name : {"paper", "quickstart", "tiny", "ablation"}) {
    auto p = load_sweep(kSrc + "/sweeps/" + name + ".yaml");
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_TRUE(unused_jobs(*p).empty()) << name << ": " << unused_report(*p, unused_jobs(*p), false).at(0);
  }
}

TEST(UnusedJobsTest, CriticsOfBaselineVaesAreNamedAndPruned) {
  auto p = expand_sweep(paper_with_critics_for_every_vae(), "paper.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->count_by_stage()["critic"], 120u);
  auto unused = unused_jobs(*p);
  ASSERT_EQ(unused.size(), 72u);
  for (size_t i : unused) {
    EXPECT_EQ(p->jobs[i].stage, "critic");
    const std::string model = p->jobs[p->jobs[i].upstream.at("vae")].params.value("model", "");
    EXPECT_TRUE(model == "vae" || model == "beta_vae" || model == "tcvae") << model;
  }
  auto lines = unused_report(*p, unused, false);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "critic: 72 of 120 jobs feed nothing (no downstream job reads them, no table uses them)");

  Plan pruned = *p;
  auto said = unused_lines(&pruned, true, false);
  ASSERT_TRUE(said.ok());
  EXPECT_EQ(said->back(), "72 jobs dropped (--prune-unused)");
  EXPECT_EQ(pruned.jobs.size(), p->jobs.size() - 72);
  EXPECT_TRUE(unused_jobs(pruned).empty());
  // The pruned plan is the fixed paper.yaml's plan: same jobs, same order, same links.
  auto fixed = load_sweep(kSrc + "/sweeps/paper.yaml");
  ASSERT_TRUE(fixed.ok());
  ASSERT_EQ(pruned.jobs.size(), fixed->jobs.size());
  for (size_t i = 0; i < pruned.jobs.size(); ++i) {
    EXPECT_EQ(pruned.jobs[i].job_id, fixed->jobs[i].job_id) << i;
    EXPECT_EQ(pruned.jobs[i].deps, fixed->jobs[i].deps) << i;
    EXPECT_EQ(pruned.jobs[i].upstream, fixed->jobs[i].upstream) << i;
  }
}

TEST(UnusedJobsTest, DroppingAJobSomeoneReadsIsRefused) {
  auto p = load_sweep(kSrc + "/sweeps/quickstart.yaml");
  ASSERT_TRUE(p.ok());
  size_t critic = 0;
  while (p->jobs[critic].stage != "critic") ++critic;
  auto r = drop_jobs(*p, {critic});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("which would be dropped"), std::string::npos) << r.status().message();
}

TEST(UnusedJobsTest, ADiffusionModelNoSynthesisUsesIsUnused) {
  auto p = expand_sweep("sweep: t\nanimals: [a1]\nsessions: [s1]\ndata: {params: {preset: tiny, seed: 1}}\n"
                        "vae:\n  params: {model: migvis}\n"
                        "diffusion:\n  params: {steps: 2}\n",
                        "t.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto unused = unused_jobs(*p);
  ASSERT_EQ(unused.size(), 1u);
  EXPECT_EQ(p->jobs[unused[0]].stage, "diffusion");
}

}  // namespace
}  // namespace migvis::sweeps
