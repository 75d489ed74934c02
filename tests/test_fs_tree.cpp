// io/fs_tree: the POSIX recursive helpers that replace std::filesystem's
// (PyTorch 2.11's libtorch.so interposes a broken std::filesystem::remove_all).
#include "io/fs_tree.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using dynarch::io::list_dir;
using dynarch::io::make_dirs;
using dynarch::io::remove_tree;

namespace {

std::string scratch(const std::string& name) {
  const char* t = std::getenv("TMPDIR");
  std::string p = std::string(t && *t ? t : "/tmp") + "/dynarch_fs_" + name + "_" + std::to_string(::getpid());
  remove_tree(p);
  make_dirs(p);
  return p;
}

void touch(const std::string& p, const std::string& text = "x") {
  std::ofstream f(p);
  f << text;
  ASSERT_TRUE(f.good()) << p;
}

// f() must throw std::runtime_error whose message contains `part`.
template <class F>
void expect_error(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one containing '" << part << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}
#define EXPECT_ERROR(expr, part) expect_error([&] { expr; }, part)

bool exists_nofollow(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

TEST(FsTree, RemovesNestedTreeButNotTheTargetOfALinkToOutside) {
  const std::string root = scratch("nested");
  const std::string outside = root + "/outside", tree = root + "/tree";
  make_dirs(outside + "/keep");
  touch(outside + "/keep/precious.txt", "keep me");
  make_dirs(tree + "/a/b/c");
  make_dirs(tree + "/empty");
  touch(tree + "/top.txt");
  touch(tree + "/a/b/c/deep.bin");
  touch(tree + "/a/.hidden");
  ASSERT_EQ(::symlink(outside.c_str(), (tree + "/a/link_to_outside").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/keep/precious.txt").c_str(), (tree + "/file_link").c_str()), 0);
  ASSERT_EQ(::symlink("/nonexistent/dangling", (tree + "/dangling").c_str()), 0);

  // tree, a, b, c, empty, top.txt, deep.bin, .hidden, 3 links.
  EXPECT_EQ(remove_tree(tree), 11u);
  EXPECT_FALSE(exists_nofollow(tree));
  EXPECT_EQ(list_dir(root), std::vector<std::string>{"outside"});
  EXPECT_EQ(list_dir(outside + "/keep"), std::vector<std::string>{"precious.txt"});
  std::ifstream f(outside + "/keep/precious.txt");
  std::string text;
  std::getline(f, text);
  EXPECT_EQ(text, "keep me");
  remove_tree(root);
}

TEST(FsTree, ALinkGivenAsThePathIsRemovedNotFollowed) {
  const std::string root = scratch("toplink");
  make_dirs(root + "/target/sub");
  touch(root + "/target/sub/f");
  ASSERT_EQ(::symlink((root + "/target").c_str(), (root + "/link").c_str()), 0);
  EXPECT_EQ(remove_tree(root + "/link"), 1u);
  EXPECT_EQ(list_dir(root), std::vector<std::string>{"target"});
  EXPECT_EQ(list_dir(root + "/target/sub"), std::vector<std::string>{"f"});
  touch(root + "/plain");
  EXPECT_EQ(remove_tree(root + "/plain"), 1u);  // a single file
  remove_tree(root);
}

TEST(FsTree, MissingPathIsNotAnError) {
  const std::string root = scratch("missing");
  EXPECT_EQ(remove_tree(root + "/no/such/dir"), 0u);
  EXPECT_EQ(remove_tree(root + "/nothing"), 0u);
  EXPECT_EQ(remove_tree(root), 1u);
  EXPECT_EQ(remove_tree(root), 0u);
  EXPECT_THROW(remove_tree(""), std::runtime_error);
}

// /proc refuses unlink even to root, so this error case runs as any user.
TEST(FsTree, RefusedRemovalNamesThePath) {
  EXPECT_ERROR(remove_tree("/proc/self/fdinfo"), "/proc/self/fdinfo/");
  EXPECT_ERROR(make_dirs("/proc/self/dynarch_no/sub"), "/proc/self/dynarch_no");
  EXPECT_ERROR(list_dir("/nonexistent_dynarch_dir"), "'/nonexistent_dynarch_dir': No such file or directory");
}

// A directory without write permission (root ignores modes: skipped there,
// the /proc case above covers the error path).
TEST(FsTree, PermissionDeniedNamesTheEntryAndKeepsIt) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const std::string root = scratch("perm");
  make_dirs(root + "/locked");
  touch(root + "/locked/f");
  ASSERT_EQ(::chmod((root + "/locked").c_str(), 0555), 0);
  EXPECT_ERROR(remove_tree(root), root + "/locked/f': Permission denied");
  EXPECT_EQ(list_dir(root + "/locked"), std::vector<std::string>{"f"});
  ::chmod((root + "/locked").c_str(), 0755);
  remove_tree(root);
}

TEST(FsTree, MakeDirsCreatesParentsAndRejectsAFileInTheWay) {
  const std::string root = scratch("mk");
  make_dirs(root + "/a//b/c/");
  make_dirs(root + "/a/b/c");  // existing: fine
  EXPECT_EQ(list_dir(root + "/a/b"), std::vector<std::string>{"c"});
  touch(root + "/file");
  EXPECT_ERROR(make_dirs(root + "/file/sub"), root + "/file");
  EXPECT_ERROR(make_dirs(root + "/file"), "a file is in the way");
  EXPECT_EQ(list_dir(root), (std::vector<std::string>{"a", "file"}));
  remove_tree(root);
}
