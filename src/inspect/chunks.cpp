#include "inspect/chunks.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace dynarch {

ChunkView compute_chunks(ByteLM& model, const std::string& text) {
  check(model.config.num_stages() > 0, "chunks: the model has no chunking stage (it is isotropic)");
  check(!text.empty(), "chunks: empty text");
  torch::NoGradGuard ng;
  model.eval();
  std::vector<int64_t> ids{kBOS};
  for (unsigned char c : text) ids.push_back(c);
  StageRecorder stage_rec;
  auto& tr = stage_rec.traces;
  model.forward(at::tensor(ids, at::kLong).view({1, -1}));
  ChunkView v;
  v.text = text;
  // byte_of[j] = input position (0 = BOS) of the j-th position of the current stage
  std::vector<int64_t> byte_of(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) byte_of[i] = (int64_t)i;
  for (auto& t : tr) {
    auto p = t.p[0].to(at::kFloat).contiguous();
    auto b = t.b[0].contiguous();
    std::vector<float> ps(text.size(), std::nanf(""));
    std::vector<bool> st(text.size(), false);
    std::vector<int64_t> next;
    for (size_t j = 0; j < byte_of.size(); ++j) {
      const int64_t pos = byte_of[j];
      const bool bj = b[j].item<bool>();
      if (bj) next.push_back(pos);
      if (pos == 0) continue;  // BOS
      ps[pos - 1] = p[j].item<float>();
      st[pos - 1] = bj;
    }
    v.p.push_back(ps);
    v.start.push_back(st);
    byte_of = next;
  }
  return v;
}

namespace {

// Byte ranges of UTF-8 characters (invalid bytes stand alone).
std::vector<std::pair<size_t, size_t>> utf8_chars(const std::string& s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.size()) n = 1;
    for (size_t k = 1; k < n; ++k)
      if (((unsigned char)s[i + k] & 0xC0) != 0x80) n = 1;
    out.emplace_back(i, n);
    i += n;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else if (c == '\n') o += "&#x21b5;<br>";
    else if (c == '\t') o += "&#x2192;";
    else if (c == ' ') o += "&nbsp;";
    else o += c;
  }
  return o;
}

struct Stats {
  int64_t chunks = 0, bytes = 0;
};
Stats stage_stats(const ChunkView& v, size_t s) {
  Stats st;
  for (size_t i = 0; i < v.text.size(); ++i) {
    st.chunks += v.start[s][i];
    st.bytes++;
  }
  return st;
}

}  // namespace

std::string chunks_html(const ChunkView& v, const std::string& title) {
  std::string h = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
                  "</title><style>body{font-family:sans-serif;margin:2em;max-width:70em}"
                  ".t{font-family:monospace;font-size:15px;line-height:2.1em;word-wrap:break-word}"
                  ".c{padding:2px 0}.b{border-left:2px solid #c0392b;margin-left:1px;padding-left:1px}"
                  "h2{font-size:1.05em;margin-top:1.6em}.k{color:#555;font-size:.9em}</style></head><body>";
  h += "<h1>" + html_escape(title) + "</h1><p class=\"k\">Each stage's chunk starts are marked by a red bar; "
       "shading is the boundary probability p (white 0 &rarr; blue 1). Inner stages see only the bytes that "
       "start outer chunks; other bytes are left unshaded there.</p>";
  auto chars = utf8_chars(v.text);
  for (size_t s = 0; s < v.p.size(); ++s) {
    auto st = stage_stats(v, s);
    char buf[256];
    std::snprintf(buf, sizeof buf, "<h2>Stage %zu: %lld chunks over %lld bytes (%.2f bytes per chunk)</h2>", s,
                  (long long)st.chunks, (long long)st.bytes, st.chunks ? (double)st.bytes / st.chunks : 0.0);
    h += buf;
    h += "<div class=\"t\">";
    for (auto [i, n] : chars) {
      float p = std::nanf("");
      bool start = false;
      for (size_t k = i; k < i + n; ++k) {
        if (!std::isnan(v.p[s][k])) p = std::isnan(p) ? v.p[s][k] : std::max(p, v.p[s][k]);
        start = start || v.start[s][k];
      }
      std::string style;
      if (!std::isnan(p)) {
        std::snprintf(buf, sizeof buf, " style=\"background:rgba(52,120,220,%.3f)\" title=\"p=%.3f\"", 0.75 * p, p);
        style = buf;
      }
      h += std::string("<span class=\"c") + (start ? " b" : "") + "\"" + style + ">" +
           html_escape(v.text.substr(i, n)) + "</span>";
    }
    h += "</div>";
  }
  h += "</body></html>\n";
  return h;
}

std::string chunks_terminal(const ChunkView& v, bool color) {
  std::string o;
  auto chars = utf8_chars(v.text);
  for (size_t s = 0; s < v.p.size(); ++s) {
    auto st = stage_stats(v, s);
    char buf[160];
    std::snprintf(buf, sizeof buf, "stage %zu: %lld chunks, %.2f bytes per chunk\n", s, (long long)st.chunks,
                  st.chunks ? (double)st.bytes / st.chunks : 0.0);
    o += buf;
    for (auto [i, n] : chars) {
      bool start = false;
      for (size_t k = i; k < i + n; ++k) start = start || v.start[s][k];
      if (start) o += color ? "\033[31m|\033[0m" : "|";
      std::string c = v.text.substr(i, n);
      o += c == "\n" ? "\u21b5\n" : c;
    }
    o += "\n\n";
  }
  return o;
}

}  // namespace dynarch
