// AVX-512 build of the n = 4 fp32 merge backward (stream_rows.h): the generic
// templates compiled for 32 vector registers, chosen at run time, while the
// rest of the build stays x86-64-v3.
#include "kernels/cpu/streams/stream_rows.h"

namespace dynarch {

#if defined(__x86_64__)
#define DYNARCH_WIDE __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), flatten))

bool stream_rows_wide() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return ok;
}

DYNARCH_WIDE void merge_token_backward_4f_wide(const Merge<float>& m, int64_t t, int64_t D, const float* G, float* dxp,
                                               float* dR, float* dpost, float* dy) {
  merge_token_backward_n<4, float, true>(m, t, D, G, dxp, dR, dpost, dy);
}

#else
bool stream_rows_wide() { return false; }
void merge_token_backward_4f_wide(const Merge<float>& m, int64_t t, int64_t D, const float* G, float* dxp, float* dR,
                                  float* dpost, float* dy) {
  merge_token_backward_n<4>(m, t, D, G, dxp, dR, dpost, dy);
}
#endif

}  // namespace dynarch
