// dynarch launch: the workers of a data-parallel run on this host (dist/launch.h).
#include "cli/verbs.h"
#include "dist/launch.h"

namespace dynarch::cli {

namespace {
std::vector<std::string> g_command;  // the workers' command, set by split_launch
}

std::vector<std::string> launch_command() { return g_command; }

int split_launch(int argc, char** argv) {
  // Our own arguments end at the first that is not a launch option; every
  // launch option takes a value (`--nproc 2` or `--nproc=2`).
  int i = 1;
  while (i < argc && argv[i][0] == '-') i += std::string(argv[i]).find('=') == std::string::npos ? 2 : 1;
  if (i >= argc || std::string(argv[i]) != "launch") return argc;
  int j = i + 1;
  while (j < argc && argv[j][0] == '-') {
    const std::string a = argv[j];
    j += (a == "-h" || a == "--help" || a.find('=') != std::string::npos) ? 1 : 2;
  }
  if (j > argc) return argc;  // a launch option without its value: CLI11 says so
  g_command.assign(argv + j, argv + argc);
  return j;
}

Verb add_launch(CLI::App& app, const Globals& g) {
  auto* cmd = app.add_subcommand(
      "launch",
      "start N data-parallel workers of a command (like torchrun), e.g. `dynarch launch --nproc 2 train ...`");
  auto o = std::make_shared<dist::LaunchOptions>();
  cmd->add_option("--nproc", o->nproc, "workers on this host")->capture_default_str();
  cmd->add_option("--nnodes", o->nnodes, "hosts in the run (each runs `dynarch launch` with its --node-rank)")
      ->capture_default_str();
  cmd->add_option("--node-rank", o->node_rank, "this host's index, 0..nnodes-1 (node 0 hosts rank 0)")
      ->capture_default_str();
  cmd->add_option("--master", o->master,
                  "ADDR:PORT of node 0, where rank 0 hosts the rendezvous (default: this host, a free port)");
  cmd->add_option("--grace", o->grace_s,
                  "seconds the other workers get to stop by themselves after one fails (default: "
                  "DYNARCH_DIST_TIMEOUT + 15)");
  return {cmd, [o, &g] {
            o->command = launch_command();
            if (g.threads > 0) o->command.insert(o->command.end(), {"--threads", std::to_string(g.threads)});
            if (g.no_progress) o->command.push_back("--no-progress");
            const int code = dist::launch(*o);
            if (code != 0) std::exit(code);
          }};
}

}  // namespace dynarch::cli
