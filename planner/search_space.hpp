#pragma once
// The space a search covers: every combination of tensor, pipeline and data parallelism with
// virtual stages, micro-batch size, schedule, recompute, sequence parallelism, the distributed
// optimizer and Megatron-Core's overlaps (gradient reduce, parameter gather, TP communication)
// for one model, batch and cluster, each either valid under Megatron-LM's rules or
// counted under the rule it breaks.

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "planner/layer_split.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace loom::plan {

enum class Objective { step_time, tokens_per_s, cost, memory };
std::string_view to_string(Objective objective);
Objective parse_objective(std::string_view text);  // InvalidInput listing the choices

// Mixed clusters with more groups than this are searched in the order given only (4 groups would
// already be 24 searches).
inline constexpr size_t kMaxOrderedGroups = 3;

struct SearchRequest {
  core::ModelSpec model;
  core::TrainSpec training;  // global batch, dtype, optimizer settings copied into every plan
  int64_t devices = 0;
  int64_t devices_per_node = 8;
  std::string profile_name;  // as the plans will name it
  core::Profile profile;
  // A mixed cluster: its device groups, placed in this order along the pipeline (the fields above
  // then summarise them: devices the sum, devices_per_node the common value, profile_name and
  // profile the first group's), and each group's profile in the same order. Both empty for a
  // cluster of one kind.
  std::vector<core::DeviceGroup> groups;
  std::vector<core::Profile> group_profiles;
  // Also search uneven layer splits over the pipeline stages (pipeline-layer-split).
  bool search_layer_splits = true;
  // On a mixed cluster of at most kMaxOrderedGroups groups, also search the other orders of the
  // groups along the pipeline (which hosts take the first node ranks is the launcher's choice).
  bool search_group_orders = true;
  std::optional<double> price_per_device_hour;
  Objective objective = Objective::step_time;
  bool allow_cross_node_tp = false;  // tp beyond one node
  bool allow_fewer_devices = false;  // also plans that leave devices idle (whole nodes, or part of one)
  int64_t max_micro_batch_size = 16;  // micro-batch sizes tried: powers of two up to this
  // Kept in every plan (the user's choice, not searched): which attention kernel the model runs.
  core::AttentionBackend attention_backend = core::AttentionBackend::unfused;

  void validate() const;  // InvalidInput for an impossible request
  // The device memory the reject reasons and tables name: on a mixed cluster the smallest group's
  // (the search itself checks each stage against its own group's devices).
  int64_t device_memory_bytes() const;

 private:
  void validate_groups() const;
};

// Planner-level reasons to skip a combination, after Megatron's own rules.
struct RejectCounts {
  std::array<int64_t, core::kPlanRuleCount> by_rule{};
  // Planner-level reasons, after Megatron's own rules:
  int64_t distributed_optimizer_without_dp = 0;  // ZeRO-1 over one replica: the same plan as without it
  int64_t gpipe_without_pipeline = 0;            // with pp = 1 every schedule is the same plan
  int64_t overlap_without_dp = 0;                // overlap-grad-reduce over one replica: nothing to overlap
  // pp × virtual stages × microbatches above core::limits::kMaxSimulatedStageMicrobatches
  int64_t too_large_to_simulate = 0;
  int64_t does_not_fit = 0;                      // peak memory above the device's capacity
  int64_t not_countable = 0;                     // memory beyond core::limits::kMaxCountedBytes

  int64_t total() const;
  // "reason: count" lines, largest first, naming each rule as describe(PlanRule) does.
  std::vector<std::pair<std::string, int64_t>> reasons(int64_t device_memory_bytes) const;
  RejectCounts& operator+=(const RejectCounts& other);
};

// One point of the space, compact: a Plan is made from it only when needed.
struct Candidate {
  int32_t devices = 0;
  int32_t tensor_parallel = 1, pipeline_parallel = 1, data_parallel = 1;
  int32_t micro_batch_size = 1;
  int32_t layers_per_virtual_stage = 0;  // 0: none
  core::Schedule schedule = core::Schedule::one_f_one_b;
  core::Recompute recompute = core::Recompute::none;
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  bool overlap_grad_reduce = false;
  bool overlap_param_gather = false;
  bool tp_comm_overlap = false;
  // The layers of each virtual stage (planner/layer_split.hpp): even unless set. With an uneven
  // split and the interleaved schedule, layers_per_virtual_stage is 0 and the split gives v.
  LayerSplit split;

  bool operator==(const Candidate&) const = default;
};

// The model the plans of a search train. Each tp pads the vocabulary its own way (Megatron's
// make-vocab-size-divisible-by × tp); a model that pins padded-vocab-size alone (a model file
// written before Loom derived it) is searched with that size as the tokenizer's, as Loom always
// has. A pin beside vocab-size holds, and rules out the tp that do not divide it.
core::ModelSpec searched_model(const core::ModelSpec& model);

// Writes the candidate's choices into `plan` (whose model, training and cluster come from the
// request, the model through searched_model), including the cluster's node count when fewer
// devices are used and its layer split (pipeline-layer-split, empty for the even split).
void apply(const Candidate& candidate, const SearchRequest& request, core::Plan& plan);
core::Plan make_plan(const Candidate& candidate, const SearchRequest& request);

// Every valid combination, in a fixed order; `rejects` counts the invalid ones by rule (and the
// ones too large to simulate). With request.search_layer_splits, each combination that passes
// every rule but the layer split's is also tried with the uneven splits planner/split_guide.hpp
// picks for it (each such try one more combination, counted like the others). `combinations` is the number examined. `progress` hears the
// fraction of device counts walked; once `cancelled` says so, throws loom::Cancelled. Throws
// InvalidInput when more than core::limits::kMaxSearchCandidates plans are valid.
std::vector<Candidate> enumerate_candidates(const SearchRequest& request, RejectCounts& rejects,
                                            int64_t& combinations,
                                            const std::function<void(double)>& progress = {},
                                            const std::function<bool()>& cancelled = {});

}  // namespace loom::plan
