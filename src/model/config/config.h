// Model configuration: the official H-Net config JSON, accepted as-is.
// A layout with no nesting (["T4"]) is a plain isotropic byte model.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "model/config/hmodel_config.h"
#include "model/config/residual_config.h"

namespace dynarch {

// One layer token of a layout string: m/M = Mamba-2, t/T = attention;
// uppercase adds a SwiGLU MLP. Extensions (hmodel.md §6): f = SwiGLU only,
// g/G = GRU without/with MLP.
struct LayerSpec {
  char mixer;  // 'm', 't', 'g', or 'f' (no mixer)
  bool mlp;
  bool operator==(const LayerSpec&) const = default;
};

// Parses e.g. "T1m4" -> [T, m, m, m, m]. `where` names the config field in errors.
std::vector<LayerSpec> parse_layout_string(const std::string& s, const std::string& where);
int layout_height(const std::vector<LayerSpec>& layers);  // 1 per sub-layer: m/t/f/g 1, M/T/G 2

struct SsmConfig {
  int d_state = 128, d_conv = 4, expand = 2, chunk_size = 256;
  int headdim = 64;  // extension: official Mamba-2 default 64
};

struct AttnConfig {
  std::vector<int> num_heads, rotary_emb_dim, window_size;  // one per stage
};

// Layout of one stage: innermost has `main`, others have encoder/decoder.
struct StageLayout {
  bool innermost = false;
  std::vector<LayerSpec> encoder, decoder, main;
};

// Extension section "task": what the head predicts. Absent = byte LM.
struct TaskConfig {
  std::string type = "lm";          // lm | classify
  int num_classes = 0;              // classify: K >= 2
  std::vector<std::string> labels;  // classify: K distinct names (default "0".."K-1")
  // classify: how the sequence becomes one vector. "mean" over valid positions, or
  // "last" valid position (for causal models only the last byte has read the whole input).
  std::string pool = "mean";
  bool classify() const { return type == "classify"; }
};

struct ModelConfig {
  nlohmann::json arch_layout;
  std::vector<int> d_model, d_intermediate;
  int vocab_size = 256;
  SsmConfig ssm;
  AttnConfig attn;
  bool tie_embeddings = false;
  // Extension: residual-stream policy per stage (mhc.md); JSON "residual" is one
  // object for every stage or a list with one per stage. Absent = plain.
  std::vector<ResidualConfig> residual;
  // Extension: the innermost main network is an H-Model (hmodel.md); JSON "hmodel".
  std::optional<HModelConfig> hmodel;
  TaskConfig task;

  // Stages outermost first; size = S + 1 where S = number of chunking stages.
  std::vector<StageLayout> stages;

  int num_stages() const { return (int)stages.size() - 1; }
  // d_int rounded up to a multiple of 128 (0 stays 0: no MLP).
  int mlp_width(int stage) const;

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
};

}  // namespace dynarch
