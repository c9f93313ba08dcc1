// `loom profile`: measures this machine into a profile (through `loom-exec profile` on N ranks):
// its CPU (Eigen kernels, MPI collectives) or, with --backend cuda, its GPUs (CUDA kernels in
// bf16, NCCL collectives; one GPU per rank).

#include "cli/command.hpp"
#include "cli/error_relay.hpp"
#include "cli/launch.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <system_error>

namespace loom::cli {

Command add_profile_command(CLI::App& parent) {
  struct Options {
    std::string backend = "cpu", out, name;
    std::optional<int> ranks;
    int threads = 1;
    bool quick = false;
    bool off_grid = false;
    bool dry_run = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("profile", "Measure this machine's kernels and collectives into a profile");
  app->add_option("--backend", o->backend, "cpu (Eigen, MPI) or cuda (CUDA kernels in bf16, NCCL; one GPU per rank)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app->add_option("--ranks", o->ranks,
                  "Ranks for the collectives [default: cpu 2 (at least 2), cuda 1 (no collectives; one GPU per rank)]")
      ->check(CLI::Range(1, 4096));
  app->add_option("--threads", o->threads, "Threads per rank for the kernels")->check(CLI::Range(1, 1024))->capture_default_str();
  app->add_option("--out", o->out, "Profile JSON to write [default: profiles/NAME.json]");
  app->add_option("--name", o->name, "Profile name [default: <backend>-<host>]");
  app->add_flag("--quick", o->quick, "A reduced grid (under a minute)");
  app->add_flag("--off-grid", o->off_grid, "Sizes between the quick grid's points, to check interpolation");
  app->add_flag("--dry-run", o->dry_run, "Print the command that would run, and stop");
  app->footer(
      "Examples:\n  loom profile --quick --out this-machine.json\n  loom simulate plan.json --profile this-machine.json\n"
      "  loom profile --backend cuda --ranks 8 --out dgx.json");
  return {app, [o] {
            const bool gpu = o->backend == "cuda";
            // A CPU profile's link comes from its collectives; a GPU may be the node's only one.
            const int ranks = o->ranks.value_or(gpu ? 1 : 2);
            if (!gpu && ranks < 2)
              throw InvalidInput("--ranks {}: a CPU profile measures its collectives among at least 2 ranks", ranks);
            std::string name = o->name;
            if (name.empty()) {
              char host[256] = {};
              gethostname(host, sizeof(host) - 1);
              name = fmt::format("{}-{}", o->backend, host);
            }
            // The name becomes a file name (profiles/NAME.json) and a profile name in plans: no path
            // may hide in it ("../escape").
            if (name.empty() || name.size() > 100 || name.front() == '.' ||
                name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                    std::string::npos)
              throw InvalidInput("--name '{}' is not a profile name; expected up to 100 letters, digits, '.', '_' and "
                                 "'-', not starting with '.'",
                                 name);
            const bool default_out = o->out.empty();
            const std::string out = default_out ? fmt::format("profiles/{}.json", name) : o->out;
            // The default lands in profiles/ of the working directory, made when missing (but not by
            // a dry run, which changes nothing); a folder the user named must exist.
            std::error_code error;
            const bool default_folder_missing = default_out && !std::filesystem::is_directory("profiles", error);
            if (default_folder_missing && !o->dry_run && !std::filesystem::create_directory("profiles", error))
              throw IoError("cannot create 'profiles' for the profile: {}", error.message());
            // Refused before a minute of measuring, not after it.
            if (!(default_folder_missing && o->dry_run)) core::check_output_target(out);
            // Rank 0 times the kernels with all its threads: it must be allowed on as many cores.
            const Launch launch = launch_for({"mpirun", ranks, ranks, o->threads, cores_of_this_host()});
            print_launch_warning(launch);
            std::vector<std::string> command = launch.launcher_args;
            command.insert(command.end(), {executor_path(), "profile", "--out", out, "--name", name, "--threads",
                                           std::to_string(launch.threads_per_rank)});
            if (o->quick) command.push_back("--quick");
            if (o->off_grid) command.push_back("--off-grid");
            if (gpu) command.insert(command.end(), {"--backend", "cuda"});
            fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
            if (o->dry_run) return;
            ErrorRelay errors;
            const int status = spawn_and_wait(command, "", {}, &errors);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw_executor_failure(status, errors);
            fmt::print("loom: profile '{}' written to {}\n  use it with: loom simulate PLAN --profile {}\n", name, out,
                       out);
          }};
}

}  // namespace loom::cli
