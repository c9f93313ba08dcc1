// `loom checkpoint export DIR --out model.safetensors`: a run's newest checkpoint as one model file
// with Hugging Face GPT-2 names (done by loom-exec, which owns the checkpoint format).

#include "cli/command.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"

#include <sys/wait.h>

#include <filesystem>

namespace loom::cli {

Command add_checkpoint_command(CLI::App& parent) {
  struct Options {
    std::string action, dir, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("checkpoint", "Work with a run's checkpoints");
  app->add_option("action", o->action, "export")->required()->check(CLI::IsMember({"export"}));
  app->add_option("dir", o->dir, "Checkpoint directory (--checkpoint-dir of the run)")->required();
  app->add_option("--out", o->out, "Output file (safetensors, GPT-2 names)")->required();
  app->footer("Example:\n  loom checkpoint export ckpt --out model.safetensors");
  return {app, [o] {
            if (!std::filesystem::is_directory(o->dir)) throw InvalidInput("'{}' is not a directory", o->dir);
            const int status = spawn_and_wait({executor_path(), "export-checkpoint", o->dir, "--out", o->out});
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
              throw InvalidInput("could not export the checkpoint in '{}' (see the executor's message above)", o->dir);
          }};
}

}  // namespace loom::cli
