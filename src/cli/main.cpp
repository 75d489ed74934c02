// dynarch: one binary for train | eval | score | generate | chunks | routes |
// stability | bench | info | reasoning | launch (cli/verbs.h).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/verbs.h"
#include "core/error.h"
#include "core/runtime.h"

using namespace dynarch;

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argc, argv);
  CLI::App app{"dynarch: tokenizer-free byte models with learned, input-dependent connectivity"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  cli::Globals g;
  app.add_option("--threads", g.threads, "CPU threads (default: all cores)");
  app.add_flag("--no-progress", g.no_progress, "no progress bar on stderr");
  std::vector<cli::Verb> verbs{cli::add_train(app, g)};
  for (auto&& more : {cli::add_eval_score(app, g), std::vector<cli::Verb>{cli::add_generate(app, g), cli::add_launch(app, g)},
                      cli::add_inspect(app, g), cli::add_tools(app, g)})
    verbs.insert(verbs.end(), more.begin(), more.end());
  try {
    app.parse(cli::split_launch(argc, argv), argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& v : verbs)
      if (v.cmd->parsed()) v.run();
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
