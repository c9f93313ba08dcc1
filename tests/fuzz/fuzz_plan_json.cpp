// A plan document (plan.json): parsed, read strictly and checked against Megatron-LM's rules;
// a plan that passes is also explained as `loom show` does (parameters, FLOPs, rank layout).

#include "core/error.hpp"
#include "core/model_arithmetic.hpp"
#include "core/plan_json.hpp"
#include "core/rank_layout.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const loom::core::Plan plan = loom::core::read_plan_text(loom::fuzz::as_text(data, size), "fuzz.json");
    (void)loom::core::parameter_count(plan.model);
    (void)loom::core::to_json(plan).dump();
  } catch (const loom::Error&) {
  }
  return 0;
}
