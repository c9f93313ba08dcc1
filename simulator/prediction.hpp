#pragma once
// Prediction: what the simulator says one training step of a plan costs on a profile — step
// time with its breakdown, throughput, MFU, and memory per pipeline stage — plus the timeline.

#include "core/json_reader.hpp"
#include "core/plan.hpp"
#include "core/profile.hpp"
#include "core/store.hpp"
#include "simulator/event_simulation.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/step_costs.hpp"

#include <vector>

namespace loom::sim {

// Where the critical (slowest) pipeline rank's step time went; the parts sum to step_time_s.
// Communication hidden behind compute (overlap-grad-reduce, overlap-param-gather, tp-comm-overlap)
// is reported beside them, in the *_hidden_s fields, which are not part of the sum.
struct Breakdown {
  double forward_s = 0;
  double backward_s = 0;
  double recompute_s = 0;
  double tp_comm_exposed_s = 0;
  double pp_comm_exposed_s = 0;
  double pp_bubble_s = 0;
  double dp_comm_exposed_s = 0;
  double optimizer_s = 0;
  double tp_comm_hidden_s = 0;  // tensor-parallel communication run beside GEMMs
  double dp_comm_hidden_s = 0;  // data-parallel communication run beside the backward or forward
  double total_s() const;
};

// Time each kind of link is busy for one device of the critical rank, overlapped or not.
struct LinkTimes {
  double tp_comm_s = 0;
  double pp_comm_s = 0;
  double dp_comm_s = 0;
};

struct Prediction {
  std::string profile_name;
  core::DType dtype = core::DType::bf16;  // the type simulated: the plan's, or the device's only one
  double step_time_s = 0;
  double tokens_per_s = 0;
  double model_flops_per_step = 0;
  double hardware_flops_per_step = 0;
  double model_tflops_per_device = 0;     // model FLOPs / (step time · devices) / 1e12
  double hardware_tflops_per_device = 0;  // counting recomputation, as the PTD-P paper reports
  double mfu = 0;                         // model FLOPs / (step time · devices · peak)
  int64_t peak_memory_bytes = 0;          // max over stages
  int64_t device_memory_bytes = 0;
  bool fits = false;
  int32_t critical_pipeline_rank = 0;
  std::vector<StageMemory> memory;  // by pipeline stage
  Breakdown breakdown;
  LinkTimes on_link;
  Timeline timeline;
};

Prediction simulate(const core::Plan& plan, const core::Profile& profile, const SimulationOptions& options = {});

// The Prediction document: unit-suffixed names; the timeline is not included (see trace export).
core::Json to_json(const Prediction& prediction);

// The store's row for a prediction of the plan stored under `plan_id`.
core::PredictionRow prediction_row(int64_t plan_id, const Prediction& prediction);

}  // namespace loom::sim
