#include "model/config/config.h"

#include <fstream>
#include <set>

#include "core/error.h"
#include "core/json_get.h"

namespace dynarch {
using nlohmann::json;

std::vector<LayerSpec> parse_layout_string(const std::string& s, const std::string& where) {
  // A hand-written scanner, not std::regex: libstdc++'s regex recurses once per
  // character and a long digit run overflowed the stack (fuzz/config_fuzz).
  static const std::string letters = "mMtTfgG";
  auto bad = [&](size_t pos) {
    fail(where + ": cannot parse layout \"" + s + "\" at offset " + std::to_string(pos) +
         " (grammar: ([mMtTfgG][0-9]+)+)");
  };
  std::vector<LayerSpec> out;
  if (s.empty()) fail(where + ": empty layout string (expected tokens like \"m4\" or \"T2m2\")");
  for (size_t pos = 0; pos < s.size();) {
    const char c = s[pos];
    size_t end = pos + 1;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
    if (letters.find(c) == std::string::npos || end == pos + 1) bad(pos);
    long n = 0;
    for (size_t i = pos + 1; i < end && n <= 10000; ++i) n = n * 10 + (s[i] - '0');  // stops past the cap
    if (n < 1 || n > 10000) fail(where + ": layer count must be in 1..10000 in \"" + s + "\"");
    const bool mlp = c == 'f' || std::isupper(c);
    for (long i = 0; i < n; ++i) out.push_back({(char)std::tolower(c), mlp});
    pos = end;
  }
  return out;
}

int layout_height(const std::vector<LayerSpec>& layers) {
  int h = 0;
  for (auto& l : layers) h += (l.mixer != 'f') + l.mlp;
  return h;
}

namespace {

void parse_stages(const json& node, const std::string& where, std::vector<StageLayout>& out) {
  if (!node.is_array()) fail(where + ": expected a list, got " + std::string(node.type_name()));
  StageLayout st;
  if (node.size() == 1) {
    if (!node[0].is_string()) fail(where + "[0]: innermost stage must be a layout string");
    st.innermost = true;
    st.main = parse_layout_string(node[0].get<std::string>(), where + "[0]");
    out.push_back(st);
    return;
  }
  if (node.size() != 3)
    fail(where + ": a stage is [encoder, inner, decoder] or [main], got " +
         std::to_string(node.size()) + " entries");
  if (!node[0].is_string() || !node[2].is_string())
    fail(where + ": encoder and decoder must be layout strings");
  st.encoder = parse_layout_string(node[0].get<std::string>(), where + "[0]");
  st.decoder = parse_layout_string(node[2].get<std::string>(), where + "[2]");
  out.push_back(st);
  parse_stages(node[1], where + "[1]", out);
}

template <class T>
T get_field(const json& j, const char* key, const std::string& where) {
  try {
    return json_get<T>(j.at(key));
  } catch (const json::exception&) {
    fail(where + "." + key + ": missing or wrong type" +
         (j.contains(key) ? " (" + j.at(key).dump() + ")" : std::string()));
  }
}

void check_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
  if (!j.is_object()) fail(where + ": expected a JSON object");
  for (auto& [k, v] : j.items())
    if (!allowed.count(k)) fail(where + ": unknown field \"" + k + "\"");
}

TaskConfig parse_task(const json& t, const std::string& w) {
  check_keys(t, {"type", "num_classes", "labels", "pool"}, w);
  TaskConfig k;
  if (t.contains("type")) k.type = get_field<std::string>(t, "type", w);
  if (k.type == "lm") {
    if (t.contains("num_classes") || t.contains("labels") || t.contains("pool"))
      fail(w + ": num_classes/labels/pool need \"type\": \"classify\"");
    return k;
  }
  if (k.type != "classify") fail(w + ".type: unknown task type \"" + k.type + "\" (expected lm or classify)");
  k.num_classes = get_field<int>(t, "num_classes", w);
  if (t.contains("pool")) k.pool = get_field<std::string>(t, "pool", w);
  if (k.pool != "mean" && k.pool != "last")
    fail(w + ".pool: unknown pooling \"" + k.pool + "\" (expected mean or last)");
  if (k.num_classes < 2) fail(w + ".num_classes must be >= 2, got " + std::to_string(k.num_classes));
  if (t.contains("labels")) {
    k.labels = get_field<std::vector<std::string>>(t, "labels", w);
    if ((int)k.labels.size() != k.num_classes)
      fail(w + ".labels has " + std::to_string(k.labels.size()) + " names, num_classes is " +
           std::to_string(k.num_classes));
    if (std::set<std::string>(k.labels.begin(), k.labels.end()).size() != k.labels.size())
      fail(w + ".labels: names must be distinct");
  } else {
    for (int i = 0; i < k.num_classes; ++i) k.labels.push_back(std::to_string(i));
  }
  return k;
}

bool layout_has(const StageLayout& st, char mixer) {
  for (auto* v : {&st.encoder, &st.decoder, &st.main})
    for (auto& l : *v)
      if (l.mixer == mixer) return true;
  return false;
}

// Sections the layout needs must be given (there is no sensible default head
// count); sections it does not need are still validated, for every stage.
void require_sections(const json& j, const ModelConfig& c, const std::string& src) {
  bool has_m = false, has_t = false;
  for (auto& st : c.stages) has_m |= layout_has(st, 'm'), has_t |= layout_has(st, 't');
  if (has_t && !j.contains("attn_cfg"))
    fail(src + ": the layout has attention layers (t/T) but no \"attn_cfg\" (give at least attn_cfg.num_heads)");
  if (has_m && !j.contains("ssm_cfg"))
    fail(src + ": the layout has Mamba-2 layers (m/M) but no \"ssm_cfg\" (e.g. {\"d_state\": 128, \"headdim\": 64})");
  for (size_t st = 0; st < c.stages.size(); ++st) {
    const int H = c.attn.num_heads[st], r = c.attn.rotary_emb_dim[st], W = c.attn.window_size[st];
    const char* field = H < 1 ? "num_heads" : (r < 0 || r % 2 != 0) ? "rotary_emb_dim" : W < -1 ? "window_size" : nullptr;
    if (field)
      fail(src + ": attn_cfg." + field + "[" + std::to_string(st) +
           "] is out of range (num_heads >= 1, rotary_emb_dim even and >= 0, window_size >= -1)");
  }
}

}  // namespace

int ModelConfig::mlp_width(int stage) const {
  int d = d_intermediate.at(stage);
  return d <= 0 ? 0 : (d + 127) / 128 * 128;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  ModelConfig c;
  check_keys(j, {"arch_layout", "d_model", "d_intermediate", "vocab_size", "ssm_cfg", "attn_cfg",
                 "tie_embeddings", "residual", "hmodel", "task"},
             src);
  if (!j.contains("arch_layout")) fail(src + ": missing field \"arch_layout\"");
  c.arch_layout = j["arch_layout"];
  parse_stages(c.arch_layout, src + ": arch_layout", c.stages);
  const size_t S1 = c.stages.size();
  c.d_model = get_field<std::vector<int>>(j, "d_model", src);
  c.d_intermediate = j.contains("d_intermediate")
                         ? get_field<std::vector<int>>(j, "d_intermediate", src)
                         : std::vector<int>(S1, 0);
  if (j.contains("vocab_size")) c.vocab_size = get_field<int>(j, "vocab_size", src);
  if (j.contains("tie_embeddings")) c.tie_embeddings = get_field<bool>(j, "tie_embeddings", src);
  if (j.contains("task")) c.task = parse_task(j["task"], src + ": task");
  if (j.contains("ssm_cfg")) {
    const json& s = j["ssm_cfg"];
    std::string w = src + ": ssm_cfg";
    check_keys(s, {"d_state", "d_conv", "expand", "chunk_size", "headdim"}, w);
    if (s.contains("d_state")) c.ssm.d_state = get_field<int>(s, "d_state", w);
    if (s.contains("d_conv")) c.ssm.d_conv = get_field<int>(s, "d_conv", w);
    if (s.contains("expand")) c.ssm.expand = get_field<int>(s, "expand", w);
    if (s.contains("chunk_size")) c.ssm.chunk_size = get_field<int>(s, "chunk_size", w);
    if (s.contains("headdim")) c.ssm.headdim = get_field<int>(s, "headdim", w);
  }
  if (j.contains("attn_cfg")) {
    const json& a = j["attn_cfg"];
    std::string w = src + ": attn_cfg";
    check_keys(a, {"num_heads", "rotary_emb_dim", "window_size"}, w);
    if (a.contains("num_heads")) c.attn.num_heads = get_field<std::vector<int>>(a, "num_heads", w);
    if (a.contains("rotary_emb_dim"))
      c.attn.rotary_emb_dim = get_field<std::vector<int>>(a, "rotary_emb_dim", w);
    if (a.contains("window_size"))
      c.attn.window_size = get_field<std::vector<int>>(a, "window_size", w);
  }
  auto per_stage = [&](std::vector<int>& v, const std::string& name, int dflt, bool required) {
    if (v.empty() && !required) v.assign(S1, dflt);
    if (v.size() != S1)
      fail(src + ": " + name + " has " + std::to_string(v.size()) + " entries, arch_layout has " +
           std::to_string(S1) + " stages");
  };
  per_stage(c.d_model, "d_model", 0, true);
  per_stage(c.d_intermediate, "d_intermediate", 0, false);
  per_stage(c.attn.num_heads, "attn_cfg.num_heads", 1, false);
  per_stage(c.attn.rotary_emb_dim, "attn_cfg.rotary_emb_dim", 0, false);
  per_stage(c.attn.window_size, "attn_cfg.window_size", -1, false);
  require_sections(j, c, src);
  if (!j.contains("residual")) {
    c.residual.assign(S1, ResidualConfig{});
  } else if (j["residual"].is_array()) {
    const auto& r = j["residual"];
    if (r.size() != S1)
      fail(src + ": residual has " + std::to_string(r.size()) + " entries, arch_layout has " + std::to_string(S1) +
           " stages");
    for (size_t s = 0; s < S1; ++s)
      c.residual.push_back(ResidualConfig::from_json(r[s], src + ": residual[" + std::to_string(s) + "]"));
  } else {
    c.residual.assign(S1, ResidualConfig::from_json(j["residual"], src + ": residual"));
  }

  if (c.vocab_size != 256) fail(src + ": vocab_size must be 256 for byte models, got " + std::to_string(c.vocab_size));
  if (c.tie_embeddings) fail(src + ": tie_embeddings=true is not supported (H-Net uses untied embeddings)");
  const auto& s = c.ssm;
  if (s.d_state < 1) fail(src + ": ssm_cfg.d_state must be >= 1");
  if (s.d_conv < 1) fail(src + ": ssm_cfg.d_conv must be >= 1");
  if (s.expand < 1) fail(src + ": ssm_cfg.expand must be >= 1");
  if (s.chunk_size < 1) fail(src + ": ssm_cfg.chunk_size must be >= 1");
  if (s.headdim < 1) fail(src + ": ssm_cfg.headdim must be >= 1");
  for (size_t st = 0; st < S1; ++st) {
    const int D = c.d_model[st];
    const std::string w = src + ": stage " + std::to_string(st);
    if (D < 1) fail(w + ": d_model[" + std::to_string(st) + "] must be >= 1");
    if (st > 0 && D < c.d_model[st - 1])
      fail(w + ": d_model must not decrease between stages (" + std::to_string(c.d_model[st - 1]) +
           " -> " + std::to_string(D) + ")");
    if (c.d_intermediate[st] < 0) fail(w + ": d_intermediate must be >= 0");
    bool has_m = false, has_t = false;
    for (auto* v : {&c.stages[st].encoder, &c.stages[st].decoder, &c.stages[st].main})
      for (auto& l : *v) {
        has_m |= l.mixer == 'm';
        has_t |= l.mixer == 't';
      }
    bool has_mlp = false;
    for (auto* v : {&c.stages[st].encoder, &c.stages[st].decoder, &c.stages[st].main})
      for (auto& l : *v) has_mlp |= l.mlp;
    if (has_mlp && c.d_intermediate[st] == 0)
      fail(w + ": layout uses M/T layers (with MLP) but d_intermediate[" + std::to_string(st) + "] is 0");
    if (has_m && (s.expand * D) % s.headdim != 0)
      fail(w + ": ssm_cfg.expand*d_model (" + std::to_string(s.expand * D) +
           ") is not divisible by ssm_cfg.headdim (" + std::to_string(s.headdim) + ")");
    if (has_t) {
      int H = c.attn.num_heads[st], r = c.attn.rotary_emb_dim[st];
      if (H < 1 || D % H != 0)
        fail(w + ": d_model (" + std::to_string(D) + ") is not divisible by attn_cfg.num_heads (" +
             std::to_string(H) + ")");
      if (r < 0 || r % 2 != 0 || r > D / H)
        fail(w + ": attn_cfg.rotary_emb_dim (" + std::to_string(r) +
             ") must be even and <= head dim (" + std::to_string(D / H) + ")");
      if (c.attn.window_size[st] < -1) fail(w + ": attn_cfg.window_size must be -1 (global) or >= 0");
    }
  }
  if (j.contains("hmodel"))
    c.hmodel = HModelConfig::from_json(j["hmodel"], src + ": hmodel", c.stages.back().main, c.d_model.back());
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("cannot open config file " + path);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    fail("config file " + path + " is not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

json ModelConfig::to_json() const {
  json j{{"arch_layout", arch_layout},
              {"d_model", d_model},
              {"d_intermediate", d_intermediate},
              {"vocab_size", vocab_size},
              {"ssm_cfg",
               {{"d_state", ssm.d_state},
                {"d_conv", ssm.d_conv},
                {"expand", ssm.expand},
                {"chunk_size", ssm.chunk_size},
                {"headdim", ssm.headdim}}},
              {"attn_cfg",
               {{"num_heads", attn.num_heads},
                {"rotary_emb_dim", attn.rotary_emb_dim},
                {"window_size", attn.window_size}}},
              {"tie_embeddings", tie_embeddings}};
  bool any = false, same = true;
  for (auto& r : residual) {
    any |= r.streams();
    same &= r.to_json() == residual.front().to_json();
  }
  if (any) {
    if (same) {
      j["residual"] = residual.front().to_json();
    } else {
      j["residual"] = json::array();
      for (auto& r : residual) j["residual"].push_back(r.to_json());
    }
  }
  if (hmodel) j["hmodel"] = hmodel->to_json();
  if (task.classify()) j["task"] = {{"type", task.type}, {"num_classes", task.num_classes}, {"labels", task.labels}, {"pool", task.pool}};
  return j;
}

}  // namespace dynarch
