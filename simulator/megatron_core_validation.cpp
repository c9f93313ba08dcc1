#include "simulator/megatron_core_validation.hpp"

#include "core/model_presets.hpp"

#include <cmath>

namespace loom::sim {

const std::vector<CurrentMegatronRun>& megatron_core_h100_runs() {
  // NVIDIA/dgxc-benchmarking, nemo_megatron/README_175b.md (two recipe versions): GPT-3 175B,
  // TP 4, PP 8, VP 12, micro-batch 1, sequence 2048, global batch = 16 per node, bf16.
  // simulator/data/megatron_core_h100.csv holds the same rows; a test keeps the two equal.
  static const std::string nemo_2405 = "NeMo container nvcr.io/nvidia/nemo:24.05 (dgxc-benchmarking GSW 24.11)";
  static const std::string nemo_2412 = "NeMo container nvcr.io/nvidia/nemo:24.12 (dgxc-benchmarking GSW 25.02)";
  static const std::vector<CurrentMegatronRun> rows = {
      {"dgxc-gpt3-gsw2411", "gpt3-175b", 2048, 128, 256, 1, 4, 8, 12, 8.91, nemo_2405},
      {"dgxc-gpt3-gsw2411", "gpt3-175b", 2048, 256, 512, 1, 4, 8, 12, 8.95, nemo_2405},
      {"dgxc-gpt3-gsw2411", "gpt3-175b", 2048, 512, 1024, 1, 4, 8, 12, 9.09, nemo_2405},
      {"dgxc-gpt3-gsw2411", "gpt3-175b", 2048, 1024, 2048, 1, 4, 8, 12, 9.01, nemo_2405},
      {"dgxc-gpt3-gsw2411", "gpt3-175b", 2048, 2048, 4096, 1, 4, 8, 12, 9.02, nemo_2405},
      {"dgxc-gpt3-gsw2502", "gpt3-175b", 2048, 128, 256, 1, 4, 8, 12, 8.309, nemo_2412},
      {"dgxc-gpt3-gsw2502", "gpt3-175b", 2048, 256, 512, 1, 4, 8, 12, 8.408, nemo_2412},
      {"dgxc-gpt3-gsw2502", "gpt3-175b", 2048, 512, 1024, 1, 4, 8, 12, 8.42, nemo_2412},
      {"dgxc-gpt3-gsw2502", "gpt3-175b", 2048, 1024, 2048, 1, 4, 8, 12, 8.453, nemo_2412},
      {"dgxc-gpt3-gsw2502", "gpt3-175b", 2048, 2048, 4096, 1, 4, 8, 12, 8.49, nemo_2412},
  };
  return rows;
}

core::Plan plan_of(const CurrentMegatronRun& run, const core::Profile& profile) {
  core::Plan plan;
  plan.model = core::find_model_preset(run.model).spec;
  plan.model.seq_length = run.seq_length;
  plan.training.global_batch_size = run.global_batch_size;
  plan.training.dtype = core::DType::bf16;
  plan.cluster.devices_per_node = 8;
  plan.cluster.nodes = run.devices / 8;
  plan.cluster.profile = profile.name;
  core::ParallelPlan& p = plan.parallel;
  p.tensor_parallel = run.tensor_parallel;
  p.pipeline_parallel = run.pipeline_parallel;
  p.data_parallel = run.devices / (run.tensor_parallel * run.pipeline_parallel);
  p.micro_batch_size = run.micro_batch_size;
  if (run.virtual_stages > 1) {
    p.schedule = core::Schedule::interleaved;
    p.layers_per_virtual_stage = plan.model.num_layers / (run.pipeline_parallel * run.virtual_stages);
  }
  p.recompute = core::Recompute::none;
  p.sequence_parallel = true;
  p.distributed_optimizer = true;
  p.attention_backend = core::AttentionBackend::flash;
  p.overlap_grad_reduce = true;
  p.overlap_param_gather = true;
  p.tp_comm_overlap = true;
  // The recipe's bucket_cap_mb of 220 MB holds 110 M parameters of bf16 gradients.
  p.ddp_bucket_size = 110'000'000;
  plan.validate();
  return plan;
}

CurrentMegatronReport validate_megatron_core_h100(const core::Profile& profile) {
  CurrentMegatronReport report;
  SimulationOptions options;
  options.record_timeline = false;
  double total_error = 0;
  for (const CurrentMegatronRun& run : megatron_core_h100_runs()) {
    CurrentMegatronRow row{run, plan_of(run, profile), {}, 0};
    row.prediction = simulate(row.plan, profile, options);
    row.error_fraction = row.prediction.tokens_per_s / run.tokens_per_s() - 1.0;
    total_error += std::abs(row.error_fraction);
    report.rows.push_back(std::move(row));
  }
  report.mean_absolute_percentage_error = 100.0 * total_error / double(report.rows.size());
  return report;
}

}  // namespace loom::sim
