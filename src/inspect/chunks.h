// Chunk views (H-Net): where each stage puts its boundaries over a text, with
// the boundary probability as shading, as an HTML page and a terminal view.
#pragma once
#include <string>
#include <vector>

#include "model/lm.h"

namespace dynarch {

struct ChunkView {
  std::string text;                      // the input bytes
  std::vector<std::vector<float>> p;     // per stage: p at each byte (NaN where the stage does not see the byte)
  std::vector<std::vector<bool>> start;  // per stage: byte starts a chunk of that stage
};

// Runs the model on BOS + text and maps every stage's routing back to bytes.
ChunkView compute_chunks(ByteLM& model, const std::string& text);
std::string chunks_html(const ChunkView& v, const std::string& title);
// Text with a marker before each chunk start, one block per stage, plus stats.
std::string chunks_terminal(const ChunkView& v, bool color);

}  // namespace dynarch
