// Runs the five worker stages (vae -> diffusion -> critic -> synthesis -> eval)
// in this process on a toy dataset, each stage on a given device, and returns
// what they placed where. Shared by the device test (tiny models, CPU and CUDA)
// and the paper-scale test (sweeps/paper.yaml's model sizes).
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include "results/dataset_io.h"
#include "schemas/job_spec.h"
#include "tests/worker/toy_dataset.h"
#include "worker/comm.h"
#include "worker/stages/stage.h"

namespace migvis::testing {

struct ChainConfig {
  std::string device = "cpu";  // ctx.device of every stage
  int n_images = 24;
  int image_px = 16;           // the toy's 8 x 8 images resized to this
  // job.yaml params of each stage (YAML flow maps).
  std::string vae = "{groups: 2, group_rank: 2, hidden: 8, epochs: 1, batch: 8, eval_every: 1, eval_pairs: 50}";
  std::string diffusion = "{width: 8, mults: [1, 2], attn_heads: 1, attn_dim_head: 8, timesteps: 20, steps: 2, "
                          "batch: 4, grad_accum: 1, sample_count: 2, sample_steps: 2, checkpoint_every: 0}";
  std::string critic = "{epochs: 1, batch: 8, negatives: 2, width: 4, feature_dim: 8, embed_dim: 4}";
  std::string synthesis = "{groups: [1, 2], gammas: [0, 10], pairs: 1, seeds: 1, edit_t: 10, steps: 2, negatives: 2}";
  std::string eval = "{epochs: 1, batch: 8, width: 4, min_readout: -100}";
};

struct StageRun {
  Status status;
  schema::JobResult result;
  std::map<std::string, std::string> model_devices;
};

// Runs the chain under `root`; stops at the first failing stage (its status says why).
inline std::map<std::string, StageRun> run_chain(const fs::path& root, const ChainConfig& c) {
  ToyOptions to;
  to.n_images = c.n_images;
  data::Dataset d = make_toy_dataset(to);
  if (c.image_px != static_cast<int>(d.images.dim(2))) {
    auto& a = d.images;
    std::vector<int64_t> shape(a.shape.begin(), a.shape.end());
    auto x = torch::from_blob(a.data.data(), shape, torch::kFloat32);
    auto y = torch::nn::functional::interpolate(
                 x, torch::nn::functional::InterpolateFuncOptions()
                        .size(std::vector<int64_t>{c.image_px, c.image_px})
                        .mode(torch::kBilinear)
                        .align_corners(false))
                 .clamp(0, 1)
                 .contiguous();
    a = h5::Array<float>({a.dim(0), a.dim(1), static_cast<hsize_t>(c.image_px), static_cast<hsize_t>(c.image_px)},
                         std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel()));
  }
  fs::create_directories(root);
  const fs::path ds = root / "dataset.h5";
  std::map<std::string, StageRun> runs;
  Status ws = data::write_dataset(d, ds);
  if (!ws.ok()) {
    runs["data"].status = ws;
    return runs;
  }
  const std::vector<std::pair<std::string, std::string>> order = {
      {"vae", c.vae}, {"diffusion", c.diffusion}, {"critic", c.critic}, {"synthesis", c.synthesis}, {"eval", c.eval}};
  worker::SingleProcessCommunicator comm;
  for (auto& [stage, params] : order) {
    worker::StageContext ctx;
    ctx.spec.job_id = "chain-" + stage;
    ctx.spec.stage = stage;
    ctx.spec.seed = 5;
    ctx.spec.key = {{"animal", "a1"}, {"session", "pooled"}};
    ctx.spec.params = YAML::Load(params);
    ctx.spec.inputs["dataset"] = ds.string();
    for (const char* up : {"vae", "diffusion", "critic", "synthesis"})
      if (fs::exists(root / up / "out.h5")) ctx.spec.inputs[up] = (root / up).string();
    ctx.spec.resources.gpus = c.device == "cpu" ? 0 : 1;
    ctx.dir = root / stage;
    fs::create_directories(ctx.dir);
    ctx.device = c.device;
    ctx.comm = &comm;
    StageRun& r = runs[stage];
    ctx.result = &r.result;
    auto fn = worker::find_stage(stage);
    try {
      r.status = fn.ok() ? (*fn)(ctx) : fn.status();
    } catch (const std::exception& e) {
      r.status = Status::Internal(stage + ": " + e.what());
    }
    r.model_devices = ctx.model_devices;
    if (!r.status.ok()) break;
  }
  return runs;
}

}  // namespace migvis::testing
