// Shared by the libFuzzer targets (scripts/fuzz.sh). The readers under test take
// paths, so each input is written to a scratch file first; every target then
// checks that the reader either accepts the input (and the result has the
// properties the rest of the program relies on) or rejects it with the
// project's error type. Any other exception escapes and libFuzzer reports it
// as a crash: to the CLI it would be an error without a file or field name.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace fuzz {

// A scratch file private to this process (libFuzzer -jobs/-fork run several),
// in /dev/shm where it exists so the file system is not the bottleneck;
// removed at exit.
struct Scratch {
  std::string path;
  explicit Scratch(const std::string& tag) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp ? tmp : "/tmp";
    path = dir + "/dynarch_fuzz_" + tag + "_" + std::to_string(::getpid());
  }
  ~Scratch() { ::unlink(path.c_str()); }
};

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

// A rejected input: silent while fuzzing; DYNARCH_FUZZ_VERBOSE=1 prints why
// (to check that seeds are accepted, or what a crash input was refused for).
inline void rejected(const std::exception& e) {
  static const bool verbose = std::getenv("DYNARCH_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %s\n", e.what());
}

// A violated property: print it and abort, which libFuzzer records as a crash.
[[noreturn]] inline void violated(const std::string& what) {
  std::fprintf(stderr, "property violated: %s\n", what.c_str());
  std::abort();
}

}  // namespace fuzz
