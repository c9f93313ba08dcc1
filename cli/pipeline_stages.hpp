#pragma once
// What each pipeline stage holds and where it runs, for `loom show` and `loom simulate`: its
// ranks, its device group (mixed clusters) and its transformer layers (uneven splits).

#include "core/json_reader.hpp"
#include "core/plan.hpp"
#include "simulator/prediction.hpp"

#include <string>
#include <vector>

namespace loom::cli {

struct StageRow {
  int64_t stage = 0;
  int64_t first_rank = 0, last_rank = 0;  // a stage is tp × dp consecutive ranks (pp varies slowest)
  int64_t device_group = 0;               // index into cluster.device_groups()
  std::string profile;                    // that group's profile name
  int64_t layers = 0;                     // transformer layers over all its chunks
  std::vector<int64_t> chunk_layers;      // per virtual stage (chunk) of this rank
};

std::vector<StageRow> pipeline_stage_rows(const core::Plan& plan);

// Which key gives the split: "even split", "pipeline-layer-split", Megatron's flag names.
std::string layer_split_source(const core::ParallelPlan& parallel);
// "8 each (even split)" or "7, 9, 9, 7 (pipeline-layer-split)", with the chunks when interleaved.
std::string layer_split_text(const core::Plan& plan);
// For a mixed cluster: "stages 0–1 on a100-80gb-dgx (group 0, ranks 0–7), stages 2–3 on …".
std::string placement_text(const core::Plan& plan);

// The rows as JSON (unit-suffixed names where a quantity has a unit).
core::Json pipeline_stages_json(const core::Plan& plan);

// A text table of the stages; with a prediction also each stage's memory against its device's
// capacity, its busy time, and a mark on the bottleneck stage. Long pipelines are elided in the
// middle.
std::string pipeline_stage_table(const core::Plan& plan, const sim::Prediction* prediction = nullptr);

// "0–3", or "5" for one.
std::string range_text(int64_t first, int64_t last);

}  // namespace loom::cli
