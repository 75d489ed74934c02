// libFuzzer target: the safetensors reader (io/safetensors), fed whole files.
// Accepted files must describe themselves consistently and survive a
// write/read round trip unchanged (names, order, dtypes, shapes, bytes, metadata).
#include <cstring>

#include "fuzz_util.h"
#include "io/safetensors.h"

using dynarch::io::SafetensorsError;
using dynarch::io::SafetensorsFile;

namespace {

void same_or_die(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.order != b.order) fuzz::violated("tensor order changed in the round trip");
  if (a.metadata != b.metadata) fuzz::violated("metadata changed in the round trip");
  for (const auto& name : a.order) {
    const at::Tensor &x = a.get(name), &y = b.get(name);
    if (x.scalar_type() != y.scalar_type() || x.sizes() != y.sizes())
      fuzz::violated("dtype or shape of '" + name + "' changed in the round trip");
    // Bytes, not values: NaN payloads must survive too.
    if (x.nbytes() != y.nbytes() || (x.nbytes() > 0 && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0))
      fuzz::violated("data of '" + name + "' changed in the round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch in("st_in"), out("st_out");
  fuzz::write_file(in.path, data, size);
  SafetensorsFile f;
  try {
    f = dynarch::io::load_safetensors(in.path);
  } catch (const SafetensorsError& e) {
    fuzz::rejected(e);
    if (std::strstr(e.what(), in.path.c_str()) == nullptr) fuzz::violated("error does not name the file");
    return 0;
  }
  if (f.order.size() != f.tensors.size()) fuzz::violated("order and tensors disagree");
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (const auto& name : f.order) {
    const at::Tensor& t = f.get(name);
    if (!t.is_contiguous() || t.device().type() != at::kCPU) fuzz::violated("'" + name + "' not a contiguous CPU tensor");
    ts.emplace_back(name, t);
  }
  dynarch::io::save_safetensors(out.path, ts, f.metadata);
  same_or_die(f, dynarch::io::load_safetensors(out.path));
  return 0;
}
