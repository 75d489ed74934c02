// Typed reads of JSON values for the config and option readers. nlohmann's
// get<T>() converts a number to an integer type with a plain cast: 2.5 becomes
// 2, -1 for an unsigned field wraps, and 1e10 (or 1.9e19 for a uint64) is
// undefined behaviour (found by fuzz/config_fuzz and fuzz/options_fuzz). Here an
// integer field takes a number only if it is a whole number in the type's
// range, and a floating-point field only a number (not true). Errors are nlohmann type_errors, so the callers' handlers, which name
// the file and field, report them.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace dynarch {

template <class T>
struct IsStdVector : std::false_type {};
template <class U, class A>
struct IsStdVector<std::vector<U, A>> : std::true_type {};

template <class T>
T json_get(const nlohmann::json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using L = std::numeric_limits<T>;
    bool ok = false;
    if (v.is_number_unsigned()) {
      ok = v.get<uint64_t>() <= static_cast<uint64_t>(L::max());
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      ok = i < 0 ? std::is_signed_v<T> && i >= static_cast<int64_t>(L::min())
                 : static_cast<uint64_t>(i) <= static_cast<uint64_t>(L::max());
    } else if (v.is_number_float()) {
      // A whole number written as a float (64.0) is accepted; 2^digits bounds the range exactly.
      const double d = v.get<double>(), top = std::ldexp(1.0, L::digits);
      ok = std::floor(d) == d && d >= static_cast<double>(L::min()) && d < top;
      if (ok) return static_cast<T>(d);
    }
    if (!ok)
      throw nlohmann::json::type_error::create(
          302, v.dump() + " is not a whole number in [" + std::to_string(L::min()) + ", " + std::to_string(L::max()) + "]",
          &v);
    return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    // nlohmann would turn true into 1.0
    if (!v.is_number()) throw nlohmann::json::type_error::create(302, "expected a number, got " + v.dump(), &v);
    return v.get<T>();
  } else if constexpr (IsStdVector<T>::value) {
    if (!v.is_array()) throw nlohmann::json::type_error::create(302, "expected a list, got " + v.dump(), &v);
    T out;
    for (const auto& e : v) out.push_back(json_get<typename T::value_type>(e));
    return out;
  } else {
    return v.get<T>();
  }
}

}  // namespace dynarch
