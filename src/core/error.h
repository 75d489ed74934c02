// User-facing errors: bad input, bad config, bad files. The CLI prints the
// message and exits non-zero; anything else is a bug.
#pragma once
#include <cmath>
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

// A loss, bpb or NLL that is NaN or infinite means damaged weights or a
// diverged model; reporting it as a number would look like a result.
inline void check_finite(double v, const std::string& what) {
  if (!std::isfinite(v))
    fail(what + " is " + std::to_string(v) + " (not finite): the weights are damaged or the model diverged");
}

}  // namespace dynarch
