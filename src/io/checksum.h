// CRC-32 (IEEE 802.3 polynomial, the one of zlib.crc32 and gzip), used for the
// checkpoint manifests (run/manifest.h). In-tree so that no dependency is
// added; the same value comes out of Python's zlib.crc32, which lets
// scripts/convert_hnet.py write manifests too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dynarch::io {

// Continues a CRC: crc32_update(crc32_update(0, a), b) == crc32 of a then b.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);
inline uint32_t crc32(const std::string& s) { return crc32_update(0, s.data(), s.size()); }

struct FileChecksum {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};
// Streams the file; throws std::runtime_error naming the path on I/O errors.
FileChecksum checksum_file(const std::string& path);

// "1a2b3c4d": 8 lowercase hex digits, as stored in manifests.
std::string crc32_hex(uint32_t crc);

}  // namespace dynarch::io
