// `dynarch launch`: starts the workers of a data-parallel run on this host the
// way `torchrun` does (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// in each worker's environment), forwards their output with a rank prefix and
// fails when any worker fails.
#pragma once
#include <string>
#include <vector>

namespace dynarch::dist {

struct LaunchOptions {
  int nproc = 1;       // workers on this host
  int nnodes = 1;      // hosts in the run
  int node_rank = 0;   // this host's index (its workers are ranks node_rank*nproc ..)
  std::string master;  // ADDR:PORT of rank 0's rendezvous; empty = this host, a free port
  int grace_s = 0;     // after a failure, how long the others get to stop by themselves
  std::vector<std::string> command;  // the dynarch verb and its arguments, e.g. {"train", ...}
};

// Splits "ADDR:PORT" (IPv6 as [ADDR]:PORT); an error names the bad value.
std::pair<std::string, int> parse_master(const std::string& s);

// Runs the workers (this executable with `command`) to completion; returns the
// exit code: 0 if every worker succeeded, else the first failure's code.
int launch(const LaunchOptions& o);

}  // namespace dynarch::dist
