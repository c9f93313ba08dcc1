// `loom`: the headless planner's command line. All of it lives in loom_cli.
#include "cli/command.hpp"

int main(int argc, char** argv) { return loom::cli::run_loom(argc, argv); }
