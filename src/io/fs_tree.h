// Recursive file-system operations in plain POSIX calls, in one place.
//
// Why not std::filesystem: PyTorch 2.11's libtorch.so exports its own copy of
// std::filesystem::remove_all, the dynamic linker binds our calls to it, and
// it jumps to address 0 on a non-empty directory (shared/gpu/README.md). The
// recursive helpers (the ones that walk directories) are the ones built from
// libstdc++'s directory iterators, so all of ours live here and call only
// libc; a GPU session that finds another interposed call swaps it here.
#pragma once
#include <string>
#include <vector>

namespace dynarch::io {

// Removes `path` and everything below it; symbolic links are removed, never
// followed (the target of a link inside the tree survives). A missing path is
// not an error. Returns the number of entries removed. Throws
// std::runtime_error naming the path that could not be opened or removed.
std::size_t remove_tree(const std::string& path);

// mkdir -p: creates `path` and its missing parents (mode 0777 & ~umask). An
// existing directory is fine; an existing non-directory is an error. Throws
// std::runtime_error naming the path.
void make_dirs(const std::string& path);

// Names of the entries of directory `path` (without "." and ".."), sorted.
// Throws std::runtime_error naming the path.
std::vector<std::string> list_dir(const std::string& path);

}  // namespace dynarch::io
