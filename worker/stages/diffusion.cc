// Stage `diffusion`: trains the image DDPM of shared/MIGVIS_METHOD.md "Stage 2"
// on the stimuli of inputs.dataset and writes (rank 0):
//   model.pt      EMA UNet weights (torch::save of the module)
//   out.h5        /config attrs, /samples float32 [n, C, H, W] in [0, 1] (DDIM),
//                 /curves/loss float64 [n, 2] (step, mean loss of the window),
//                 /judge_heldout (the stimuli it did not train on, inputs.h)
//   samples.png   grid of the samples
// Params (all optional; unknown keys are rejected):
//   width, mults, image_size (default: the dataset's), attn_heads, attn_dim_head,
//   timesteps, schedule, objective, min_snr_gamma,
//   steps, batch, grad_accum, lr, beta1, beta2, grad_clip, ema_decay, ema_every,
//   log_every, checkpoint_every, sample_count, sample_steps, sample_eta,
//   precision (fp32 | bf16 | fp16; bf16/fp16 need a CUDA device),
//   judge_holdout (fraction of stimuli left to the eval judges; inputs.h).
// Everything computes on ctx.device (training, EMA, DDIM samples); model.pt is
// written from the CPU so it loads on any node.
#include <chrono>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "common/log.h"
#include "results/dataset_io.h"
#include "results/h5.h"
#include "results/png.h"
#include "worker/checkpoint.h"
#include "worker/comm.h"
#include "worker/diffusion/sampler.h"
#include "worker/diffusion/train.h"
#include "worker/stages/diffusion.h"
#include "worker/stages/inputs.h"

namespace migvis::worker {

namespace {

using namespace diffusion;

struct StageParams {
  UNetOptions unet;
  ScheduleOptions schedule;
  TrainOptions train;
  int64_t image_size = 0;  // 0: the dataset's
  int64_t checkpoint_every = 500;
  int64_t sample_count = 16;
  int64_t sample_steps = 50;
  double sample_eta = 0.0;
  double judge_holdout = kDefaultJudgeHoldout;  // the eval judges' stimuli, never trained on
  int64_t n_images = 0;                         // the dataset's
};

Result<StageParams> parse_params(const schema::JobSpec& spec) {
  schema::Params p(spec.params, (fs::path(spec.job_id) / schema::kJobFile).string());
  MIGVIS_RETURN_IF_ERROR(p.check_known({"width", "mults", "image_size", "attn_heads", "attn_dim_head", "timesteps",
                                        "schedule", "objective", "min_snr_gamma", "steps", "batch", "grad_accum",
                                        "lr", "beta1", "beta2", "grad_clip", "ema_decay", "ema_every", "log_every",
                                        "checkpoint_every", "sample_count", "sample_steps", "sample_eta", "precision",
                                        "judge_holdout"}));
  StageParams s;
  MIGVIS_ASSIGN_OR_RETURN(s.unet.width, p.get_int("width", s.unet.width));
  MIGVIS_ASSIGN_OR_RETURN(s.unet.mults, p.get_ints("mults", s.unet.mults));
  MIGVIS_ASSIGN_OR_RETURN(s.image_size, p.get_int("image_size", 0));
  MIGVIS_ASSIGN_OR_RETURN(s.unet.attn_heads, p.get_int("attn_heads", s.unet.attn_heads));
  MIGVIS_ASSIGN_OR_RETURN(s.unet.attn_dim_head, p.get_int("attn_dim_head", s.unet.attn_dim_head));
  MIGVIS_ASSIGN_OR_RETURN(s.schedule.timesteps, p.get_int("timesteps", s.schedule.timesteps));
  MIGVIS_ASSIGN_OR_RETURN(std::string sched, p.get_string("schedule", to_string(s.schedule.schedule)));
  MIGVIS_ASSIGN_OR_RETURN(std::string obj, p.get_string("objective", to_string(s.schedule.objective)));
  auto bs = parse_beta_schedule(sched);
  if (!bs.ok()) return bs.status().with_context("job.yaml: params");
  auto ob = parse_objective(obj);
  if (!ob.ok()) return ob.status().with_context("job.yaml: params");
  s.schedule.schedule = *bs;
  s.schedule.objective = *ob;
  MIGVIS_ASSIGN_OR_RETURN(s.schedule.min_snr_gamma, p.get_double("min_snr_gamma", s.schedule.min_snr_gamma));
  TrainOptions& t = s.train;
  MIGVIS_ASSIGN_OR_RETURN(t.steps, p.get_int("steps", t.steps));
  MIGVIS_ASSIGN_OR_RETURN(t.batch, p.get_int("batch", t.batch));
  MIGVIS_ASSIGN_OR_RETURN(t.grad_accum, p.get_int("grad_accum", t.grad_accum));
  MIGVIS_ASSIGN_OR_RETURN(t.lr, p.get_double("lr", t.lr));
  MIGVIS_ASSIGN_OR_RETURN(t.beta1, p.get_double("beta1", t.beta1));
  MIGVIS_ASSIGN_OR_RETURN(t.beta2, p.get_double("beta2", t.beta2));
  MIGVIS_ASSIGN_OR_RETURN(t.grad_clip, p.get_double("grad_clip", t.grad_clip));
  MIGVIS_ASSIGN_OR_RETURN(t.ema_decay, p.get_double("ema_decay", t.ema_decay));
  MIGVIS_ASSIGN_OR_RETURN(t.ema_every, p.get_int("ema_every", t.ema_every));
  MIGVIS_ASSIGN_OR_RETURN(t.log_every, p.get_int("log_every", t.log_every));
  MIGVIS_ASSIGN_OR_RETURN(s.checkpoint_every, p.get_int("checkpoint_every", s.checkpoint_every));
  MIGVIS_ASSIGN_OR_RETURN(s.sample_count, p.get_int("sample_count", s.sample_count));
  // Default: 50 DDIM steps, or every step of a shorter schedule.
  MIGVIS_ASSIGN_OR_RETURN(s.sample_steps,
                          p.get_int("sample_steps", std::min<int64_t>(s.sample_steps, s.schedule.timesteps)));
  MIGVIS_ASSIGN_OR_RETURN(s.sample_eta, p.get_double("sample_eta", s.sample_eta));
  MIGVIS_ASSIGN_OR_RETURN(std::string precision, p.get_string("precision", "fp32"));
  auto pr = parse_precision(precision);
  if (!pr.ok()) return pr.status().with_context("job.yaml: params.precision");
  t.precision = *pr;
  MIGVIS_ASSIGN_OR_RETURN(s.judge_holdout, read_judge_holdout(p));
  t.seed = spec.seed;
  if (s.checkpoint_every < 0) return Status::InvalidArgument("job.yaml: params.checkpoint_every: expected >= 0");
  if (s.sample_count < 0 || s.sample_steps < 1 || s.sample_steps > s.schedule.timesteps)
    return Status::InvalidArgument(fmt::format(
        "job.yaml: params.sample_count >= 0 and params.sample_steps in [1, timesteps = {}] expected",
        s.schedule.timesteps));
  MIGVIS_RETURN_IF_ERROR(NoiseSchedule::validate(s.schedule).with_context("job.yaml: params"));
  return s;
}

// Dataset images [N, C, H, W] in [0, 1] -> the critic/diffusion part of the
// judge split (inputs.h) -> this rank's shard, resized, in [-1, 1].
Result<torch::Tensor> load_images(const fs::path& path, int64_t size, int rank, int ranks, const JudgeSplit& split) {
  data::ReadOptions ro;
  ro.sessions = false;
  MIGVIS_ASSIGN_OR_RETURN(data::Dataset d, data::read_dataset(path, ro));
  const auto& a = d.images;
  if (a.rank() != 4 || a.numel() == 0)
    return Status::InvalidArgument(path.string() + ":/stimuli/images: expected a non-empty [N, C, H, W] array");
  std::vector<int64_t> shape(a.shape.begin(), a.shape.end());
  const int64_t n_train = static_cast<int64_t>(split.critic.size());
  if (n_train < ranks)
    return Status::InvalidArgument(fmt::format("{}: {} images (of {}, judge_holdout {:g}) cannot be split over {} ranks",
                                               path.string(), n_train, shape[0], split.fraction, ranks));
  auto train_index = torch::tensor(split.critic, torch::kLong).index_select(0, torch::arange(rank, n_train, ranks));
  torch::Tensor x = torch::from_blob(const_cast<float*>(a.data.data()), shape, torch::kFloat)
                        .index_select(0, train_index);  // copies this rank's shard
  if (x.size(2) != size || x.size(3) != size) {
    namespace F = torch::nn::functional;
    bool down = x.size(2) >= size && x.size(3) >= size;
    auto o = F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size});
    x = down ? F::interpolate(x, o.mode(torch::kArea)) : F::interpolate(x, o.mode(torch::kBilinear).align_corners(false));
  }
  return (x.clamp(0, 1) * 2 - 1).contiguous();
}

h5::Array<float> to_array(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kFloat).contiguous();
  std::vector<hsize_t> shape(c.sizes().begin(), c.sizes().end());
  return h5::Array<float>(shape, std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
}

Status write_outputs(const StageContext& ctx, const StageParams& sp, DiffusionTrainer& tr, const NoiseSchedule& s) {
  // DDIM samples from the EMA model on the job's device, fixed seed; the noise
  // is drawn on the CPU (the same numbers on any device) and moved.
  torch::Tensor samples;
  if (sp.sample_count > 0) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(sp.train.seed ^ 0x5A5A5A5Aull);
    torch::Tensor xT = torch::randn({sp.sample_count, sp.unet.channels, sp.unet.image_size, sp.unet.image_size}, gen,
                                    torch::kFloat)
                           .to(stage_device(ctx));
    DdimOptions o;
    o.steps = sp.sample_steps;
    o.eta = sp.sample_eta;
    samples = ((ddim_sample(s, unet_eps_fn(tr.ema(), s), xT, o, gen) + 1) * 0.5).clamp(0, 1).cpu();  // [n, C, H, W]
  }
  // model.pt from the CPU, so it loads anywhere (synthesis may run on a CPU-only node).
  tr.ema()->to(torch::kCPU);
  // model.pt
  fs::path pt = ctx.dir / "model.pt";
  {
    AtomicPath tmp(pt);
    try {
      torch::save(tr.ema(), tmp.temp().string());
    } catch (const c10::Error& e) {
      return Status::Unavailable(pt.string() + ": cannot write: " + e.what_without_backtrace());
    }
    MIGVIS_RETURN_IF_ERROR(tmp.commit());
  }
  // out.h5
  MIGVIS_ASSIGN_OR_RETURN(auto af, h5::AtomicFile::create(ctx.dir / schema::kOutFile));
  h5::File& f = af->file();
  MIGVIS_RETURN_IF_ERROR(write_diffusion_config(f, sp.unet, sp.schedule));
  if (samples.defined()) MIGVIS_RETURN_IF_ERROR(f.write("samples", to_array(samples)));
  const auto& curve = tr.loss_curve();
  h5::Array<double> c({static_cast<hsize_t>(curve.size()), 2});
  for (size_t i = 0; i < curve.size(); ++i) {
    c.data[2 * i] = static_cast<double>(curve[i].first);
    c.data[2 * i + 1] = curve[i].second;
  }
  MIGVIS_RETURN_IF_ERROR(f.write("curves/loss", c));
  MIGVIS_RETURN_IF_ERROR(write_judge_split(f, judge_split(sp.n_images, sp.judge_holdout), sp.n_images));
  MIGVIS_RETURN_IF_ERROR(af->commit());
  ctx.result->artifacts.push_back({"model", "model.pt", ""});
  ctx.result->artifacts.push_back({"config", schema::kOutFile, "/config"});
  ctx.result->artifacts.push_back({"curve", schema::kOutFile, "/curves/loss"});
  if (samples.defined()) {
    ctx.result->artifacts.push_back({"samples", schema::kOutFile, "/samples"});
    int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(sp.sample_count))));
    int rows = static_cast<int>((sp.sample_count + cols - 1) / cols);
    int scale = sp.unet.image_size < 64 ? 2 : 1;
    if (sp.unet.channels == 1 || sp.unet.channels == 3) {
      MIGVIS_RETURN_IF_ERROR(png::write_png_grid(ctx.dir / "samples.png", to_array(samples), rows, cols, 1, scale));
      ctx.result->artifacts.push_back({"grid", "samples.png", ""});
    }
  }
  if (!curve.empty()) ctx.result->metrics["final_loss"] = curve.back().second;
  ctx.result->metrics["unet_params"] = static_cast<double>(tr.model()->num_parameters());
  if (sp.train.precision == Precision::kFp16) ctx.result->metrics["skipped_steps"] = static_cast<double>(tr.skipped_steps());
  return Status::Ok();
}

}  // namespace

Status run_diffusion_stage(StageContext& ctx) {
  MIGVIS_ASSIGN_OR_RETURN(StageParams sp, parse_params(ctx.spec));
  auto in = ctx.spec.inputs.find("dataset");
  if (in == ctx.spec.inputs.end())
    return Status::InvalidArgument("job.yaml: inputs.dataset: missing (the diffusion stage trains on its images)");
  Communicator& comm = *ctx.comm;
  sp.train.device = ctx.device;  // decided once per job by the worker (cuda:N when asked for and present)
  MIGVIS_RETURN_IF_ERROR(sp.train.validate(comm.size()).with_context("job.yaml: params"));

  // The image size defaults to the dataset's; read its shape first.
  if (sp.image_size == 0) {
    MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(in->second));
    MIGVIS_ASSIGN_OR_RETURN(auto shape, f.shape("stimuli/images"));
    if (shape.size() != 4) return Status::InvalidArgument(f.where("stimuli/images") + ": expected rank 4");
    sp.image_size = static_cast<int64_t>(shape[2]);
  }
  sp.unet.image_size = sp.image_size;
  {
    MIGVIS_ASSIGN_OR_RETURN(auto f, h5::File::open(in->second));
    MIGVIS_ASSIGN_OR_RETURN(auto ds_shape, f.shape("stimuli/images"));
    if (ds_shape.empty()) return Status::InvalidArgument(f.where("stimuli/images") + ": expected rank 4");
    sp.n_images = static_cast<int64_t>(ds_shape[0]);
  }
  const JudgeSplit split = judge_split(sp.n_images, sp.judge_holdout);
  MIGVIS_ASSIGN_OR_RETURN(torch::Tensor images, load_images(in->second, sp.image_size, comm.rank(), comm.size(), split));
  sp.unet.channels = images.size(1);
  MIGVIS_RETURN_IF_ERROR(sp.unet.validate().with_context("job.yaml: params"));

  NoiseSchedule schedule(sp.schedule);
  DiffusionTrainer tr(sp.unet, schedule, sp.train, images, &comm);
  record_model_device(ctx, "unet", *tr.model());
  record_model_device(ctx, "ema", *tr.ema());
  Checkpointer ck(ctx.dir);
  MIGVIS_ASSIGN_OR_RETURN(bool resumed, tr.restore(ck));
  if (resumed) MIGVIS_LOG_INFO("diffusion: resumed at step {}", tr.step());
  MIGVIS_LOG_INFO("diffusion: UNet {} params, {} images of {}x{}x{} on rank {}, {} steps", tr.model()->num_parameters(),
                  images.size(0), images.size(1), images.size(2), images.size(3), comm.rank(), sp.train.steps);

  auto last_progress = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto progress = [&](const std::string& phase, bool force) -> Status {
    auto now = std::chrono::steady_clock::now();
    if (!comm.is_root() || (!force && now - last_progress < std::chrono::seconds(5))) return Status::Ok();
    last_progress = now;
    schema::Progress p;
    p.step = tr.step();
    p.total_steps = sp.train.steps;
    p.phase = phase;
    p.updated_at = schema::utc_now_iso8601();
    return schema::write_progress(p, ctx.dir);
  };
  MIGVIS_RETURN_IF_ERROR(progress("train", true));
  while (tr.step() < sp.train.steps) {
    MIGVIS_ASSIGN_OR_RETURN(double loss, tr.train_step());
    if (tr.step() % sp.train.log_every == 0) MIGVIS_LOG_DEBUG("diffusion step {} loss {:.5f}", tr.step(), loss);
    if (sp.checkpoint_every > 0 && tr.step() % sp.checkpoint_every == 0 && tr.step() < sp.train.steps)
      MIGVIS_RETURN_IF_ERROR(tr.save(ck));
    if (ctx.should_stop()) {
      MIGVIS_RETURN_IF_ERROR(tr.save(ck));
      return Status::Cancelled(fmt::format("diffusion: stopped on request at step {} (checkpoint saved)", tr.step()));
    }
    MIGVIS_RETURN_IF_ERROR(progress("train", false));
  }
  MIGVIS_RETURN_IF_ERROR(progress("sample", true));
  if (!comm.is_root()) return Status::Ok();
  MIGVIS_RETURN_IF_ERROR(write_outputs(ctx, sp, tr, schedule));
  return progress("done", true);
}

}  // namespace migvis::worker
