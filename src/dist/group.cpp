#include "dist/group.h"

#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"

namespace dynarch::dist {

namespace {

constexpr auto kBeat = std::chrono::milliseconds(500);

std::string beat_key(int r) { return "dynarch/heartbeat/" + std::to_string(r); }

// No waiting for workers in the store itself (LibTorch 1.13's count includes
// clients in a way that made rank 0 sit out the whole timeout): the process
// group's full-mesh connection is the rendezvous.
c10::intrusive_ptr<c10d::Store> connect(const Env& env, bool server) {
  c10d::TCPStoreOptions o;
  o.port = (uint16_t)env.master_port;
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(env.timeout);
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    fail("rank " + std::to_string(env.rank) + ": cannot " + (server ? "host" : "reach") + " the rendezvous at " +
         env.master_addr + ":" + std::to_string(env.master_port) + " within " +
         std::to_string(env.timeout.count()) + " s (MASTER_ADDR / MASTER_PORT; is rank 0 running, is the port " +
         "free and open?): " + e.what());
  }
}

// The network interface Gloo binds: GLOO_SOCKET_IFNAME if set; loopback when the
// master is on this host's loopback; else the interface of this host's name.
std::shared_ptr<::gloo::transport::Device> make_device(const Env& env) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0)
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

Pending::Pending(c10::intrusive_ptr<c10d::Work> w, Group* g, const char* what)
    : work_(std::move(w)), group_(g), what_(what) {}

void Pending::wait() {
  if (!work_) return;
  auto w = std::move(work_);
  try {
    w->wait();
  } catch (const std::exception& e) {
    group_->fail_collective(what_, e.what());
  }
}

Group::Group(const Env& env) : rank_(env.rank), world_(env.world), env_(env) {
  store_ = connect(env, env.rank == 0);
  beat_store_ = connect(env, false);  // a second client for the heartbeat thread
  auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::duration_cast<std::chrono::milliseconds>(env.timeout));
  opts->devices.push_back(make_device(env));
  opts->threads = 2;
  try {
    pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank_, world_, opts);
  } catch (const std::exception& e) {
    fail("rank " + std::to_string(rank_) + ": cannot form the process group of " + std::to_string(world_) +
         " ranks: " + e.what());
  }
  beat_ = std::thread([this] { heartbeat_loop(); });
}

Group::~Group() {
  stop_ = true;
  if (beat_.joinable()) beat_.join();
}

void Group::heartbeat_loop() {
  const auto key = beat_key(rank_);
  while (!stop_) {
    try {
      beat_store_->add(key, 1);
    } catch (...) {
      return;  // the store is gone: collectives will say so
    }
    std::this_thread::sleep_for(kBeat);
  }
}

void Group::fail_collective(const char* what, const std::string& cause) {
  // Whose heartbeat stopped? Two readings 4 beats apart.
  std::vector<int64_t> a(world_), b(world_);
  std::string gone;
  try {
    for (int r = 0; r < world_; ++r) a[r] = beat_store_->add(beat_key(r), 0);
    std::this_thread::sleep_for(4 * kBeat);
    for (int r = 0; r < world_; ++r) b[r] = beat_store_->add(beat_key(r), 0);
    for (int r = 0; r < world_; ++r)
      if (r != rank_ && b[r] == a[r]) gone += (gone.empty() ? "rank " : ", rank ") + std::to_string(r);
  } catch (...) {
    gone = "rank 0 (the rendezvous host)";
  }
  if (gone.empty()) gone = "a peer (every heartbeat still runs: a timeout or a mismatched collective)";
  fail("rank " + std::to_string(rank_) + ": " + what + " failed: " + gone + " is gone; stopping (" + cause + ")");
}

Pending Group::allreduce_sum_async(at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  return {pg_->allreduce(ts), this, "all-reduce"};
}

std::vector<double> Group::sum(const std::vector<double>& v) {
  auto t = at::tensor(v, at::kDouble);
  allreduce_sum(t);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

Pending Group::broadcast_async(at::Tensor& t, int root) {
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  return {pg_->broadcast(ts, o), this, "broadcast"};
}

void Group::send(at::Tensor& t, int dst) {
  std::vector<at::Tensor> ts{t};
  Pending(pg_->send(ts, dst, 0), this, "send").wait();
}

void Group::recv(at::Tensor& t, int src) {
  std::vector<at::Tensor> ts{t};
  Pending(pg_->recv(ts, src, 0), this, "recv").wait();
}

std::vector<int64_t> Group::all_gather(int64_t x) {
  auto t = at::zeros({world_}, at::kLong);
  t[rank_] = x;
  allreduce_sum(t);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + world_);
}

void Group::barrier() {
  auto t = at::zeros({1}, at::kLong);
  allreduce_sum(t);
}

}  // namespace dynarch::dist
