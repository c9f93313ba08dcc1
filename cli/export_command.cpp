// `loom export megatron PLAN.json`: the plan as Megatron-LM arguments; `loom export huggingface
// PLAN.json`: its model as a Hugging Face config.json, for the model files Loom writes.

#include "cli/command.hpp"
#include "core/default_plan.hpp"
#include "core/plan_json.hpp"
#include "planner/huggingface_config.hpp"
#include "planner/megatron_args.hpp"

#include <iostream>

namespace loom::cli {

Command add_export_command(CLI::App& parent) {
  struct Options {
    std::string target;
    std::string plan_path;
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("export", "Print a plan in another tool's terms");
  app->add_option("target", o->target, "What to export to: megatron (launch arguments) or huggingface (the model's config.json)")
      ->required()
      ->check(CLI::IsMember({"megatron", "huggingface"}));
  app->add_option("plan", o->plan_path, "Plan JSON file ('-' reads standard input); without it, the built-in default plan");
  app->footer("Example:\n  loom plan --model gpt3-175b --devices 1024 --global-batch-size 1536 --out best.json\n"
              "  loom export megatron best.json\n"
              "  loom run tiny-llama.json --save-model out/model.safetensors && loom export huggingface tiny-llama.json "
              "> out/config.json\n\n"
              "An uneven pipeline-layer-split is written as --decoder-first/last-pipeline-num-layers or\n"
              "--account-for-embedding/loss-in-pipeline-split when one gives the same layers, else refused with the\n"
              "reason; a mixed cluster's export says which --node-rank values run on which kind of host.");
  return {app, [o] {
            const core::Plan plan = o->plan_path.empty() ? core::default_plan() : core::read_plan_file(o->plan_path);
            plan.validate();
            if (o->target == "huggingface")
              std::cout << plan::huggingface_config(plan).dump(2) << "\n";
            else
              std::cout << plan::megatron_command(plan);
          }};
}

}  // namespace loom::cli
