#pragma once
// Prediction: what the simulator says one training step of a plan costs on a profile — step
// time with its breakdown, throughput, MFU, and memory per pipeline stage — plus the timeline.
// On a mixed cluster each pipeline stage is timed on its own device group's profile and its
// memory checked against that group's devices.

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

// One pipeline stage: what it holds, where it runs and whether it fits there.
struct StagePrediction {
  int64_t layers = 0;        // transformer layers of the pipeline rank (all its chunks)
  int64_t device_group = 0;  // index into cluster.device_groups() (0 on a cluster of one kind)
  std::string profile_name;  // its group's profile
  int64_t device_memory_bytes = 0;  // of one of its group's devices
  bool fits = false;         // its memory (Prediction::memory) within device_memory_bytes
  double busy_s = 0;         // compute and exposed communication in the step, not waiting
};

struct Prediction {
  std::string profile_name;  // on a mixed cluster the groups' profiles, joined by " + "
  core::DType dtype = core::DType::bf16;  // the type simulated: the plan's, or the device's only one
  double step_time_s = 0;
  double tokens_per_s = 0;
  double model_flops_per_step = 0;
  double hardware_flops_per_step = 0;
  double model_tflops_per_device = 0;     // model FLOPs / (step time · devices) / 1e12
  double hardware_tflops_per_device = 0;  // counting recomputation, as the PTD-P paper reports
  double mfu = 0;                         // model FLOPs / (step time · Σ devices · peak), each group's peak
  int64_t peak_memory_bytes = 0;          // max over stages
  int64_t device_memory_bytes = 0;        // the smallest device's (mixed clusters: see stages)
  bool fits = false;                      // every stage within its own group's device memory
  int32_t critical_pipeline_rank = 0;     // the rank that finishes last
  // The rank with the most busy time (compute and exposed communication, not waiting): the stage
  // that sets the pace, which an uneven split or another placement would relieve.
  int32_t bottleneck_pipeline_stage = 0;
  std::vector<StageMemory> memory;  // by pipeline stage
  std::vector<StagePrediction> stages;  // by pipeline stage
  Breakdown breakdown;
  LinkTimes on_link;
  Timeline timeline;
};

// One kind of device: throws InvalidInput when the plan's cluster is mixed (use the overload below).
Prediction simulate(const core::Plan& plan, const core::Profile& profile, const SimulationOptions& options = {});
// Each device group on its own profile (index = group, as cluster.device_groups(); e.g.
// core::resolve_group_profiles(plan.cluster)). Groups must simulate the same dtype.
Prediction simulate(const core::Plan& plan, const std::vector<core::Profile>& group_profiles,
                    const SimulationOptions& options = {});
// The profile names of a mixed cluster's groups for Prediction::profile_name: "a + b".
std::string joined_profile_names(const std::vector<core::Profile>& group_profiles);

// The Prediction document: unit-suffixed names; the timeline is not included (see trace export).
core::Json to_json(const Prediction& prediction);

// The store's row for a prediction of the plan stored under `plan_id`.
core::PredictionRow prediction_row(int64_t plan_id, const Prediction& prediction);

}  // namespace loom::sim
