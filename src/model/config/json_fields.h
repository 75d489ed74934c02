// Exact JSON types for config fields. nlohmann converts 8.5 or true to an
// int without a word; a config field whose JSON type is not the one it needs
// is an error instead (issue #18), whether the layout uses the field or not.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace dynarch {

template <class T>
struct is_std_vector : std::false_type {};
template <class U>
struct is_std_vector<std::vector<U>> : std::true_type {};

// True when `v` has exactly the JSON type of T (integers in T's range;
// any number for floating point; element-wise for vectors). Other T: true
// (nlohmann's own conversion checks apply).
template <class T>
bool json_type_ok(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= (uint64_t)std::numeric_limits<T>::max();
    if (!v.is_number_integer()) return false;
    const int64_t x = v.get<int64_t>();
    return x >= (int64_t)std::numeric_limits<T>::min() &&
           (x < 0 || (uint64_t)x <= (uint64_t)std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.is_string();
  } else if constexpr (is_std_vector<T>::value) {
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!json_type_ok<typename T::value_type>(e)) return false;
    return true;
  } else {
    return true;
  }
}

}  // namespace dynarch
