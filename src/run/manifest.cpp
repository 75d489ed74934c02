#include "run/manifest.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checksum.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "dynarch-manifest";

io::FileChecksum checksum(const fs::path& p) {
  try {
    return io::checksum_file(p.string());
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
}

void warn_once(const fs::path& dir) {
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (warned.insert(fs::absolute(dir).lexically_normal().string()).second)
    std::fprintf(stderr, "warning: %s has no %s (an older dynarch or another tool wrote it): its files are not verified\n",
                 dir.string().c_str(), kManifestName);
}

json read_manifest(const fs::path& path) {
  json m;
  try {
    m = json::parse(io::read_file(path.string()));
  } catch (const std::exception& e) {
    fail(path.string() + " is damaged (not valid JSON): " + e.what());
  }
  if (!m.is_object() || m.value("format", "") != kFormat || m.value("checksum", "") != "crc32" ||
      !m.contains("files") || !m["files"].is_object())
    fail(path.string() + " is damaged: not a dynarch manifest with crc32 checksums");
  return m;
}

}  // namespace

void write_manifest(const std::string& dir, const std::vector<std::string>& files) {
  json m{{"format", kFormat}, {"version", 1}, {"checksum", "crc32"}, {"files", json::object()}};
  for (auto& f : files) {
    auto c = checksum(fs::path(dir) / f);
    m["files"][f] = {{"bytes", c.bytes}, {"crc32", io::crc32_hex(c.crc32)}};
  }
  io::write_file_atomic((fs::path(dir) / kManifestName).string(), m.dump(1) + "\n");
}

bool verify_manifest(const std::string& dir, const std::vector<std::string>& files) {
  const fs::path mpath = fs::path(dir) / kManifestName;
  if (!fs::exists(mpath)) {
    warn_once(dir);
    return false;
  }
  const json m = read_manifest(mpath);
  for (auto& f : files) {
    const fs::path p = fs::path(dir) / f;
    const json* rec = m["files"].contains(f) ? &m["files"][f] : nullptr;
    if (!rec || !rec->is_object() || !(*rec)["bytes"].is_number_unsigned() || !(*rec)["crc32"].is_string())
      fail(p.string() + ": no valid entry in " + mpath.string() + " (damaged manifest)");
    if (!fs::exists(p)) fail(p.string() + " is missing (" + mpath.string() + " lists it)");
    auto c = checksum(p);
    const auto want_bytes = (*rec)["bytes"].get<uint64_t>();
    const auto want_crc = (*rec)["crc32"].get<std::string>();
    if (c.bytes != want_bytes)
      fail(p.string() + " is damaged: " + std::to_string(c.bytes) + " bytes, " + mpath.string() + " records " +
           std::to_string(want_bytes));
    if (io::crc32_hex(c.crc32) != want_crc)
      fail(p.string() + " is damaged: CRC-32 " + io::crc32_hex(c.crc32) + ", " + mpath.string() + " records " +
           want_crc);
  }
  return true;
}

}  // namespace dynarch
