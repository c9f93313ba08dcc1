#include "core/plan.hpp"

#include "core/error.hpp"

namespace loom::core {
namespace {

// The rules below are Megatron-LM's (megatron/training/arguments.py and
// core/parallel_state.py); the messages name each field the way plan.json spells it.
void validate_positive_sizes(const ParallelPlan& p) {
  if (p.tensor_parallel <= 0)
    throw InvalidInput("tensor-model-parallel-size={} must be a positive integer", p.tensor_parallel);
  if (p.pipeline_parallel <= 0)
    throw InvalidInput("pipeline-model-parallel-size={} must be a positive integer", p.pipeline_parallel);
  if (p.micro_batch_size <= 0)
    throw InvalidInput("micro-batch-size={} must be a positive integer", p.micro_batch_size);
  if (p.micro_batch_size > (int64_t(1) << 24))
    throw InvalidInput("micro-batch-size={} is larger than the supported {}", p.micro_batch_size, 1 << 24);
}

// After the model rules, so that a size that cannot split the model is reported as such
// before any complaint about the device count.
void validate_device_count(const Plan& plan) {
  const ParallelPlan& p = plan.parallel;
  const int64_t devices = plan.cluster.world_size();
  if (devices % p.model_parallel_size() != 0)
    throw InvalidInput(
        "tensor-model-parallel-size={} × pipeline-model-parallel-size={} = {} does not divide the {} "
        "devices (nodes={} × devices-per-node={})",
        p.tensor_parallel, p.pipeline_parallel, p.model_parallel_size(), devices, plan.cluster.nodes,
        plan.cluster.devices_per_node);
  if (p.world_size() != devices)
    throw InvalidInput("data-parallel-size={} × tensor-model-parallel-size={} × "
                       "pipeline-model-parallel-size={} = {} but the cluster has {} devices",
                       p.data_parallel, p.tensor_parallel, p.pipeline_parallel, p.world_size(), devices);
}

void validate_tensor_parallel(const Plan& plan) {
  const ModelSpec& m = plan.model;
  const int64_t t = plan.parallel.tensor_parallel;
  if (m.num_attention_heads % t != 0)
    throw InvalidInput("tensor-model-parallel-size={} does not divide num-attention-heads={}", t,
                       m.num_attention_heads);
  if (m.num_query_groups % t != 0)
    throw InvalidInput("tensor-model-parallel-size={} does not divide num-query-groups={}", t,
                       m.num_query_groups);
  if (m.ffn_hidden_size % t != 0)
    throw InvalidInput("tensor-model-parallel-size={} does not divide ffn-hidden-size={}", t,
                       m.ffn_hidden_size);
  if (m.padded_vocab_size % t != 0) {
    // Megatron pads the vocabulary to a multiple of 128·t (--make-vocab-size-divisible-by).
    const int64_t multiple = 128 * t;
    const int64_t padded = (m.padded_vocab_size + multiple - 1) / multiple * multiple;
    throw InvalidInput(
        "tensor-model-parallel-size={} does not divide padded-vocab-size={}; pad the vocabulary "
        "to a multiple of {} (e.g. {})",
        t, m.padded_vocab_size, multiple, padded);
  }
  if (plan.parallel.sequence_parallel) {
    if (t == 1)
      throw InvalidInput("sequence-parallel=true needs tensor-model-parallel-size > 1 (it is 1)");
    if (m.seq_length % t != 0)
      throw InvalidInput("sequence-parallel=true needs tensor-model-parallel-size={} to divide "
                         "seq-length={}",
                         t, m.seq_length);
  }
}

void validate_pipeline(const Plan& plan) {
  const ParallelPlan& p = plan.parallel;
  const int64_t layers = plan.model.num_layers;
  if (layers % p.pipeline_parallel != 0)
    throw InvalidInput("pipeline-model-parallel-size={} does not divide num-layers={}",
                       p.pipeline_parallel, layers);
  if (p.schedule != Schedule::interleaved) {
    if (p.layers_per_virtual_stage)
      throw InvalidInput("num-layers-per-virtual-pipeline-stage={} is only used with "
                         "schedule=interleaved (schedule is {})",
                         *p.layers_per_virtual_stage, to_string(p.schedule));
    return;
  }
  if (p.pipeline_parallel < 2)
    throw InvalidInput("schedule=interleaved needs pipeline-model-parallel-size > 1 (it is {})",
                       p.pipeline_parallel);
  if (!p.layers_per_virtual_stage)
    throw InvalidInput("schedule=interleaved needs num-layers-per-virtual-pipeline-stage");
  const int64_t per_virtual = *p.layers_per_virtual_stage;
  const int64_t per_stage = layers / p.pipeline_parallel;
  if (per_virtual <= 0)
    throw InvalidInput("num-layers-per-virtual-pipeline-stage={} must be a positive integer", per_virtual);
  if (per_stage % per_virtual != 0)
    throw InvalidInput(
        "num-layers-per-virtual-pipeline-stage={} does not divide the {} layers per pipeline stage "
        "(num-layers={} / pipeline-model-parallel-size={})",
        per_virtual, per_stage, layers, p.pipeline_parallel);
  if (per_stage / per_virtual < 2)
    throw InvalidInput(
        "num-layers-per-virtual-pipeline-stage={} leaves 1 virtual stage per pipeline rank; "
        "schedule=interleaved needs at least 2 (use a value below {} or schedule=1f1b)",
        per_virtual, per_stage);
}

void validate_batch(const Plan& plan) {
  const ParallelPlan& p = plan.parallel;
  const int64_t batch = plan.training.global_batch_size;
  const int64_t per_step = p.micro_batch_size * p.data_parallel;
  if (batch % per_step != 0)
    throw InvalidInput(
        "global-batch-size={} is not divisible by micro-batch-size={} × data-parallel-size={} = {}",
        batch, p.micro_batch_size, p.data_parallel, per_step);
  if (p.schedule == Schedule::interleaved && plan.microbatches() % p.pipeline_parallel != 0)
    throw InvalidInput(
        "schedule=interleaved needs the {} microbatches per step (global-batch-size={} / "
        "(micro-batch-size={} × data-parallel-size={})) to be a multiple of "
        "pipeline-model-parallel-size={}",
        plan.microbatches(), batch, p.micro_batch_size, p.data_parallel, p.pipeline_parallel);
}

}  // namespace

void Plan::validate() const {
  model.validate();
  training.validate();
  cluster.validate();
  validate_positive_sizes(parallel);
  validate_tensor_parallel(*this);
  validate_pipeline(*this);
  validate_device_count(*this);
  validate_batch(*this);
}

int64_t Plan::microbatches() const {
  return training.global_batch_size / (parallel.micro_batch_size * parallel.data_parallel);
}

int64_t Plan::layers_per_pipeline_stage() const { return model.num_layers / parallel.pipeline_parallel; }

int64_t Plan::virtual_stages() const {
  if (parallel.schedule != Schedule::interleaved || !parallel.layers_per_virtual_stage) return 1;
  return layers_per_pipeline_stage() / *parallel.layers_per_virtual_stage;
}

}  // namespace loom::core
