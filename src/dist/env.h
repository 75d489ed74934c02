// The distributed environment of this process, as torchrun and cluster
// schedulers set it: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
// None set = a single process (world 1). `dynarch launch` sets them for its
// workers.
#pragma once
#include <chrono>
#include <string>

namespace dynarch::dist {

struct Env {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool from_environment = false;  // RANK/WORLD_SIZE were set
  // Collective and rendezvous timeout (DYNARCH_DIST_TIMEOUT seconds, default 60):
  // a dead peer makes the others fail within it.
  std::chrono::seconds timeout{60};

  bool distributed() const { return world > 1; }
  // Reads and validates the variables; a rank outside the world, a bad port or
  // a half-set environment is an error naming the variable and its value.
  static Env from_process_environment();
};

}  // namespace dynarch::dist
