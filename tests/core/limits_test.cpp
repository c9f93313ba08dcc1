// The documented maxima (core/limits.hpp): a plan at them is valid and every count core derives
// from it is positive and representable; one past any of them is refused naming the field.

#include "plan_maxima.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/model_arithmetic.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace loom::core {
namespace {

using ::testing::HasSubstr;
using loom::testing::MaximaCase;

class AtTheMaxima : public ::testing::TestWithParam<MaximaCase> {};

TEST_P(AtTheMaxima, PlanIsValidAndItsCountsArePositiveAndRepresentable) {
  const Plan& plan = GetParam().plan;
  ASSERT_NO_THROW(plan.validate());
  const Plan base = loom::testing::maxima_base_plan();

  // Raising a size never lowers a count: a wrapped product would.
  const int64_t parameters = parameter_count(plan.model);
  EXPECT_GT(parameters, 0);
  EXPECT_GE(parameters, parameter_count(base.model));
  // The exact count agrees with a long-double recount of its largest terms to a part in 10^6.
  const long double h = plan.model.hidden_size, f = plan.model.ffn_hidden_size, L = plan.model.num_layers;
  const long double V = model_vocab_size(plan.model);
  const long double mlp = plan.model.activation == Activation::swiglu ? 3.0L : 2.0L;
  const long double qkv = h + 2.0L * plan.model.query_groups() * plan.model.kv_channels();
  const long double dominant = L * (h * qkv + h * h + mlp * h * f) + V * h;
  EXPECT_GE(static_cast<long double>(parameters), dominant * (1.0L - 1e-6L));

  const int64_t last = plan.parallel.pipeline_parallel - 1;
  for (const int64_t stage : {int64_t(0), last}) {
    const int64_t on_stage = parameters_per_device_on_stage(plan, stage);
    EXPECT_GT(on_stage, 0) << "stage " << stage;
    EXPECT_LE(on_stage, parameters + plan.padded_vocab_size() * plan.model.hidden_size) << "stage " << stage;
  }

  const int64_t batch = plan.training.global_batch_size;
  for (const double flops : {model_flops_per_step(plan.model, batch),
                             hardware_flops_per_step(plan.model, batch, Recompute::full),
                             megatron_model_flops_per_step(plan.model, batch)}) {
    EXPECT_TRUE(std::isfinite(flops));
    EXPECT_GT(flops, 0);
  }
  EXPECT_GE(model_flops_per_step(plan.model, batch), model_flops_per_step(base.model, base.training.global_batch_size));
  EXPECT_GT(plan.microbatches(), 0);
  EXPECT_GT(plan.virtual_stages(), 0);
}

INSTANTIATE_TEST_SUITE_P(Fields, AtTheMaxima, ::testing::ValuesIn(loom::testing::maxima_cases()),
                         [](const auto& info) { return info.param.label; });

// One past each maximum: refused, naming the field, its value and the bound.
TEST(PastTheMaxima, EachFieldIsRefusedNamingItsBound) {
  namespace limits = core::limits;
  struct Case {
    const char* expected;
    std::function<void(Plan&)> change;
  };
  const Case cases[] = {
      {"num-layers=16385 is larger than the supported 16384", [](Plan& p) { p.model.num_layers = limits::kMaxLayers + 1; }},
      {"hidden-size=1048577 is larger", [](Plan& p) { p.model.hidden_size = limits::kMaxHidden + 1; }},
      {"num-attention-heads=65537 is larger", [](Plan& p) { p.model.num_attention_heads = limits::kMaxHeads + 1; }},
      {"num-query-groups=65537 is larger", [](Plan& p) { p.model.num_query_groups = limits::kMaxHeads + 1; }},
      {"ffn-hidden-size=16777217 is larger", [](Plan& p) { p.model.ffn_hidden_size = limits::kMaxFfnHidden + 1; }},
      {"padded-vocab-size=16777217 is larger", [](Plan& p) { p.model.padded_vocab_size = limits::kMaxVocab + 1; }},
      {"seq-length=16777217 is larger", [](Plan& p) { p.model.seq_length = limits::kMaxSeqLength + 1; }},
      {"global-batch-size=16777217 is larger",
       [](Plan& p) { p.training.global_batch_size = limits::kMaxGlobalBatch + 1; }},
      {"train-iters=16777217 is larger", [](Plan& p) { p.training.train_iters = limits::kMaxTrainIters + 1; }},
      {"lr=1e+308 must be a positive number, at most 10", [](Plan& p) { p.training.lr = 1e308; }},
      {"weight-decay=11 must be", [](Plan& p) { p.training.weight_decay = 11; }},
      {"clip-grad=1e+300 must be", [](Plan& p) { p.training.clip_grad = 1e300; }},
      {"adam-eps=1.5 must be", [](Plan& p) { p.training.adam_eps = 1.5; }},
      {"nodes=1048577 is larger", [](Plan& p) { p.cluster.nodes = limits::kMaxNodes + 1; }},
      {"devices-per-node=1025 is larger", [](Plan& p) { p.cluster.devices_per_node = limits::kMaxDevicesPerNode + 1; }},
      {"= 1048584 devices is more than the supported 1048576", [](Plan& p) { p.cluster.nodes = limits::kMaxDevices / 8 + 1; }},
      {"price-per-device-hour=1e+308 must be", [](Plan& p) { p.cluster.price_per_device_hour = 1e308; }},
      {"tensor-model-parallel-size=65537 is larger than the supported 65536",
       [](Plan& p) { p.parallel.tensor_parallel = limits::kMaxTensorParallel + 1; }},
      {"pipeline-model-parallel-size=16385 is larger than the supported 16384",
       [](Plan& p) { p.parallel.pipeline_parallel = limits::kMaxPipelineParallel + 1; }},
      {"micro-batch-size=16777217 is larger", [](Plan& p) { p.parallel.micro_batch_size = limits::kMaxMicroBatch + 1; }},
      {"more than int64 holds", [](Plan& p) { p.parallel.data_parallel = std::numeric_limits<int64_t>::max() / 2; }},
  };
  for (const Case& c : cases) {
    Plan plan = loom::testing::maxima_base_plan();
    derive_data_parallel(plan);
    c.change(plan);
    try {
      plan.validate();
      ADD_FAILURE() << "accepted: " << c.expected;
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), HasSubstr(c.expected));
    }
  }
}

TEST(CheckedArithmetic, SaysWhenACountCannotBeKept) {
  const int64_t most = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(checked_multiply(int64_t(1) << 31, int64_t(1) << 31), int64_t(1) << 62);
  EXPECT_FALSE(checked_multiply(int64_t(1) << 32, int64_t(1) << 31));
  EXPECT_FALSE(checked_multiply(-most, 2));
  EXPECT_EQ(checked_add(most - 1, 1), most);
  EXPECT_FALSE(checked_add(most, 1));
  EXPECT_EQ(countable_bytes(1.6), 2);
  EXPECT_EQ(countable_bytes(double(limits::kMaxCountedBytes)), limits::kMaxCountedBytes);
  EXPECT_FALSE(countable_bytes(double(limits::kMaxCountedBytes) * 2));
  EXPECT_FALSE(countable_bytes(1e300));
  EXPECT_FALSE(countable_bytes(-1.0));
  EXPECT_FALSE(countable_bytes(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(countable_bytes(std::numeric_limits<double>::quiet_NaN()));
}

// A model beyond the maxima that skipped validate() is refused, not wrapped around.
TEST(ParameterCount, BeyondTheMaximaIsRefusedNotWrapped) {
  ModelSpec model = loom::testing::all_maxima_plan(true).model;
  model.num_layers = int64_t(1) << 40;
  EXPECT_THROW(parameter_count(model), InvalidInput);
}

}  // namespace
}  // namespace loom::core
