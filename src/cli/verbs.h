// The verbs of the `dynarch` binary, one file per verb or family of verbs.
// Each add_* registers its sub-command with its options and returns the code
// that runs it once parsed; main.cpp parses, dispatches and reports errors.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace dynarch::cli {

// Flags of every verb (they may follow the sub-command).
struct Globals {
  int threads = 0;
  bool no_progress = false;
  bool progress() const { return !no_progress; }
};

struct Verb {
  CLI::App* cmd;
  std::function<void()> run;
};

Verb add_train(CLI::App& app, const Globals& g);                  // train_cmd.cpp
std::vector<Verb> add_eval_score(CLI::App& app, const Globals& g);  // eval_cmd.cpp: eval, score
Verb add_generate(CLI::App& app, const Globals& g);               // generate_cmd.cpp
std::vector<Verb> add_inspect(CLI::App& app, const Globals& g);   // inspect_cmd.cpp: chunks, stability, routes
std::vector<Verb> add_tools(CLI::App& app, const Globals& g);     // tools_cmd.cpp: info, bench, reasoning
Verb add_launch(CLI::App& app, const Globals& g);                 // launch_cmd.cpp: data-parallel workers
// `dynarch [globals] launch [launch options] VERB ...`: how many of argv are
// ours to parse (the rest, from VERB on, is the workers' command, untouched).
int split_launch(int argc, char** argv);
std::vector<std::string> launch_command();

// Shared by the verbs that read a trained model.
// Context length the model was trained with, if the run recorded it.
int64_t trained_seq_len(const std::string& model_path, int64_t fallback);
bool want_bf16(const std::string& dtype);
// Fails (naming the path) unless an output file can be written there; empty = none.
void check_output(const std::string& path);
// --device (core/device.h) of a verb that runs a model; `spec` keeps its default.
void add_device_option(CLI::App* cmd, std::string& spec);

}  // namespace dynarch::cli
