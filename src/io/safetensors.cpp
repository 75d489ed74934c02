#include "io/safetensors.h"

#include "io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dynarch::io {
namespace {

using json = nlohmann::json;

// Raw buffers are copied as-is, which is only right on a little-endian host.
// (The compiler macro rather than std::endian: the fuzz build is C++17, fuzz/CMakeLists.txt.)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

// Same cap as the reference implementation; stops a corrupt length from
// triggering a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

const char* dtype_to_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  return nullptr;
}

std::optional<at::ScalarType> name_to_dtype(const std::string& s) {
  for (const auto& d : kDtypes)
    if (s == d.name) return d.type;
  return std::nullopt;
}

SafetensorsError error(const std::string& path, const std::string& msg) {
  return SafetensorsError("safetensors '" + path + "': " + msg);
}

SafetensorsError tensor_error(const std::string& path, const std::string& name, const std::string& msg) {
  return error(path, "tensor '" + name + "': " + msg);
}

// JSON integers arrive as signed or unsigned; floats and negatives are invalid.
std::optional<int64_t> as_nonneg_int(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i >= 0) return i;
  }
  return std::nullopt;
}

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// pread until `n` bytes arrive; a short read means the file shrank under us.
void pread_exact(int fd, void* dst, uint64_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    ssize_t r = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw error(path, std::string("read failed: ") + std::strerror(errno));
    }
    if (r == 0) throw error(path, "unexpected end of file at byte " + std::to_string(offset));
    p += r;
    n -= static_cast<uint64_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

// Parsed, validated header entry; data is read only after all entries pass.
struct Entry {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t data_size) {
  if (!v.is_object()) throw tensor_error(path, name, "header entry is not an object");
  Entry e{name, at::kFloat, {}, 0, 0};

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) throw tensor_error(path, name, "missing or non-string 'dtype'");
  auto type = name_to_dtype(dt->get<std::string>());
  if (!type) throw tensor_error(path, name, "unsupported dtype '" + dt->get<std::string>() + "'");
  e.dtype = *type;

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) throw tensor_error(path, name, "missing or non-array 'shape'");
  // Overflow-checked, so a hostile shape cannot wrap to a small byte count.
  uint64_t nbytes = at::elementSize(e.dtype);
  for (const auto& d : *sh) {
    auto dim = as_nonneg_int(d);
    if (!dim) throw tensor_error(path, name, "'shape' has an entry that is not a non-negative integer: " + d.dump());
    e.shape.push_back(*dim);
    if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(*dim), &nbytes))
      throw tensor_error(path, name, "'shape' " + sh->dump() + " overflows the byte count");
  }

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2)
    throw tensor_error(path, name, "'data_offsets' must be an array of 2 integers");
  auto b = as_nonneg_int((*off)[0]), en = as_nonneg_int((*off)[1]);
  if (!b || !en) throw tensor_error(path, name, "'data_offsets' " + off->dump() + " are not non-negative integers");
  e.begin = static_cast<uint64_t>(*b);
  e.end = static_cast<uint64_t>(*en);
  if (e.begin > e.end) throw tensor_error(path, name, "'data_offsets' " + off->dump() + " has begin > end");
  if (e.end - e.begin != nbytes)
    throw tensor_error(path, name,
                       "'data_offsets' " + off->dump() + " span " + std::to_string(e.end - e.begin) +
                           " bytes but dtype " + dt->get<std::string>() + " and 'shape' " + sh->dump() +
                           " need " + std::to_string(nbytes));
  if (e.end > data_size)
    throw tensor_error(path, name,
                       "'data_offsets' " + off->dump() + " exceed the data buffer of " +
                           std::to_string(data_size) + " bytes");
  return e;
}

// The tensors tile the data buffer exactly, as the reference implementation
// requires: an overlap aliases bytes; a gap or trailing bytes are data no
// tensor accounts for (a spliced, padded or otherwise corrupt file).
// Zero-size tensors cover no byte and may sit anywhere in range.
void check_coverage(const std::string& path, const std::vector<Entry>& entries, uint64_t data_size) {
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin < covered) throw tensor_error(path, e->name, "data overlaps tensor '" + prev->name + "'");
    if (e->begin > covered)
      throw tensor_error(path, e->name,
                         "data starts at byte " + std::to_string(e->begin) + " but " +
                             (prev ? "tensor '" + prev->name + "' ends" : std::string("the data buffer starts")) +
                             " at byte " + std::to_string(covered) + ": a gap of " +
                             std::to_string(e->begin - covered) + " bytes no tensor covers");
    covered = e->end;
    prev = e;
  }
  if (covered != data_size) {
    const uint64_t n = data_size - covered;
    throw error(path, std::to_string(n) + (n == 1 ? " trailing byte" : " trailing bytes") +
                          " after the tensor data (the data buffer holds " + std::to_string(data_size) +
                          " bytes, the tensors cover " + std::to_string(covered) + ")");
  }
}

}  // namespace

std::string dtype_name(at::ScalarType t) {
  const char* n = dtype_to_name(t);
  return n ? n : at::toString(t);
}

const at::Tensor& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw SafetensorsError("missing tensor " + name + " in " + path);
  return it->second;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> data;
  data.reserve(tensors.size());
  std::set<std::string> seen;
  // Header built by hand to keep the caller's order (nlohmann::json sorts
  // keys; ordered_json is quadratic in the number of keys).
  std::string header = "{";
  uint64_t offset = 0;
  try {
    if (!metadata.empty()) header += "\"__metadata__\":" + json(metadata).dump();
    for (const auto& [name, t] : tensors) {
      if (name == "__metadata__") throw tensor_error(path, name, "name is reserved");
      if (!seen.insert(name).second) throw tensor_error(path, name, "duplicate tensor name");
      if (!t.defined()) throw tensor_error(path, name, "tensor is undefined");
      const char* dt = dtype_to_name(t.scalar_type());
      if (!dt) throw tensor_error(path, name, std::string("unsupported dtype ") + at::toString(t.scalar_type()));
      at::Tensor c = t.detach().to(at::kCPU).contiguous();
      uint64_t nbytes = c.nbytes();
      json entry = {{"dtype", dt},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", json::array({offset, offset + nbytes})}};
      if (header.size() > 1) header += ',';
      header += json(name).dump() + ':' + entry.dump();
      offset += nbytes;
      data.push_back(std::move(c));
    }
  } catch (const json::exception& e) {
    // dump() rejects names/metadata that are not valid UTF-8.
    throw error(path, std::string("cannot encode header: ") + e.what());
  }
  header += '}';
  // Padding keeps the data buffer 8-byte aligned, as the reference writer does.
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + offset);
  uint64_t n = header.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += header;
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.nbytes());

  try {
    write_file_atomic(path, out);
  } catch (const std::runtime_error& e) {
    throw error(path, e.what());
  }
}

SafetensorsFile load_safetensors(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) throw error(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) throw error(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw error(path, "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    throw error(path, "file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");

  uint64_t n = 0;
  pread_exact(fd.fd, &n, 8, 0, path);
  if (n > kMaxHeaderBytes)
    throw error(path, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > file_size - 8)
    throw error(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(file_size));
  std::string text(n, '\0');
  pread_exact(fd.fd, text.data(), n, 8, path);

  // nlohmann treats NUL as end of input, which would silently ignore what
  // follows; valid JSON never contains a raw NUL.
  if (text.find('\0') != std::string::npos) throw error(path, "header is not valid JSON: contains a NUL byte");

  // nlohmann::json loses key order, so record top-level keys as they are
  // parsed; this also catches duplicates, which the parser silently merges.
  std::vector<std::string> keys;
  std::set<std::string> key_set;
  std::string duplicate;
  json header;
  try {
    header = json::parse(text, [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::key && depth == 1) {
        auto k = parsed.get<std::string>();
        if (key_set.insert(k).second)
          keys.push_back(std::move(k));
        else if (duplicate.empty())
          duplicate = std::move(k);
      }
      return true;
    });
  } catch (const json::exception& e) {
    throw error(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw error(path, "header is not a JSON object");
  if (!duplicate.empty()) throw error(path, "duplicate header key '" + duplicate + "'");

  SafetensorsFile out;
  out.path = path;
  const uint64_t data_size = file_size - 8 - n;
  const uint64_t data_start = 8 + n;
  std::vector<Entry> entries;
  for (const auto& key : keys) {
    const json& v = header.at(key);
    if (key == "__metadata__") {
      if (!v.is_object()) throw error(path, "'__metadata__' is not an object");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) throw error(path, "'__metadata__' value for '" + mk + "' is not a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, v, data_size));
    out.order.push_back(key);
  }

  check_coverage(path, entries, data_size);
  for (const auto& e : entries) {
    at::Tensor t;
    try {
      t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    } catch (const c10::Error& ex) {  // e.g. a zero-numel shape whose dims overflow
      throw tensor_error(path, e.name, std::string("cannot allocate: ") + ex.what_without_backtrace());
    }
    const uint64_t nbytes = e.end - e.begin;
    if (nbytes > 0) pread_exact(fd.fd, t.data_ptr(), nbytes, data_start + e.begin, path);
    if (e.dtype == at::kBool) {
      // A bool byte other than 0/1 is undefined behaviour once torch reads it.
      const auto* p = static_cast<const uint8_t*>(t.data_ptr());
      if (std::any_of(p, p + nbytes, [](uint8_t b) { return b > 1; }))
        throw tensor_error(path, e.name, "BOOL data contains a byte other than 0 or 1");
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace dynarch::io
