// The two reserved byte values of every dynarch byte model (hnet.md §1):
// sequences start with BOS; generation stops at EOS.
#pragma once
#include <cstdint>

namespace dynarch {

inline constexpr int64_t kBOS = 254, kEOS = 255;

}  // namespace dynarch
