#include "core/default_plan.hpp"

#include "core/model_presets.hpp"

namespace loom::core {

Plan default_plan() {
  Plan plan;
  plan.model = find_model_preset("gpt2-124m").spec;
  // 50257 padded to a multiple of 128 (as llm.c does) and pinned, so that this plan, and every
  // search from its model (which pads a lone pinned size for each tp), stay what they have been.
  plan.model.vocab_size.reset();
  plan.model.padded_vocab_size = 50304;
  plan.training.global_batch_size = 64;
  plan.training.dtype = DType::bf16;
  plan.training.train_iters = 100;
  plan.training.lr_warmup_iters = 10;
  plan.cluster.nodes = 1;
  plan.cluster.devices_per_node = 8;
  plan.cluster.profile = "a100-80gb-dgx";
  plan.parallel.tensor_parallel = 2;
  plan.parallel.pipeline_parallel = 2;
  plan.parallel.data_parallel = 2;
  plan.parallel.micro_batch_size = 4;
  plan.parallel.schedule = Schedule::one_f_one_b;
  plan.parallel.recompute = Recompute::selective;
  plan.parallel.sequence_parallel = true;
  plan.parallel.distributed_optimizer = true;
  return plan;
}

}  // namespace loom::core
