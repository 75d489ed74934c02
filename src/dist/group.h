// A process group on PyTorch's own distributed engine (c10d): a TCPStore
// rendezvous hosted by rank 0 and ProcessGroupGloo collectives over CPU
// tensors. Every failure of a collective becomes an error that names the rank
// that is gone: each rank keeps a heartbeat counter in the store, and a failed
// collective reads them to find the one that stopped.
#pragma once
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "dist/env.h"

namespace c10d {
class Store;
class ProcessGroupGloo;
}  // namespace c10d

namespace dynarch::dist {

// An asynchronous collective: wait() finishes it (or throws the named error).
class Pending {
 public:
  Pending() = default;
  Pending(c10::intrusive_ptr<c10d::Work> w, class Group* g, const char* what);
  void wait();
  bool active() const { return (bool)work_; }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  class Group* group_ = nullptr;
  const char* what_ = "";
};

class Group {
 public:
  // Rendezvous (rank 0 hosts the store at master_addr:master_port) within
  // env.timeout; an unreachable master is an error naming the address.
  explicit Group(const Env& env);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Sum over ranks, in place (contiguous CPU tensors).
  Pending allreduce_sum_async(at::Tensor& t);
  void allreduce_sum(at::Tensor& t) { allreduce_sum_async(t).wait(); }
  std::vector<double> sum(const std::vector<double>& v);
  Pending broadcast_async(at::Tensor& t, int root);
  void broadcast(at::Tensor& t, int root) { broadcast_async(t, root).wait(); }
  void send(at::Tensor& t, int dst);
  void recv(at::Tensor& t, int src);
  // Every rank's value of x, in rank order.
  std::vector<int64_t> all_gather(int64_t x);
  void barrier();

  // Throws the error for a failed collective `what`, naming the rank that is gone.
  [[noreturn]] void fail_collective(const char* what, const std::string& cause);

 private:
  void heartbeat_loop();
  int rank_, world_;
  Env env_;
  c10::intrusive_ptr<c10d::Store> store_, beat_store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::atomic<bool> stop_{false};
  std::thread beat_;
};

}  // namespace dynarch::dist
