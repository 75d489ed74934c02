// Whole-file I/O. Saves go through a temp file + rename so that a crash or
// kill mid-save leaves either the old file or the new one, never a torn one.
#pragma once
#include <string>

namespace dynarch::io {

// Writes `bytes` to `path + ".tmp.<pid>"`, fsyncs it, renames it over `path`
// and fsyncs the directory. Throws std::runtime_error naming the path and
// strerror; on failure the temp file is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Checks, before any long computation, that write_file_atomic(path, ...) can
// succeed: creates and removes its temp file. Throws std::runtime_error naming
// the path (missing directory, no permission, read-only file system).
void check_writable(const std::string& path);

// Reads the whole file. Throws std::runtime_error naming the path if it is
// missing or unreadable.
std::string read_file(const std::string& path);

}  // namespace dynarch::io
