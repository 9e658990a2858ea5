// critic -> synthesis -> eval through the real migvis-worker on tiny job
// directories whose upstream outputs (dataset, VAE latents, a TorchScript eps
// model) are written by hand in the formats of schemas/job.md.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "results/dataset_io.h"
#include "results/h5.h"
#include "schemas/job_spec.h"
#include "tests/test_util.h"
#include "worker/stages/inputs.h"

namespace migvis {
namespace {

using migvis::testing::run_command;

constexpr int kN = 48, kS = 16;

// Blob images: position x encodes the category, blob width the pose.
data::Dataset tiny_dataset() {
  data::Dataset d;
  d.source = "test";
  d.images = h5::Array<float>({kN, 1, kS, kS});
  data::Factor cat, rxy;
  cat.name = "category"; cat.kind = data::FactorKind::kCategorical; cat.role = "category"; cat.classes = {"a", "b"};
  rxy.name = "rxy"; rxy.role = "pose"; rxy.units = "deg";
  for (int i = 0; i < kN; ++i) {
    d.stimulus_ids.push_back("im" + std::to_string(i));
    const int c = i % 2;
    const float pose = -45.f + 90.f * (i / 2) / (kN / 2 - 1);
    cat.values.push_back(c);
    rxy.values.push_back(pose);
    const float cx = c ? 10.5f : 4.5f, sig = 1.5f + (pose + 45.f) / 45.f;
    for (int y = 0; y < kS; ++y)
      for (int x = 0; x < kS; ++x)
        d.images.data[(i * kS + y) * kS + x] = std::exp(-((x - cx) * (x - cx) + (y - 7.5f) * (y - 7.5f)) / (2 * sig * sig));
  }
  d.factors = {cat, rxy};
  data::Session s;
  s.animal = "a1"; s.name = "s1";
  s.counts = h5::Array<float>({kN, 2});
  for (int i = 0; i < kN; ++i) { s.image_index.push_back(i); s.counts.data[2 * i] = i % 3; s.counts.data[2 * i + 1] = 1; }
  s.neuron_ids = {"n0", "n1"};
  d.sessions = {s};
  return d;
}

// A finished job's last progress.yaml: `total` of `total` steps in `phase`.
void expect_final_progress(const fs::path& dir, int64_t total, const std::string& phase) {
  auto p = schema::read_progress(dir);
  ASSERT_TRUE(p.ok()) << dir << ": " << p.status().to_string();
  EXPECT_EQ(p->step, total) << dir;
  EXPECT_EQ(p->total_steps, total) << dir;
  EXPECT_EQ(p->phase, phase) << dir;
}

// Job directories over the tiny dataset, run through the real worker.
class JobDirTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(data::write_dataset(tiny_dataset(), tmp_ / "dataset.h5").ok()); }

  testing::RunResult run_job(const std::string& stage, const std::string& params_yaml,
                             std::map<std::string, std::string> inputs) {
    schema::JobSpec s;
    s.job_id = "00000000000000" + std::to_string(10 + (++jobs_));
    s.stage = stage;
    s.seed = 3;
    s.params = YAML::Load(params_yaml);
    for (auto& [k, v] : inputs) s.inputs[k] = (tmp_ / v).string();
    fs::create_directories(tmp_ / stage);
    EXPECT_TRUE(schema::write_job_spec(s, tmp_ / stage).ok());
    return run_command(testing::worker_bin() + " --threads 1 --job " + (tmp_ / stage).string());
  }

  testing::TempDir tmp_;
  int jobs_ = 0;
};

class StagesTest : public JobDirTest {
 protected:
  void SetUp() override {
    JobDirTest::SetUp();
    setup();
  }
  void setup() {
    if (run_command("/usr/bin/python3 -c 'import torch'").exit_code != 0)
      MIGVIS_SKIP_WITHOUT("python") << "/usr/bin/python3 with torch is needed to script the stand-in eps model";
    auto d = tiny_dataset();
    // VAE job: 2 groups x 2 dims; group 1 = (category, noise), group 2 = (pose, noise).
    fs::create_directories(tmp_ / "vae");
    {
      auto af = h5::AtomicFile::create(tmp_ / "vae" / "out.h5");
      ASSERT_TRUE(af.ok());
      auto& f = (*af)->file();
      h5::Array<float> lat({kN, 4});
      for (int i = 0; i < kN; ++i) {
        lat.data[4 * i + 0] = d.factors[0].values[i] * 2 - 1;
        lat.data[4 * i + 1] = std::sin(i * 1.7f);
        lat.data[4 * i + 2] = d.factors[1].values[i] / 45.f;
        lat.data[4 * i + 3] = std::cos(i * 2.3f);
      }
      ASSERT_TRUE(f.write("latents", lat).ok());
      ASSERT_TRUE(f.set_attr<int32_t>("latents", "groups", 2).ok());
      ASSERT_TRUE(f.set_attr<int32_t>("latents", "group_rank", 2).ok());
      std::vector<int32_t> idx(kN);
      for (int i = 0; i < kN; ++i) idx[i] = i;
      ASSERT_TRUE(f.write_vector("latent_image_index", idx).ok());
      // The VAE's group x factor decoding (as the vae stage writes it): group 1
      // reads category, group 2 pose, so eval's diagonal takes those cells.
      ASSERT_TRUE(f.write("eval/group_factor", h5::Array<float>({2, 2}, {0.1f, 0.9f, 0.8f, 0.05f})).ok());
      ASSERT_TRUE(f.set_attr_vector<std::string>("eval/group_factor", "factors", {"pose", "category"}).ok());
      ASSERT_TRUE((*af)->commit().ok());
    }
    // Diffusion job stand-in: a scripted eps model + its schedule.
    fs::create_directories(tmp_ / "diffusion");
    std::ofstream(tmp_ / "mk.py") <<
        "import torch\n"
        "class Eps(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)\n"
        "        self.c2 = torch.nn.Conv2d(4, 1, 3, padding=1)\n"
        "    def forward(self, x, t):\n"
        "        g = (1.0 + 0.01 * t.to(x.dtype)).view(-1, 1, 1, 1)\n"
        "        return 0.3 * self.c2(torch.tanh(self.c1(x) * g))\n"
        "torch.manual_seed(0)\n"
        "torch.jit.script(Eps()).save('" << (tmp_ / "diffusion" / "eps_model.ts").string() << "')\n";
    ASSERT_EQ(run_command("/usr/bin/python3 " + (tmp_ / "mk.py").string()).exit_code, 0);
    {
      auto af = h5::AtomicFile::create(tmp_ / "diffusion" / "out.h5");
      ASSERT_TRUE(af.ok());
      auto& f = (*af)->file();
      ASSERT_TRUE(f.require_group("schedule").ok());
      ASSERT_TRUE(f.set_attr<int64_t>("schedule", "T", 20).ok());
      ASSERT_TRUE(f.set_attr<std::string>("schedule", "schedule", "linear").ok());
      ASSERT_TRUE(f.set_attr<int64_t>("schedule", "image_size", kS).ok());
      ASSERT_TRUE(f.set_attr<int64_t>("schedule", "channels", 1).ok());
      // The judge split a diffusion job trained under (the critic's default).
      ASSERT_TRUE(worker::write_judge_split(f, worker::judge_split(kN, worker::kDefaultJudgeHoldout), kN).ok());
      ASSERT_TRUE((*af)->commit().ok());
    }
  }
};

TEST_F(StagesTest, CriticSynthesisEvalEndToEndAndUnknownKeyRejected) {
  auto r = run_job("critic", "{epochs: 3, batch: 16, negatives: 8, width: 4, feature_dim: 16, embed_dim: 8}",
                   {{"dataset", "dataset.h5"}, {"vae", "vae"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cres = schema::read_job_result(tmp_ / "critic");
  ASSERT_TRUE(cres.ok());
  EXPECT_EQ(cres->metrics.count("mi.g1"), 1u);
  EXPECT_EQ(cres->metrics.count("mi.g2"), 1u);
  EXPECT_TRUE(fs::exists(tmp_ / "critic" / "critic.pt"));
  // The critic reports its epochs in progress.yaml (the live display's bar).
  expect_final_progress(tmp_ / "critic", 3, "train");
  {
    auto f = h5::File::open(tmp_ / "critic" / "out.h5");
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(*f->shape("mi_lower_bound"), (std::vector<hsize_t>{2}));
    // The critic recorded the stimuli it left to the judges.
    auto split = worker::read_judge_split(*f);
    ASSERT_TRUE(split.ok()) << split.status().to_string();
    EXPECT_EQ(split->heldout, worker::judge_split(kN, worker::kDefaultJudgeHoldout).heldout);
  }

  r = run_job("synthesis", "{gammas: [0, 5], pairs: 2, seeds: 2, edit_t: 15, steps: 4, chunk: 5, eta: 0.5}",
              {{"dataset", "dataset.h5"}, {"vae", "vae"}, {"diffusion", "diffusion"}, {"critic", "critic"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
    auto f = h5::File::open(tmp_ / "synthesis" / "out.h5");
    ASSERT_TRUE(f.ok());
    auto img = f->read<float>("images");
    ASSERT_TRUE(img.ok());
    EXPECT_EQ(img->shape, (std::vector<hsize_t>{2, 2, 2, 2, 1, kS, kS}));
    for (float v : img->data) ASSERT_TRUE(v >= 0 && v <= 1);
    EXPECT_EQ(*f->attr_vector<int32_t>("images", "groups"), (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(*f->attr_vector<double>("images", "gammas"), (std::vector<double>{0, 5}));
    EXPECT_EQ(*f->shape("mi"), (std::vector<hsize_t>{2, 2}));
    EXPECT_EQ(f->read_vector<int32_t>("sources")->size(), 2u);
    // Same (pair, seed) noise: gamma 0 images of group 1 and group 2 are identical.
    const size_t cell = kS * kS, per_gamma = 2 * 2 * cell;
    for (size_t i = 0; i < per_gamma; ++i) ASSERT_EQ(img->data[i], img->data[2 * per_gamma + i]);
  }
  EXPECT_TRUE(fs::exists(tmp_ / "synthesis" / "grid_pair0.png"));
  EXPECT_TRUE(fs::exists(tmp_ / "synthesis" / "grid_pair1.png"));
  {
    auto f = h5::File::open(tmp_ / "synthesis" / "out.h5");
    ASSERT_TRUE(f.ok());
    EXPECT_TRUE(worker::read_judge_split(*f).ok());
  }

  // min_readout off: a 3-epoch read-out measures the plumbing, not the factors.
  r = run_job("eval", "{epochs: 3, width: 4, min_readout: -100}", {{"dataset", "dataset.h5"}, {"synthesis", "synthesis"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto eres = schema::read_job_result(tmp_ / "eval");
  ASSERT_TRUE(eres.ok());
  // Its judge members (judge_seeds, 3 by default) in progress.yaml.
  expect_final_progress(tmp_ / "eval", 3, "judges");
  EXPECT_EQ(eres->metrics.at("judge_seeds"), 3.0);
  for (auto key : {"change.g1.pose", "change.g2.category", "slope.g1.category", "transfer.g1.pose", "mi.gamma5",
                   "guided_change.gamma5", "guided_transfer.gamma5", "quality.gamma0", "quality.gamma5",
                   "pixel.transfer.g1.pose", "pixel.transfer_se.g2.category", "readout.rxy", "pixel.readout.category",
                   "judge.pose", "pixel.judge.category"})
    EXPECT_EQ(eres->metrics.count(key), 1u) << key;
  // The diagonal contrast (pose group 2, category group 1) is the four cells'
  // combination, with a bootstrap error over the 2 sources.
  for (std::string px : {"", "pixel."}) {
    auto M = [&](const std::string& k) { return eres->metrics.at(px + k); };
    ASSERT_EQ(eres->metrics.count(px + "contrast"), 1u) << px;
    EXPECT_NEAR(M("contrast"), M("transfer.g2.pose") + M("transfer.g1.category") - M("transfer.g2.category") -
                                   M("transfer.g1.pose"), 1e-5) << px;
    EXPECT_TRUE(std::isfinite(M("contrast_se")) && M("contrast_se") >= 0) << px;
  }
  // A labelled figure per pair, with its caption.
  EXPECT_TRUE(fs::exists(tmp_ / "eval" / "figure_pair0.png"));
  EXPECT_TRUE(fs::exists(tmp_ / "eval" / "figure_pair1.json"));
  auto f = h5::File::open(tmp_ / "eval" / "out.h5");
  ASSERT_TRUE(f.ok());
  auto fc = f->read<float>("factor_change");
  ASSERT_TRUE(fc.ok());
  EXPECT_EQ(fc->shape, (std::vector<hsize_t>{2, 2, 2}));
  // gamma 0 is the reference: zero change there.
  for (int g = 0; g < 2; ++g)
    for (int k = 0; k < 2; ++k) EXPECT_EQ(fc->data[(g * 2 + 0) * 2 + k], 0.f);
  EXPECT_EQ(*f->attr_vector<std::string>("factor_change", "factors"), (std::vector<std::string>{"pose", "category"}));
  auto ft = f->read<float>("factor_transfer");
  ASSERT_TRUE(ft.ok());
  EXPECT_EQ(ft->shape, fc->shape);
  // gamma 0 images are the same for both groups: so is their transfer.
  for (int k = 0; k < 2; ++k) EXPECT_EQ(ft->data[(0 * 2 + 0) * 2 + k], ft->data[(1 * 2 + 0) * 2 + k]);

  // An unknown key is rejected by name (exit 65, failed result).
  r = run_job("synthesis", "{gammas: [0], bogus: 1}",
              {{"dataset", "dataset.h5"}, {"vae", "vae"}, {"diffusion", "diffusion"}, {"critic", "critic"}});
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto bad = schema::read_job_result(tmp_ / "synthesis");
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->error.find("bogus"), std::string::npos) << bad->error;
}

// A hand-written synthesis output: group 1's guided images ARE the pair targets,
// group 2's stay the sources. Group 2's transfer must then equal the reference
// column's, and group 1's continuous pose transfer must exceed it (each image
// now sits on its own target, at distance 0, and away from the others').
TEST_F(JobDirTest, EvalTransferMeasuresMovementTowardTheTarget) {
  auto d = tiny_dataset();
  constexpr int G = 2, Gm = 2, P = 6, S = 2;
  const std::vector<int32_t> src = {0, 5, 10, 17, 30, 41};
  fs::create_directories(tmp_ / "synthesis");
  auto write_synthesis = [&](const std::vector<int32_t>& tgt) {
    auto af = h5::AtomicFile::create(tmp_ / "synthesis" / "out.h5");
    ASSERT_TRUE(af.ok());
    auto& f = (*af)->file();
    h5::Array<float> img({G, Gm, P, S, 1, kS, kS});
    const size_t cell = kS * kS;
    for (int g = 0; g < G; ++g)
      for (int c = 0; c < Gm; ++c)
        for (int p = 0; p < P; ++p)
          for (int s = 0; s < S; ++s) {
            const int im = (g == 0 && c == 1) ? tgt[p] : src[p];
            std::copy_n(d.images.data.begin() + im * cell, cell,
                        img.data.begin() + (((g * Gm + c) * P + p) * S + s) * cell);
          }
    ASSERT_TRUE(f.write("images", img).ok());
    ASSERT_TRUE(f.set_attr_vector<int32_t>("images", "groups", {1, 2}).ok());
    ASSERT_TRUE(f.set_attr_vector<double>("images", "gammas", {0, 50}).ok());
    ASSERT_TRUE(f.write_vector("sources", src).ok());
    ASSERT_TRUE(f.write_vector("targets", tgt).ok());
    ASSERT_TRUE(worker::write_judge_split(f, worker::judge_split(kN, 0.5), kN).ok());
    ASSERT_TRUE((*af)->commit().ok());
  };
  write_synthesis({23, 40, 3, 8, 46, 12});
  auto r = run_job("eval", "{epochs: 4, width: 4, augment_noise: 0, augment_blur: 0, min_readout: -100}",
                   {{"dataset", "dataset.h5"}, {"synthesis", "synthesis"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto res = schema::read_job_result(tmp_ / "eval");
  ASSERT_TRUE(res.ok());
  auto& m = res->metrics;
  EXPECT_EQ(m.at("change.g2.pose"), 0.0);
  // Group 2 did not move: its transfer is the unguided (reference) one, the same
  // for every group since their reference images are the same sources.
  auto f = h5::File::open(tmp_ / "eval" / "out.h5");
  ASSERT_TRUE(f.ok());
  auto ft = f->read<float>("factor_transfer");
  ASSERT_TRUE(ft.ok());
  ASSERT_EQ(ft->shape, (std::vector<hsize_t>{G, Gm, 2}));
  for (int k = 0; k < 2; ++k) {
    EXPECT_NEAR(ft->data[(1 * Gm + 1) * 2 + k], ft->data[(1 * Gm + 0) * 2 + k], 1e-6);
    EXPECT_NEAR(ft->data[(0 * Gm + 0) * 2 + k], ft->data[(1 * Gm + 0) * 2 + k], 1e-6);
  }
  EXPECT_NEAR(m.at("transfer.g2.pose"), ft->data[(1 * Gm + 0) * 2 + 0], 1e-6);
  // Group 1 reached its targets: each image sits on its own target's read-out,
  // so it is more specific to it than the sources were.
  EXPECT_GT(m.at("transfer.g1.pose"), m.at("transfer.g2.pose"));
  EXPECT_GT(m.at("transfer.g1.pose"), 0.0);
  EXPECT_GT(m.at("transfer_se.g2.pose"), 0.0);
  EXPECT_GT(m.at("nchange.g1.pose"), 0.0);
  EXPECT_EQ(m.at("report_gamma"), 50.0);

  // A read-out threshold no factor reaches fails the job, naming the key.
  r = run_job("eval", "{epochs: 1, width: 4, min_readout: 1.01}", {{"dataset", "dataset.h5"}, {"synthesis", "synthesis"}});
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto unread = schema::read_job_result(tmp_ / "eval");
  ASSERT_TRUE(unread.ok());
  EXPECT_NE(unread->error.find("min_readout"), std::string::npos) << unread->error;

  // A target index outside the dataset is rejected, naming the file and dataset.
  write_synthesis({23, 40, 3, 8, 46, kN});
  r = run_job("eval", "{epochs: 1, width: 4, min_readout: -100}", {{"dataset", "dataset.h5"}, {"synthesis", "synthesis"}});
  EXPECT_EQ(r.exit_code, 65) << r.output;
  auto bad = schema::read_job_result(tmp_ / "eval");
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->error.find("/targets"), std::string::npos) << bad->error;
  EXPECT_NE(bad->error.find("outside the dataset"), std::string::npos) << bad->error;
}

// A factor with no variance (rxz = 0 everywhere, as in an imported assembly)
// and a near-constant one (size: one image differs) are never read out,
// scored or tabled: no metric names them and the read-out tables lack them.
TEST_F(JobDirTest, EvalDropsConstantFactors) {
  auto d = tiny_dataset();
  data::Factor rxz = d.factors[1], size = d.factors[1];
  rxz.name = "rxz";
  size.name = "size";
  size.role = "size";
  size.units = "scale";
  for (int i = 0; i < kN; ++i) { rxz.values[i] = 0; size.values[i] = i == 7 ? 0.6f : 0.5f; }
  d.factors.push_back(rxz);
  d.factors.push_back(size);
  ASSERT_TRUE(data::write_dataset(d, tmp_ / "dataset.h5").ok());
  constexpr int G = 2, Gm = 2, P = 4, S = 1;
  fs::create_directories(tmp_ / "synthesis");
  {
    auto af = h5::AtomicFile::create(tmp_ / "synthesis" / "out.h5");
    ASSERT_TRUE(af.ok());
    auto& f = (*af)->file();
    h5::Array<float> img({G, Gm, P, S, 1, kS, kS});
    const size_t cell = kS * kS;
    for (size_t i = 0; i < img.data.size() / cell; ++i)
      std::copy_n(d.images.data.begin() + (i % kN) * cell, cell, img.data.begin() + i * cell);
    ASSERT_TRUE(f.write("images", img).ok());
    ASSERT_TRUE(f.set_attr_vector<int32_t>("images", "groups", {1, 2}).ok());
    ASSERT_TRUE(f.set_attr_vector<double>("images", "gammas", {0, 10}).ok());
    ASSERT_TRUE(f.write_vector<int32_t>("sources", {0, 5, 10, 17}).ok());
    ASSERT_TRUE(f.write_vector<int32_t>("targets", {23, 40, 3, 8}).ok());
    ASSERT_TRUE(worker::write_judge_split(f, worker::judge_split(kN, 0.5), kN).ok());
    ASSERT_TRUE((*af)->commit().ok());
  }
  auto r = run_job("eval", "{epochs: 2, width: 4, min_readout: -100, bootstrap: 50}",
                   {{"dataset", "dataset.h5"}, {"synthesis", "synthesis"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto res = schema::read_job_result(tmp_ / "eval");
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->metrics.count("readout.rxy"), 1u);
  for (auto& [name, v] : res->metrics) {
    EXPECT_EQ(name.find("rxz"), std::string::npos) << name;
    EXPECT_EQ(name.find("size"), std::string::npos) << name;
  }
  auto f = h5::File::open(tmp_ / "eval" / "out.h5");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->attr_vector<std::string>("factor_transfer", "factors"), (std::vector<std::string>{"pose", "category"}));
  EXPECT_EQ(*f->attr_vector<std::string>("readout_score", "factors"), (std::vector<std::string>{"pose", "category"}));
  auto dropped = f->read_vector<std::string>("dropped_factors");
  ASSERT_TRUE(dropped.ok());
  std::sort(dropped->begin(), dropped->end());
  EXPECT_EQ(*dropped, (std::vector<std::string>{"rxz", "size"}));
}

}  // namespace
}  // namespace migvis
