#include "run/compose.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/hmodel/hmodel.h"
#include "model/lm.h"
#include "run/manifest.h"

namespace dynarch {
namespace fs = std::filesystem;

namespace {

// model.safetensors of a run / checkpoint directory, or the file itself.
std::string weights_file(const std::string& from, const std::string& where) {
  if (!fs::is_directory(from)) {
    if (!fs::exists(from)) fail(where + ".from: " + from + " does not exist");
    return from;
  }
  for (auto d : {fs::path(from), fs::path(from) / "checkpoint", fs::path(from) / "checkpoint.old"})
    if (fs::exists(d / "model.safetensors")) {
      verify_manifest(d.string(), {"model.safetensors"});
      return (d / "model.safetensors").string();
    }
  fail(where + ".from: " + from + " holds no model.safetensors");
}

}  // namespace

int64_t load_pretrained_nodes(ByteLM& m) {
  auto* hm = find_hmodel(m);
  if (!hm) return 0;
  torch::NoGradGuard ng;
  int64_t copied = 0;
  for (size_t e = 0; e < hm->cfg.nodes.size(); ++e) {
    const auto& spec = hm->cfg.nodes[e];
    if (spec.from.empty()) continue;
    const std::string where = "hmodel.nodes[" + std::to_string(e) + "]";
    const auto path = weights_file(spec.from, where);
    io::SafetensorsFile f;
    try {
      f = io::load_safetensors(path);
    } catch (const io::SafetensorsError& err) {
      fail(err.what());
    }
    // Stack-level tensors (HC/mHC expand/collapse) live beside "layers.".
    const std::string layers_tag = "layers.";
    const bool has_stack = spec.prefix.size() >= layers_tag.size() &&
                           spec.prefix.compare(spec.prefix.size() - layers_tag.size(), layers_tag.size(), layers_tag) == 0;
    const std::string stack_prefix = has_stack ? spec.prefix.substr(0, spec.prefix.size() - layers_tag.size()) : "";
    for (size_t i = 0; i < spec.at.size(); ++i) {
      const int j = spec.at[i], k = spec.layers.at(i);
      for (auto& kv : hm->nodes[j - 1]->layer->named_parameters()) {
        const std::string& name = kv.key();
        std::string src;
        if (name.rfind("layers.0.", 0) == 0) {
          src = spec.prefix + std::to_string(k) + "." + name.substr(9);
        } else {
          check(has_stack, where + ".prefix: \"" + spec.prefix + "\" does not end in \"layers.\"; cannot locate " + name);
          src = stack_prefix + name;
        }
        auto it = f.tensors.find(src);
        if (it == f.tensors.end())
          fail(path + ": missing tensor " + src + " (for node " + std::to_string(j) + ", " + where + ")");
        if (it->second.sizes() != kv.value().sizes())
          fail(path + ": tensor " + src + " has shape " + c10::str(it->second.sizes()) + ", node " + std::to_string(j) +
               " expects " + c10::str(kv.value().sizes()));
        if (it->second.scalar_type() != kv.value().scalar_type())
          fail(path + ": tensor " + src + " is declared " + io::dtype_name(it->second.scalar_type()) + ", node " +
               std::to_string(j) + " expects " + io::dtype_name(kv.value().scalar_type()));
        kv.value().copy_(it->second);
        ++copied;
      }
    }
  }
  return copied;
}

}  // namespace dynarch
