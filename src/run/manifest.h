// Checkpoint integrity: DIR/manifest.json records the size and CRC-32 of every
// file a checkpoint directory holds. It is written last (atomically) into
// checkpoint.tmp, before the directory swap, so a complete manifest means a
// complete checkpoint; readers verify the files they use against it and name
// the damaged one.
//   {"format": "dynarch-manifest", "version": 1, "checksum": "crc32",
//    "files": {"model.safetensors": {"bytes": 123, "crc32": "1a2b3c4d"}, ...}}
#pragma once
#include <string>
#include <vector>

namespace dynarch {

inline constexpr const char* kManifestName = "manifest.json";

// Checksums `files` (names inside `dir`) and writes DIR/manifest.json atomically.
void write_manifest(const std::string& dir, const std::vector<std::string>& files);

// Verifies `files` of `dir` against DIR/manifest.json: each must be listed,
// present, of the recorded size and CRC-32, else a UserError naming the file.
// A directory without a manifest (older dynarch, converted official weights)
// is accepted with a one-line warning on stderr (once per directory); returns
// false then, true when verified. A manifest that is not valid is an error.
bool verify_manifest(const std::string& dir, const std::vector<std::string>& files);

}  // namespace dynarch
