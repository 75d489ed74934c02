#include "dist/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include "core/error.h"
#include "dist/env.h"

namespace dynarch::dist {

namespace {

// A free TCP port on this host for a standalone run's rendezvous (the kernel's
// choice; it stays free with overwhelming odds until rank 0 binds it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  check(fd >= 0, std::string("launch: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, (sockaddr*)&a, sizeof a) == 0 && ::getsockname(fd, (sockaddr*)&a, &len) == 0;
  ::close(fd);
  check(ok, std::string("launch: cannot find a free port: ") + std::strerror(errno));
  return ntohs(a.sin_port);
}

// One output stream of one worker, copied to ours with "[rank r] " at the
// start of every line (after '\r' too, so rank 0's progress bar still redraws).
struct Stream {
  int fd = -1;
  int out = STDOUT_FILENO;
  std::string prefix;
  bool line_start = true;
};

// The stream that left a line unfinished on the terminal (a progress bar):
// another stream's output starts on a new line.
Stream* g_partial = nullptr;

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own output is gone: nothing better to do
    off += (size_t)n;
  }
}

void forward(Stream& s, const char* buf, size_t n) {
  std::string text;
  if (g_partial && g_partial != &s) {
    write_all(g_partial->out, "\n");
    g_partial->line_start = true;
    g_partial = nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    const char c = buf[i];
    if (s.line_start && c != '\r' && c != '\n') text += s.prefix, s.line_start = false;
    text += c;
    if (c == '\n' || c == '\r') s.line_start = true;
  }
  write_all(s.out, text);
  g_partial = (!text.empty() && text.back() != '\n') ? &s : nullptr;
}

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

struct Worker {
  pid_t pid = -1;
  int rank = 0;
  bool done = false;
  int code = 0;  // exit code, or 128 + signal
};

std::string describe(const Worker& w) {
  return w.code > 128 ? "was killed by signal " + std::to_string(w.code - 128) + " (" + strsignal(w.code - 128) + ")"
                      : "exited with code " + std::to_string(w.code);
}

// The worker's environment: ours with the rendezvous variables set.
std::vector<std::string> worker_env(const LaunchOptions& o, int local, int world, const std::string& addr, int port) {
  const int rank = o.node_rank * o.nproc + local;
  std::vector<std::pair<std::string, std::string>> set{
      {"RANK", std::to_string(rank)},         {"WORLD_SIZE", std::to_string(world)},
      {"LOCAL_RANK", std::to_string(local)},  {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
      {"MASTER_ADDR", addr},                  {"MASTER_PORT", std::to_string(port)}};
  // Share this host's cores (as torchrun sets OMP_NUM_THREADS), unless told.
  if (!std::getenv("DYNARCH_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    set.push_back({"DYNARCH_THREADS", std::to_string(std::max(1u, cores / (unsigned)o.nproc))});
  }
  // Rank 0 draws its progress bar as on a terminal when ours is one.
  if (rank == 0 && isatty(STDERR_FILENO)) set.push_back({"DYNARCH_PROGRESS_TTY", "1"});
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    bool replaced = false;
    for (auto& [k, v] : set) replaced |= kv.rfind(k + "=", 0) == 0;
    if (!replaced) env.push_back(kv);
  }
  for (auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

// Everything is prepared before fork(): the child only redirects and execs.
pid_t spawn(const LaunchOptions& o, std::vector<std::string> env, int out_fd, int err_fd) {
  std::vector<std::string> args{"/proc/self/exe"};
  args.insert(args.end(), o.command.begin(), o.command.end());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  for (auto& e : env) envp.push_back(e.data());
  argv.push_back(nullptr), envp.push_back(nullptr);
  const pid_t pid = ::fork();
  check(pid >= 0, std::string("launch: fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  ::execve(argv[0], argv.data(), envp.data());
  static const char msg[] = "launch: cannot start the worker\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(127);
}

}  // namespace

std::pair<std::string, int> parse_master(const std::string& s) {
  const auto colon = s.rfind(':');
  check(colon != std::string::npos && colon > 0 && colon + 1 < s.size(),
        "--master \"" + s + "\": expected ADDR:PORT, e.g. 10.0.0.1:29500");
  std::string addr = s.substr(0, colon);
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  const std::string p = s.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(p.c_str(), &end, 10);
  check(*end == '\0' && port >= 1 && port <= 65535, "--master \"" + s + "\": port \"" + p + "\" is not 1..65535");
  return {addr, (int)port};
}

int launch(const LaunchOptions& o) {
  check(o.nproc >= 1, "launch: --nproc must be >= 1, got " + std::to_string(o.nproc));
  check(o.nnodes >= 1, "launch: --nnodes must be >= 1, got " + std::to_string(o.nnodes));
  check(o.node_rank >= 0 && o.node_rank < o.nnodes, "launch: --node-rank " + std::to_string(o.node_rank) +
                                                         " is outside 0.." + std::to_string(o.nnodes - 1));
  check(o.nnodes == 1 || !o.master.empty(), "launch: --nnodes > 1 needs --master ADDR:PORT (rank 0's host)");
  check(!o.command.empty(), "launch: give the command the workers run, e.g. `dynarch launch --nproc 2 train ...`");
  auto [addr, port] = o.master.empty() ? std::pair<std::string, int>{"127.0.0.1", free_port()}
                                       : parse_master(o.master);
  const int world = o.nproc * o.nnodes;
  const int grace = o.grace_s > 0 ? o.grace_s : (int)Env::from_process_environment().timeout.count() + 15;
  std::fprintf(stderr, "launch: %d worker(s) on this host, ranks %d..%d of %d, rendezvous %s:%d\n", o.nproc,
               o.node_rank * o.nproc, o.node_rank * o.nproc + o.nproc - 1, world, addr.c_str(), port);

  std::signal(SIGINT, on_signal);  // forwarded: the workers stop with a checkpoint
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<Worker> workers(o.nproc);
  std::vector<Stream> streams;
  streams.reserve(2 * o.nproc);
  for (int i = 0; i < o.nproc; ++i) {
    int out[2], err[2];
    check(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0, "launch: pipe failed");
    workers[i].rank = o.node_rank * o.nproc + i;
    workers[i].pid = spawn(o, worker_env(o, i, world, addr, port), out[1], err[1]);
    ::close(out[1]), ::close(err[1]);
    const std::string prefix = "[rank " + std::to_string(workers[i].rank) + "] ";
    streams.push_back({out[0], STDOUT_FILENO, prefix});
    streams.push_back({err[0], STDERR_FILENO, prefix});
  }

  int first_code = 0, forwarded = 0;
  std::string first_failure;
  auto deadline = std::chrono::steady_clock::time_point::max();
  size_t open = streams.size(), running = workers.size();
  while (open > 0 || running > 0) {
    if (g_signal && g_signal != forwarded) {
      forwarded = g_signal;
      for (auto& w : workers)
        if (!w.done) ::kill(w.pid, g_signal);
    }
    std::vector<pollfd> fds;
    for (auto& s : streams)
      if (s.fd >= 0) fds.push_back({s.fd, POLLIN, 0});
    if (!fds.empty()) ::poll(fds.data(), fds.size(), 200);
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (auto& s : streams) {
      if (s.fd < 0) continue;
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      char buf[8192];
      const ssize_t n = ::read(s.fd, buf, sizeof buf);
      if (n > 0) forward(s, buf, (size_t)n);
      else if (n == 0 || errno != EINTR) ::close(s.fd), s.fd = -1, --open;
    }
    for (auto& w : workers) {
      int status = 0;
      if (w.done || ::waitpid(w.pid, &status, WNOHANG) != w.pid) continue;
      w.done = true, --running;
      w.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (w.code != 0 && first_code == 0) {
        first_code = w.code;
        first_failure = "rank " + std::to_string(w.rank) + " " + describe(w);
        // The others notice the lost rank and stop by themselves (naming it);
        // whoever is still running after the grace period is killed.
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace);
      }
    }
    if (running > 0 && std::chrono::steady_clock::now() > deadline) {
      for (auto& w : workers)
        if (!w.done) {
          std::fprintf(stderr, "launch: rank %d still running %d s after the failure; killing it\n", w.rank, grace);
          ::kill(w.pid, SIGKILL);
        }
      deadline = std::chrono::steady_clock::time_point::max();
    }
  }
  if (g_partial) write_all(g_partial->out, "\n");
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (first_code != 0) {
    std::fprintf(stderr, "launch: failed: %s\n", first_failure.c_str());
    return first_code > 128 ? 1 : first_code;
  }
  return 0;
}

}  // namespace dynarch::dist
