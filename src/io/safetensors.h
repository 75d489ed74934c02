// Reader/writer for the safetensors format (https://github.com/huggingface/safetensors):
//   u64 little-endian N | N bytes of JSON header (space-padded to a multiple
//   of 8) | raw little-endian tensor data.
// Files written here load in Python's safetensors and vice versa.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dynarch::io {

// Every message names the file and, where relevant, the tensor and field.
struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SafetensorsFile {
  std::vector<std::string> order;              // tensor names in header order
  std::map<std::string, at::Tensor> tensors;   // CPU tensors owning their memory
  std::map<std::string, std::string> metadata;  // the "__metadata__" entry
  std::string path;                            // file it was loaded from

  // Throws SafetensorsError("missing tensor <name> in <path>").
  const at::Tensor& get(const std::string& name) const;
};

// The header name of a dtype ("F32", "I32", ...; at::toString for others).
std::string dtype_name(at::ScalarType t);

// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. Tensors are moved
// to CPU and made contiguous; data is laid out in the given order without
// gaps. Throws SafetensorsError on duplicate/reserved names, undefined tensors,
// unsupported dtypes or I/O failure. The write is atomic (write_file_atomic).
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Validates the whole header before reading any data; any violation (or I/O
// error) throws SafetensorsError. Never trusts sizes or offsets from the file.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace dynarch::io
