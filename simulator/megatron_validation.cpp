#include "simulator/megatron_validation.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"

#include <cmath>

namespace loom::sim {

const std::vector<PublishedRun>& megatron_ptdp_table1() {
  // Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
  // Megatron-LM", SC21, Table 1: seq 2048, vocab 51200, A100 80GB, achieved TFLOP/s per GPU.
  static const std::vector<PublishedRun> rows = {
      {"megatron-1.7b", 1.7, 1, 1, 32, 512, 137},     {"megatron-3.6b", 3.6, 2, 1, 64, 512, 138},
      {"megatron-7.5b", 7.5, 4, 1, 128, 512, 142},    {"megatron-18.4b", 18.4, 8, 1, 256, 1024, 135},
      {"megatron-39.1b", 39.1, 8, 2, 512, 1536, 138}, {"megatron-76.1b", 76.1, 8, 4, 1024, 1792, 140},
      {"megatron-145.6b", 145.6, 8, 8, 1536, 2304, 148}, {"megatron-310.1b", 310.1, 8, 16, 1920, 2160, 155},
      {"megatron-529.6b", 529.6, 8, 35, 2520, 2520, 163}, {"megatron-1t", 1008.0, 8, 64, 3072, 3072, 163},
  };
  return rows;
}

namespace {

core::Plan base_plan(const PublishedRun& run, const core::Profile& profile) {
  core::Plan plan;
  plan.model = core::find_model_preset(run.model).spec;
  plan.training.global_batch_size = run.global_batch_size;
  plan.training.dtype = core::DType::fp16;
  plan.cluster.devices_per_node = 8;
  plan.cluster.nodes = run.devices / 8;
  plan.cluster.profile = profile.name;
  plan.parallel.tensor_parallel = run.tensor_parallel;
  plan.parallel.pipeline_parallel = run.pipeline_parallel;
  plan.parallel.data_parallel = run.devices / (run.tensor_parallel * run.pipeline_parallel);
  plan.parallel.recompute = core::Recompute::full;
  return plan;
}

// Every (micro-batch size, schedule, layers per virtual stage) the paper's row allows.
std::vector<core::Plan> candidates(const core::Plan& base) {
  std::vector<core::Plan> plans;
  const int64_t layers_per_stage = base.model.num_layers / base.parallel.pipeline_parallel;
  for (int64_t micro_batch : {1, 2, 4, 8}) {
    core::Plan plan = base;
    plan.parallel.micro_batch_size = micro_batch;
    plan.parallel.schedule = core::Schedule::one_f_one_b;
    plan.parallel.layers_per_virtual_stage.reset();
    auto keep = [&](const core::Plan& p) {
      try {
        p.validate();
        plans.push_back(p);
      } catch (const InvalidInput&) {
      }
    };
    keep(plan);
    if (base.parallel.pipeline_parallel < 2) continue;
    plan.parallel.schedule = core::Schedule::interleaved;
    for (int64_t per_virtual = 1; per_virtual < layers_per_stage; ++per_virtual) {
      if (layers_per_stage % per_virtual != 0) continue;
      plan.parallel.layers_per_virtual_stage = per_virtual;
      keep(plan);
    }
  }
  return plans;
}

}  // namespace

ValidationReport validate_megatron_ptdp(const core::Profile& profile) {
  ValidationReport report;
  SimulationOptions options;
  options.record_timeline = false;
  double total_error = 0;
  for (const PublishedRun& run : megatron_ptdp_table1()) {
    const core::Plan base = base_plan(run, profile);
    ValidationRow best{run, base, {}, 0, 0};
    bool found = false;
    for (const core::Plan& plan : candidates(base)) {
      Prediction prediction = simulate(plan, profile, options);
      ++best.candidates;
      if (!prediction.fits) continue;
      if (!found || prediction.step_time_s < best.prediction.step_time_s) {
        best.plan = plan;
        best.prediction = std::move(prediction);
        found = true;
      }
    }
    if (!found) throw Infeasible("no plan for {} fits in {} memory", run.model, profile.name);
    best.error_fraction = best.prediction.hardware_tflops_per_device / run.tflops_per_device - 1.0;
    total_error += std::abs(best.error_fraction);
    report.rows.push_back(std::move(best));
  }
  report.mean_absolute_percentage_error = 100.0 * total_error / double(report.rows.size());
  return report;
}

}  // namespace loom::sim
