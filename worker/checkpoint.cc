#include "worker/checkpoint.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

namespace migvis::worker {

Checkpointer::Checkpointer(fs::path job_dir, int keep_last)
    : dir_(std::move(job_dir) / "ckpt"), keep_last_(std::max(1, keep_last)) {}

std::optional<int64_t> Checkpointer::latest_step() const {
  auto txt = read_file(dir_ / "latest");
  if (!txt.ok()) return std::nullopt;
  try {
    return std::stoll(*txt);
  } catch (...) {
    return std::nullopt;
  }
}

Status Checkpointer::save(const CheckpointState& state) {
  MIGVIS_RETURN_IF_ERROR(make_dirs(dir_));
  fs::path dest = dir_ / fmt::format("step_{}.pt", state.step);
  AtomicPath tmp(dest);
  try {
    torch::serialize::OutputArchive ar;
    ar.write("step", torch::tensor(state.step, torch::kInt64));
    for (auto& [name, m] : state.modules) {
      torch::serialize::OutputArchive sub;
      m->save(sub);
      ar.write("module." + name, sub);
    }
    for (auto& [name, o] : state.optimizers) {
      torch::serialize::OutputArchive sub;
      o->save(sub);
      ar.write("optim." + name, sub);
    }
    for (auto& [name, t] : state.tensors) ar.write("tensor." + name, t);
    ar.save_to(tmp.temp().string());
  } catch (const c10::Error& e) {
    return Status::IoError(dest.string() + ": cannot save checkpoint: " + e.what_without_backtrace());
  }
  MIGVIS_RETURN_IF_ERROR(tmp.commit());
  MIGVIS_RETURN_IF_ERROR(write_file_atomic(dir_ / "latest", std::to_string(state.step) + "\n"));
  // Remove older checkpoints beyond keep_last_.
  std::vector<std::pair<int64_t, fs::path>> files;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir_, ec)) {
    auto name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && e.path().extension() == ".pt") {
      try {
        files.push_back({std::stoll(name.substr(5)), e.path()});
      } catch (...) {
      }
    }
  }
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i + keep_last_ < files.size(); ++i) fs::remove(files[i].second, ec);
  return Status::Ok();
}

Result<bool> Checkpointer::restore_latest(CheckpointState* state) {
  auto step = latest_step();
  if (!step) return false;
  fs::path src = dir_ / fmt::format("step_{}.pt", *step);
  if (!fs::exists(src)) return Status::DataLoss(src.string() + ": named by ckpt/latest but missing");
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(src.string());
    torch::Tensor s;
    ar.read("step", s);
    state->step = s.item<int64_t>();
    for (auto& [name, m] : state->modules) {
      torch::serialize::InputArchive sub;
      ar.read("module." + name, sub);
      m->load(sub);
    }
    for (auto& [name, o] : state->optimizers) {
      torch::serialize::InputArchive sub;
      ar.read("optim." + name, sub);
      o->load(sub);
    }
    for (auto& [name, t] : state->tensors) {
      torch::Tensor v;
      ar.read("tensor." + name, v);
      t = v;
    }
  } catch (const c10::Error& e) {
    return Status::DataLoss(src.string() + ": cannot load checkpoint: " + e.what_without_backtrace());
  }
  return true;
}

}  // namespace migvis::worker
