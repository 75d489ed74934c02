// Small helpers shared by the test files.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "io/fs_tree.h"

namespace dynarch::testing {

// A fresh, empty directory under the system temp dir, unique per test process.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("dynarch_test_" + name + "_" + std::to_string(::getpid()));
  io::remove_tree(p.string());
  io::make_dirs(p.string());
  return p;
}

}  // namespace dynarch::testing
