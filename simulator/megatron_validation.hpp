#pragma once
// Checks the simulator against published measurements: the ten GPT configurations of
// Narayanan et al. (SC21) Table 1, trained on A100 80GB (Selene) with Megatron-LM.

#include "core/plan.hpp"
#include "core/profile.hpp"
#include "simulator/prediction.hpp"

#include <string>
#include <vector>

namespace loom::sim {

struct PublishedRun {
  std::string model;  // Loom preset name
  double parameters_billion;
  int64_t tensor_parallel, pipeline_parallel, devices, global_batch_size;
  double tflops_per_device;  // achieved, counting the recompute pass (the paper's 96·B·s·L·h² form)
};

// Narayanan et al. 2021, Table 1 (also in ../shared/reference/megatron_ptdp_table1.csv).
const std::vector<PublishedRun>& megatron_ptdp_table1();

struct ValidationRow {
  PublishedRun published;
  core::Plan plan;  // the micro-batch size and interleaving the simulator found best
  Prediction prediction;
  double error_fraction;  // (predicted − published) / published
  int64_t candidates = 0;  // plans simulated for this row
};

struct ValidationReport {
  std::vector<ValidationRow> rows;
  double mean_absolute_percentage_error = 0;  // in percent
};

// The paper fixes tp, pp, dp and the batch, trains with full recompute and 16-bit precision, and
// does not list micro-batch sizes or interleaving per row: for each row simulate every
// micro-batch size (1, 2, 4, 8 that divide the batch) with and without interleaving (every
// valid layers-per-virtual-stage), keep the plans that fit in memory, and take the fastest.
ValidationReport validate_megatron_ptdp(const core::Profile& profile);

}  // namespace loom::sim
