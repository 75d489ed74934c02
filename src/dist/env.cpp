#include "dist/env.h"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace dynarch::dist {

namespace {

const char* var(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

long parse_int(const char* name, const char* value) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(value, &end, 10);
  if (errno || end == value || *end) fail(std::string(name) + "=\"" + value + "\" is not an integer");
  return x;
}

}  // namespace

Env Env::from_process_environment() {
  Env e;
  const char *rank = var("RANK"), *world = var("WORLD_SIZE");
  if (const char* t = var("DYNARCH_DIST_TIMEOUT")) {
    const long s = parse_int("DYNARCH_DIST_TIMEOUT", t);
    check(s >= 1, "DYNARCH_DIST_TIMEOUT must be >= 1 second, got " + std::string(t));
    e.timeout = std::chrono::seconds(s);
  }
  if (!rank && !world) return e;
  check(rank && world, std::string("distributed environment: ") + (rank ? "WORLD_SIZE" : "RANK") +
                           " is not set while " + (rank ? "RANK" : "WORLD_SIZE") + " is");
  e.from_environment = true;
  const long w = parse_int("WORLD_SIZE", world), r = parse_int("RANK", rank);
  check(w >= 1, "WORLD_SIZE must be >= 1, got " + std::string(world));
  check(r >= 0 && r < w, "RANK=" + std::string(rank) + " is outside the world (WORLD_SIZE=" + world + ")");
  e.world = (int)w, e.rank = (int)r;
  e.local_rank = var("LOCAL_RANK") ? (int)parse_int("LOCAL_RANK", var("LOCAL_RANK")) : e.rank;
  check(e.local_rank >= 0, "LOCAL_RANK must be >= 0");
  if (const char* a = var("MASTER_ADDR")) e.master_addr = a;
  if (const char* p = var("MASTER_PORT")) {
    const long port = parse_int("MASTER_PORT", p);
    check(port >= 1 && port <= 65535, "MASTER_PORT=" + std::string(p) + " is not a port (1..65535)");
    e.master_port = (int)port;
  }
  return e;
}

}  // namespace dynarch::dist
