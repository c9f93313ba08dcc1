// `loom checkpoint export DIR --out model.safetensors`: a run's newest checkpoint as one model file
// with Hugging Face GPT-2 or Llama names (done by loom-exec, which owns the checkpoint format).

#include "cli/command.hpp"
#include "cli/error_relay.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"  // check_output_target

#include <sys/wait.h>

#include <filesystem>
#include <vector>

namespace loom::cli {

Command add_checkpoint_command(CLI::App& parent) {
  struct Options {
    std::string action, dir, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("checkpoint", "Work with a run's checkpoints");
  app->add_option("action", o->action, "export")->required()->check(CLI::IsMember({"export"}));
  app->add_option("dir", o->dir, "Checkpoint directory (--checkpoint-dir of the run)")->required();
  app->add_option("--out", o->out, "Output file (safetensors, Hugging Face GPT-2 or Llama names)")->required();
  app->footer("Example:\n  loom checkpoint export ckpt --out model.safetensors");
  return {app, [o] {
            if (!std::filesystem::is_directory(o->dir)) throw InvalidInput("'{}' is not a directory", o->dir);
            // The export may not land on a file of any checkpoint: they are the run's, not Loom's to replace.
            const std::vector<std::filesystem::path> inputs = {o->dir};
            core::check_output_target(o->out, inputs);
            ErrorRelay errors;
            const int status = spawn_and_wait({executor_path(), "export-checkpoint", o->dir, "--out", o->out}, "", {}, &errors);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw_executor_failure(status, errors);
          }};
}

}  // namespace loom::cli
