// `loom profile`: measures this machine into a profile (through `loom-exec profile` on N ranks).

#include "cli/command.hpp"
#include "cli/process.hpp"
#include "core/error.hpp"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <thread>

namespace loom::cli {

Command add_profile_command(CLI::App& parent) {
  struct Options {
    std::string backend = "cpu", out, name;
    int ranks = 2;
    int threads = 1;
    bool quick = false;
    bool off_grid = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("profile", "Measure this machine's kernels and collectives into a profile");
  app->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app->add_option("--ranks", o->ranks, "Ranks for the collectives (at least 2)")->check(CLI::Range(2, 4096))->capture_default_str();
  app->add_option("--threads", o->threads, "Threads per rank for the kernels")->check(CLI::Range(1, 1024))->capture_default_str();
  app->add_option("--out", o->out, "Profile JSON to write [default: profiles/NAME.json]");
  app->add_option("--name", o->name, "Profile name [default: cpu-<host>]");
  app->add_flag("--quick", o->quick, "A reduced grid (under a minute)");
  app->add_flag("--off-grid", o->off_grid, "Sizes between the quick grid's points, to check interpolation");
  app->footer("Example:\n  loom profile --quick --out this-machine.json\n  loom simulate plan.json --profile this-machine.json");
  return {app, [o] {
            if (o->backend == "cuda")
              throw InvalidInput("--backend cuda: this build's executor has no CUDA backend yet; use --backend cpu");
            std::string name = o->name;
            if (name.empty()) {
              char host[256] = {};
              gethostname(host, sizeof(host) - 1);
              name = fmt::format("cpu-{}", host);
            }
            const std::string out = o->out.empty() ? fmt::format("profiles/{}.json", name) : o->out;
            // The default lands in profiles/ of the working directory, which may not exist yet.
            const std::filesystem::path parent = std::filesystem::path(out).parent_path();
            std::error_code error;
            if (!parent.empty()) std::filesystem::create_directories(parent, error);
            if (error) throw IoError("cannot create '{}' for the profile: {}", parent.string(), error.message());
            std::vector<std::string> command = {"mpirun", "-np", std::to_string(o->ranks)};
            if (o->ranks > int(std::thread::hardware_concurrency())) command.push_back("--oversubscribe");
            command.insert(command.end(), {executor_path(), "profile", "--out", out, "--name", name, "--threads",
                                           std::to_string(o->threads)});
            if (o->quick) command.push_back("--quick");
            if (o->off_grid) command.push_back("--off-grid");
            fmt::print(stderr, "loom: {}\n", fmt::join(command, " "));
            const int status = spawn_and_wait(command);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error("the profile measurement failed");
            fmt::print("loom: profile '{}' written to {}\n  use it with: loom simulate PLAN --profile {}\n", name, out,
                       out);
          }};
}

}  // namespace loom::cli
