// User-facing errors: bad input, bad config, bad files. The CLI prints the
// message and exits non-zero; anything else is a bug.
#pragma once
#include <stdexcept>
#include <string>

namespace dynarch {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& msg) { throw UserError(msg); }

inline void check(bool ok, const std::string& msg) {
  if (!ok) throw UserError(msg);
}

}  // namespace dynarch
