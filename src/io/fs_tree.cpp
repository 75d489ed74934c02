#include "io/fs_tree.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dynarch::io {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error(what + " '" + path + "': " + std::strerror(err));
}

struct Dir {
  DIR* d = nullptr;
  explicit Dir(DIR* p) : d(p) {}
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  ~Dir() {
    if (d) ::closedir(d);
  }
};

// Opens `name` (relative to dirfd) as a directory without following a link.
DIR* open_dir_at(int dirfd, const char* name, const std::string& shown) {
  int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory", shown, errno);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    fail("cannot open directory", shown, e);
  }
  return d;
}

// Empties the directory `name` in dirfd (depth first), then removes it.
// Descends through file descriptors, so a rename elsewhere cannot redirect it.
std::size_t remove_dir_at(int dirfd, const char* name, const std::string& shown) {
  std::size_t n = 0;
  {
    Dir dir(open_dir_at(dirfd, name, shown));
    const int fd = ::dirfd(dir.d);
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(dir.d);
      if (!e) {
        if (errno) fail("cannot read directory", shown, errno);
        break;
      }
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      const std::string child = shown + "/" + e->d_name;
      struct stat st;
      if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile
        fail("cannot stat", child, errno);
      }
      if (S_ISDIR(st.st_mode)) {
        n += remove_dir_at(fd, e->d_name, child);
      } else {
        if (::unlinkat(fd, e->d_name, 0) != 0 && errno != ENOENT) fail("cannot remove", child, errno);
        ++n;
      }
    }
  }
  if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) fail("cannot remove directory", shown, errno);
  return n + 1;
}

}  // namespace

std::size_t remove_tree(const std::string& path) {
  if (path.empty()) throw std::runtime_error("remove_tree: empty path");
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return 0;
    fail("cannot stat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove", path, errno);
    return 1;
  }
  return remove_dir_at(AT_FDCWD, path.c_str(), path);
}

void make_dirs(const std::string& path) {
  if (path.empty()) throw std::runtime_error("make_dirs: empty path");
  // Each prefix ending before a '/', then the whole path.
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    if (path[i - 1] == '/') continue;  // "a//b", trailing '/'
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0777) == 0) continue;
    const int e = errno;
    struct stat st;
    if (e == EEXIST && ::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    if (e == EEXIST) fail("cannot create directory (a file is in the way)", prefix, ENOTDIR);
    fail("cannot create directory", prefix, e);
  }
}

std::vector<std::string> list_dir(const std::string& path) {
  Dir dir(::opendir(path.c_str()));
  if (!dir.d) fail("cannot open directory", path, errno);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(dir.d);
    if (!e) {
      if (errno) fail("cannot read directory", path, errno);
      break;
    }
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.emplace_back(e->d_name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace dynarch::io
