// Small helpers shared by the test files.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dynarch::testing {

// A fresh, empty directory under the system temp dir, unique per test process.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("dynarch_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace dynarch::testing
