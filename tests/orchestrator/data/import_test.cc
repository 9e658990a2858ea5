// Importers, on fixture files built here in the exact layouts they read.
#include "orchestrator/data/import.h"

#include <gtest/gtest.h>

#include <cmath>

#include "orchestrator/data/csv.h"
#include "orchestrator/data/synth.h"
#include "tests/orchestrator/data/fixtures.h"
#include "tests/test_util.h"

namespace migvis::data {
namespace {

using testing::BrainScoreFixture;
using testing::BsVariant;
using testing::NwbFixture;
using testing::NwbVariant;

ImportOptions bs_options(const BrainScoreFixture& fx) {
  ImportOptions o;
  o.format = "brainscore";
  o.input = fx.nc;
  o.stimuli_csv = fx.csv;
  return o;
}

int image_number(const std::string& id) { return std::stoi(id.substr(3)); }

TEST(CsvTest, QuotesCommasAndFieldCounts) {
  auto t = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",3\n\n4,5,\"multi\nline\"\n", "t.csv");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_EQ(t->rows[0][1], "x, \"y\"");
  EXPECT_EQ(t->rows[1][2], "multi\nline");
  EXPECT_EQ(t->line_of_row[1], 4);
  EXPECT_EQ(t->column("c"), 2);
  auto bad = parse_csv("a,b\n1,2\n3\n", "t.csv");
  EXPECT_NE(bad.status().message().find("t.csv:3: expected 2 fields"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(parse_csv("a\n\"open\n", "t.csv").ok());
}

TEST(BrainScoreImportTest, MatchesPresentationsToImagesByIdAndSplitsAnimals) {
  testing::TempDir tmp;
  auto fx = testing::make_brainscore(tmp.path());
  auto d = import_brainscore(bs_options(fx));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  ASSERT_EQ(d->num_images(), 6u);
  EXPECT_EQ(d->images.shape, (std::vector<hsize_t>{6, 1, 8, 8}));
  // Images follow the stimulus-set order; each carries its own pixels.
  EXPECT_EQ(d->stimulus_ids, (std::vector<std::string>{"img5", "img2", "img0", "img4", "img1", "img3"}));
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(d->images.data[i * 64], (image_number(d->stimulus_ids[i]) + 1) / 10.f, 1.f / 255) << i;
  // Region IT only (the V4 site is dropped), split by animal.
  EXPECT_EQ(d->animals(), (std::vector<std::string>{"Chabo", "Tito"}));
  const Session* chabo = d->session("Chabo", "s1");
  ASSERT_NE(chabo, nullptr);
  EXPECT_EQ(chabo->neuron_ids, (std::vector<std::string>{"Chabo_L_M_5_9", "Chabo_L_M_6_9"}));
  EXPECT_EQ(chabo->value_kind, "rates");
  EXPECT_EQ(chabo->t_start_ms, 70);
  EXPECT_EQ(chabo->t_stop_ms, 170);
  const Session* tito = d->session("Tito", "s1");
  ASSERT_NE(tito, nullptr);
  // Values: mean over time bins of 10 * img + j + 0.5 t = 10 * img + j + 0.25, with the
  // image found by id: a positional match would break this.
  const auto order = BrainScoreFixture::presentation_images();
  ASSERT_EQ(tito->num_presentations(), order.size());
  for (size_t p = 0; p < order.size(); ++p) {
    const int img = image_number(d->stimulus_ids[tito->image_index[p]]);
    EXPECT_EQ(img, order[p]);
    EXPECT_FLOAT_EQ(tito->counts.data[p * 2 + 0], 10.f * img + 3 + 0.25f);
    EXPECT_FLOAT_EQ(chabo->counts.data[p * 2 + 1], 10.f * img + 1 + 0.25f);
  }
  // Factors, standard names and roles; HvM ty/tz become tx/ty.
  const Factor* cat = d->factor("category");
  ASSERT_NE(cat, nullptr);
  EXPECT_EQ(cat->role, "category");
  EXPECT_EQ(cat->classes, (std::vector<std::string>{"Animals", "Cars", "Faces"}));
  EXPECT_EQ(cat->classes[static_cast<size_t>(cat->values[0])], "Faces");  // img5
  ASSERT_NE(d->factor("object"), nullptr);
  EXPECT_EQ(d->factor("object")->role, "identity");
  ASSERT_NE(d->factor("rxy"), nullptr);
  EXPECT_FLOAT_EQ(d->factor("rxy")->values[1], 20.f);  // img2
  EXPECT_EQ(d->factor("size")->role, "size");
  EXPECT_FLOAT_EQ(d->factor("tx")->values[1], 0.02f);   // ty of img2
  EXPECT_FLOAT_EQ(d->factor("ty")->values[1], -0.04f);  // tz of img2
  EXPECT_EQ(d->factor("tx")->role, "position");
  ASSERT_NE(d->factor("background_id"), nullptr);  // from the stimulus-set CSV
  EXPECT_FLOAT_EQ(d->factor("background_id")->values[0], 15.f);
  EXPECT_EQ(d->factor("repetition"), nullptr);
}

TEST(BrainScoreImportTest, OptionsTimeBinRegionAnimalAndResize) {
  testing::TempDir tmp;
  auto fx = testing::make_brainscore(tmp.path());
  auto o = bs_options(fx);
  o.time_bin = 1;
  o.region = "";
  o.animal = "Chabo";
  o.image_size_px = 4;
  o.session = "day 1";
  auto d = import_brainscore(o);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->animals(), (std::vector<std::string>{"Chabo"}));
  const Session* s = d->session("Chabo", "day_1");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->num_neurons(), 3u);  // V4 kept when region = ""
  EXPECT_EQ(s->t_start_ms, 120);
  const int img = image_number(d->stimulus_ids[s->image_index[0]]);
  EXPECT_FLOAT_EQ(s->counts.data[2], 10.f * img + 2 + 0.5f);
  EXPECT_EQ(d->images.shape, (std::vector<hsize_t>{6, 1, 4, 4}));
}

TEST(BrainScoreImportTest, WithoutDimensionScalesUsesTheDocumentedOrder) {
  testing::TempDir tmp;
  auto fx = testing::make_brainscore(tmp.path(), BsVariant::kNoDimensionScales);
  auto d = import_brainscore(bs_options(fx));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->session("Tito", "s1")->num_neurons(), 2u);
}

TEST(BrainScoreImportTest, MalformedInputsGiveClearErrors) {
  struct Case { BsVariant v; std::vector<std::string> want; };
  for (const Case& c : {Case{BsVariant::kMissingStimulusId, {"assembly.nc:/stimulus_id", "missing presentation coordinate"}},
                        Case{BsVariant::kUnknownId, {"'img99'", "no row in", "stimulus_set.csv"}},
                        Case{BsVariant::kStimulusIdRank2, {"assembly.nc:/stimulus_id", "expected a 1-D coordinate", "found rank 2"}}}) {
    testing::TempDir tmp;
    auto fx = testing::make_brainscore(tmp.path(), c.v);
    auto d = import_brainscore(bs_options(fx));
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    for (auto& w : c.want) EXPECT_NE(d.status().message().find(w), std::string::npos) << d.status().message();
  }
  testing::TempDir tmp;
  auto fx = testing::make_brainscore(tmp.path());
  auto o = bs_options(fx);
  o.region = "V1";
  auto d = import_brainscore(o);
  EXPECT_NE(d.status().message().find("regions found: IT, V4"), std::string::npos) << d.status().message();
  o = bs_options(fx);
  o.stimuli_csv.clear();
  EXPECT_NE(import_brainscore(o).status().message().find("--stimuli"), std::string::npos);
  fs::remove(fx.image_dir / "img4.png");
  d = import_brainscore(bs_options(fx));
  EXPECT_NE(d.status().message().find("img4.png"), std::string::npos) << d.status().message();
}

TEST(NwbImportTest, BinsSpikesPerPresentationWindow) {
  testing::TempDir tmp;
  auto fx = testing::make_nwb(tmp.path());
  ImportOptions o;
  o.format = "nwb";
  o.input = fx.path;
  auto d = import_dataset(o);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->images.shape, (std::vector<hsize_t>{5, 1, 4, 6}));
  EXPECT_NEAR(d->images.data[24 * 2], 100.f / 255, 1e-6);  // uint8 pixels scaled to [0, 1]
  ASSERT_EQ(d->sessions.size(), 1u);
  const Session& s = d->sessions[0];
  EXPECT_EQ(s.animal, "monkey_M");
  EXPECT_EQ(s.name, "day_3");
  EXPECT_EQ(s.neuron_ids, (std::vector<std::string>{"101", "102", "103"}));
  EXPECT_EQ(s.value_kind, "counts");
  for (int p = 0; p < NwbFixture::kPresentations; ++p) {
    EXPECT_EQ(s.image_index[p], NwbFixture::image_of(p));
    for (int u = 0; u < NwbFixture::kUnits; ++u)
      EXPECT_EQ(s.counts.data[p * 3 + u], NwbFixture::count(p, u)) << "presentation " << p << " unit " << u;
  }
  ASSERT_NE(d->factor("category"), nullptr);
  EXPECT_EQ(d->factor("category")->classes, (std::vector<std::string>{"cars", "faces"}));
  EXPECT_FLOAT_EQ(d->factor("rxy")->values[4], 60.f);
  // A wider window catches the spikes at 20 and 300 ms too.
  o.t_start_ms = 0;
  o.t_stop_ms = 400;
  d = import_dataset(o);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sessions[0].counts.data[0], NwbFixture::count(0, 0) + 2);
}

TEST(NwbImportTest, MalformedInputsGiveClearErrors) {
  struct Case { NwbVariant v; std::vector<std::string> want; };
  for (const Case& c : {Case{NwbVariant::kIndexOutOfRange, {"session.nwb:/units/spike_times_index", "entry 2", "out of range"}},
                        Case{NwbVariant::kImageIndexOutOfRange, {"/intervals/presentations/image_index", "presentation 3", "[0, 5)"}},
                        Case{NwbVariant::kMissingSpikeTimes, {"session.nwb:/units/spike_times", "missing"}}}) {
    testing::TempDir tmp;
    auto fx = testing::make_nwb(tmp.path(), c.v);
    ImportOptions o;
    o.format = "nwb";
    o.input = fx.path;
    auto d = import_dataset(o);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    for (auto& w : c.want) EXPECT_NE(d.status().message().find(w), std::string::npos) << d.status().message();
  }
}

TEST(Hdf5ImportTest, CopiesAValidDatasetAndRejectsOtherFiles) {
  testing::TempDir tmp;
  SynthOptions so;
  so.preset = "tiny";
  auto syn = synthesize(so);
  ASSERT_TRUE(syn.ok());
  ASSERT_TRUE(write_dataset(*syn, tmp / "in.h5").ok());
  ImportOptions o;
  o.format = "hdf5";
  o.input = tmp / "in.h5";
  auto d = import_dataset(o);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->images.data, syn->images.data);
  EXPECT_EQ(d->source, syn->source);
  ASSERT_TRUE(d->truth.has_value());
  o.input = testing::make_nwb(tmp.path()).path;
  d = import_dataset(o);
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("format"), std::string::npos);
  o.format = "matlab";
  EXPECT_NE(import_dataset(o).status().message().find("brainscore, nwb or hdf5"), std::string::npos);
}

}  // namespace
}  // namespace migvis::data
