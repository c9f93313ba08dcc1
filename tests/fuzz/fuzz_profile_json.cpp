// A device profile (`--profile file.json`): read strictly; a profile that passes is used to
// simulate a small plan, which looks up and interpolates every table it has.

#include "core/default_plan.hpp"
#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/model_presets.hpp"
#include "core/profile.hpp"
#include "fuzz_input.hpp"
#include "simulator/prediction.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const loom::core::Json json = loom::core::parse_json_text(loom::fuzz::as_text(data, size), "profile.json");
    const loom::core::Profile profile = loom::core::profile_from_json(json, "profile.json");
    static const loom::core::Plan plan = [] {
      loom::core::Plan p = loom::core::default_plan();
      p.model = loom::core::find_model_preset("loom-tiny").spec;
      p.cluster.nodes = 1;
      p.cluster.devices_per_node = 4;
      p.parallel.tensor_parallel = 2;
      p.parallel.pipeline_parallel = 2;
      p.parallel.data_parallel = 1;
      p.parallel.micro_batch_size = 2;
      p.training.global_batch_size = 8;
      p.validate();
      return p;
    }();
    loom::sim::SimulationOptions options;
    options.record_timeline = false;
    (void)loom::sim::simulate(plan, profile, options);
  } catch (const loom::Error&) {
  }
  return 0;
}
