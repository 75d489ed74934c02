#include "run/checkpoint.h"

#include <torch/torch.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/fs_tree.h"
#include "io/safetensors.h"
#include "run/manifest.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

std::string resolve_model_dir(const std::string& path) {
  if (!fs::exists(path)) fail("model path " + path + " does not exist");
  for (auto p : {fs::path(path), fs::path(path) / "checkpoint", fs::path(path) / "checkpoint.old"})
    if (fs::exists(p / "model.safetensors") && fs::exists(p / "config.json")) return p.string();
  fail("model path " + path + " holds no model (expected model.safetensors and config.json in it or in " +
       path + "/checkpoint)");
}

void save_weights(const std::string& path, ByteLM& model, const std::map<std::string, std::string>& meta) {
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (auto& kv : model.named_parameters()) ts.emplace_back(kv.key(), kv.value().detach());
  io::save_safetensors(path, ts, meta);
}

void load_weights(const std::string& path, ByteLM& model) {
  io::SafetensorsFile f;
  try {
    f = io::load_safetensors(path);
  } catch (const io::SafetensorsError& e) {
    fail(e.what());
  }
  torch::NoGradGuard ng;
  auto params = model.named_parameters();
  for (auto& kv : params) {
    auto it = f.tensors.find(kv.key());
    if (it == f.tensors.end()) fail(path + ": missing tensor " + kv.key());
    if (it->second.sizes() != kv.value().sizes())
      fail(path + ": tensor " + kv.key() + " has shape " + c10::str(it->second.sizes()) + ", the config expects " +
           c10::str(kv.value().sizes()));
    // copy_ would convert silently: an I32 relabelling of F32 bytes loads as garbage.
    if (it->second.scalar_type() != kv.value().scalar_type())
      fail(path + ": tensor " + kv.key() + " is declared " + io::dtype_name(it->second.scalar_type()) +
           ", the model expects " + io::dtype_name(kv.value().scalar_type()));
    kv.value().copy_(it->second);
  }
  for (auto& name : f.order)
    if (!params.contains(name)) fail(path + ": unexpected tensor " + name + " (config and weights disagree)");
}

int64_t init_weights_from(const std::string& path, ByteLM& model, std::vector<std::string>* kept) {
  const std::string file = fs::is_directory(path) ? (fs::path(resolve_model_dir(path)) / "model.safetensors").string()
                                                  : path;
  if (!fs::exists(file)) fail("--init-from: " + path + " does not exist");
  io::SafetensorsFile f;
  try {
    f = io::load_safetensors(file);
  } catch (const io::SafetensorsError& e) {
    fail(e.what());
  }
  torch::NoGradGuard ng;
  int64_t copied = 0;
  for (auto& kv : model.named_parameters()) {
    auto it = f.tensors.find(kv.key());
    if (it == f.tensors.end()) {
      if (kept) kept->push_back(kv.key());
      continue;
    }
    if (it->second.sizes() != kv.value().sizes())
      fail("--init-from " + file + ": tensor " + kv.key() + " has shape " + c10::str(it->second.sizes()) +
           ", the config expects " + c10::str(kv.value().sizes()));
    kv.value().copy_(it->second);
    ++copied;
  }
  if (copied == 0) fail("--init-from " + file + ": no tensor of this model is in it (another architecture?)");
  return copied;
}

std::shared_ptr<ByteLM> load_model(const std::string& path, c10::Device device) {
  auto dir = resolve_model_dir(path);
  verify_manifest(dir, {"config.json", "model.safetensors"});
  auto cfg = ModelConfig::from_file((fs::path(dir) / "config.json").string());
  auto model = std::make_shared<ByteLM>(cfg);
  load_weights((fs::path(dir) / "model.safetensors").string(), *model);
  if (device != model->device()) model->to(device);
  return model;
}

namespace {
// Test hook for tests/soak_resume.sh: DYNARCH_KILL_IN_SAVE="STEP:PHASE" makes the
// save of step STEP kill its own process (SIGKILL, as kill -9 would) at PHASE,
// so every instant of the swap below is proven to leave a resumable run.
void kill_point(int64_t step, int phase) {
  static const char* spec = std::getenv("DYNARCH_KILL_IN_SAVE");
  if (spec && std::to_string(step) + ":" + std::to_string(phase) == spec) ::raise(SIGKILL);
}
}  // namespace

void save_checkpoint(const std::string& run_dir, ByteLM& model, const NamedTensors& optimizer, const json& trainer,
                     const json& options) {
  fs::path run(run_dir), tmp = run / "checkpoint.tmp", cur = run / "checkpoint", old = run / "checkpoint.old";
  const int64_t step = trainer.at("step").get<int64_t>();
  io::remove_tree(tmp.string());
  io::make_dirs(tmp.string());
  io::write_file_atomic((tmp / "config.json").string(), model.config.to_json().dump(2) + "\n");
  io::write_file_atomic((tmp / "train_options.json").string(), options.dump(2) + "\n");
  kill_point(step, 1);
  save_weights((tmp / "model.safetensors").string(), model, {{"step", trainer.at("step").dump()}});
  kill_point(step, 2);
  io::save_safetensors((tmp / "trainer.safetensors").string(), optimizer, {{"trainer", trainer.dump()}});
  write_manifest(tmp.string(), {"config.json", "train_options.json", "model.safetensors", "trainer.safetensors"});
  kill_point(step, 3);
  // Swap: cur -> old, tmp -> cur, drop old. Readers fall back to old if cur is missing.
  io::remove_tree(old.string());
  if (fs::exists(cur)) fs::rename(cur, old);
  kill_point(step, 4);
  fs::rename(tmp, cur);
  kill_point(step, 5);
  io::remove_tree(old.string());
}

TrainerCheckpoint load_trainer_checkpoint(const std::string& run_dir) {
  fs::path dir = fs::path(run_dir) / "checkpoint";
  if (!fs::exists(dir / "trainer.safetensors")) dir = fs::path(run_dir) / "checkpoint.old";
  if (!fs::exists(dir / "trainer.safetensors"))
    fail("cannot resume: " + run_dir + " has no checkpoint/trainer.safetensors");
  verify_manifest(dir.string(), {"trainer.safetensors", "train_options.json"});
  TrainerCheckpoint c;
  try {
    auto f = io::load_safetensors((dir / "trainer.safetensors").string());
    c.optim = f.tensors;
    c.trainer = json::parse(f.metadata.at("trainer"));
    c.options = json::parse(io::read_file((dir / "train_options.json").string()));
  } catch (const io::SafetensorsError& e) {
    fail(e.what());
  } catch (const std::exception& e) {
    fail("cannot resume from " + dir.string() + ": " + e.what());
  }
  return c;
}

}  // namespace dynarch
