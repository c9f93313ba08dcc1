// Megatron-LM and llm.c training logs: the parsers' exact numbers on sample logs written from the
// formats the frameworks print (megatron_log.hpp, llmc_log.hpp cite them), the plan rebuilt from
// Megatron's arguments block, and the import into the store.

#include "planner/llmc_log.hpp"
#include "planner/log_import.hpp"
#include "planner/megatron_log.hpp"
#include "planner/megatron_plan.hpp"

#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/store.hpp"
#include "simulator/run_comparison.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

namespace loom::plan {
namespace {

using ::testing::HasSubstr;

std::string log_fixture(const std::string& name) { return std::string(LOOM_FIXTURES_DIR) + "/logs/" + name; }

// The InvalidInput message `parse` throws; fails the test when it throws none.
template <typename Parse>
std::string error_of(Parse&& parse) {
  try {
    parse();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InvalidInput";
  return {};
}

MegatronLog megatron_text(std::string text) { return parse_megatron_log(split_log_text(std::move(text), "train.log")); }
LlmcLog llmc_text(std::string text) { return parse_llmc_log(split_log_text(std::move(text), "gpt2.log")); }

TEST(MegatronLogTest, CoreLogGivesIterationsMemoryTimersAndArguments) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_core_0_9.log"));
  EXPECT_EQ(log.variant, "megatron-core");
  EXPECT_EQ(log.timer_format, "minmax");
  EXPECT_EQ(log.ignored_lines, 0);
  ASSERT_EQ(log.iterations.size(), 5u);
  const MegatronIteration& second = log.iterations[1];
  EXPECT_EQ(second.iteration, 20);
  EXPECT_EQ(second.train_iterations, 50);
  EXPECT_DOUBLE_EQ(second.elapsed_s_per_iteration, 0.1053);
  EXPECT_DOUBLE_EQ(*second.throughput_tflops_per_gpu, 29.1);
  EXPECT_DOUBLE_EQ(*second.learning_rate, 5.866025e-4);
  EXPECT_EQ(second.global_batch_size, 32);
  EXPECT_EQ(second.consumed_samples, 640);
  EXPECT_DOUBLE_EQ(*second.lm_loss, 7.123456);
  EXPECT_DOUBLE_EQ(*second.grad_norm, 1.234);
  EXPECT_EQ(second.skipped_iterations, 0);
  // The setup timers before the first iteration belong to no iteration.
  EXPECT_EQ(log.iterations[0].timers.count("model-and-optimizer-setup"), 0u);
  ASSERT_EQ(second.timers.size(), 12u);
  EXPECT_DOUBLE_EQ(second.timers.at("forward-compute").min_s, 0.03012);
  EXPECT_DOUBLE_EQ(second.timers.at("forward-compute").max_s, 0.0315);
  EXPECT_DOUBLE_EQ(second.timers.at("all-grads-sync").max_s, 0.00495);
  ASSERT_EQ(log.memory.size(), 4u);
  EXPECT_EQ(log.memory[2].rank, 4);
  EXPECT_EQ(log.memory[2].after_iterations, 10);
  EXPECT_EQ(log.memory[0].max_allocated_bytes, std::llround(5023.5107421875 * 1024 * 1024));
  EXPECT_EQ(log.memory[2].max_reserved_bytes, int64_t(5522) * 1024 * 1024);
  EXPECT_EQ(log.arguments.at("tensor_model_parallel_size"), "2");
  EXPECT_EQ(log.arguments.at("recompute_method"), "None");
  EXPECT_EQ(log.arguments.at("data_path"), "['/data/owt_text_document']");
  EXPECT_EQ(log.tokenizer_vocab_size, 50257);
  EXPECT_EQ(log.padded_vocab_size, 50688);
}

TEST(MegatronLogTest, V2LogWithOneLineTimersAndSkippedIterations) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_lm_v2.log"));
  EXPECT_EQ(log.variant, "megatron-lm-v2");
  EXPECT_EQ(log.timer_format, "one-line");
  ASSERT_EQ(log.iterations.size(), 4u);
  EXPECT_FALSE(log.iterations[0].lm_loss.has_value()) << "every iteration of the first interval was skipped";
  EXPECT_EQ(log.iterations[0].skipped_iterations, 10);
  EXPECT_DOUBLE_EQ(*log.iterations[0].learning_rate, 0.0);
  EXPECT_EQ(log.iterations[2].nan_iterations, 1);
  EXPECT_DOUBLE_EQ(log.iterations[3].timers.at("backward-params-all-reduce").max_s, 0.0057);
  EXPECT_DOUBLE_EQ(*log.iterations[3].loss_scale, 65536.0);
}

TEST(MegatronLogTest, V1LogWithoutColonsAndRankZeroMemory) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_lm_v1.log"));
  EXPECT_EQ(log.variant, "megatron-lm-v1");
  ASSERT_EQ(log.iterations.size(), 3u);
  EXPECT_DOUBLE_EQ(*log.iterations[1].lm_loss, 7.20202);
  EXPECT_DOUBLE_EQ(*log.iterations[1].learning_rate, 6e-4);
  EXPECT_DOUBLE_EQ(log.iterations[2].elapsed_s_per_iteration, 0.1211);
  ASSERT_EQ(log.memory.size(), 1u);
  EXPECT_EQ(log.memory[0].rank, 0);
  EXPECT_EQ(log.memory[0].max_allocated_bytes, int64_t(5000) * 1024 * 1024);
  EXPECT_EQ(log.memory[0].reserved_bytes, int64_t(6000) * 1024 * 1024) << "'cached' in v1";
}

TEST(MegatronLogTest, MaxAndAllTimerTablesAndLauncherPrefixes) {
  const MegatronLog max_only = megatron_text(
      "[default7]: iteration       10/      20 | elapsed time per iteration (ms): 250.0 | lm loss: 5.0E+00 |\n"
      "max time across ranks (ms):\n"
      "    forward-compute ................................: 80.50\n"
      "    optimizer ......................................: 5.25\n");
  EXPECT_EQ(max_only.timer_format, "max");
  EXPECT_DOUBLE_EQ(max_only.iterations[0].timers.at("optimizer").max_s, 0.00525);
  const MegatronLog all = megatron_text(
      " iteration       10/      20 | elapsed time per iteration (ms): 250.0 |\n"
      "times across ranks (ms):\n"
      "  forward-compute:\n"
      "     rank  0: 80.00\n"
      "     rank  1: 82.00\n");
  EXPECT_DOUBLE_EQ(all.iterations[0].timers.at("forward-compute").min_s, 0.080);
  EXPECT_DOUBLE_EQ(all.iterations[0].timers.at("forward-compute").max_s, 0.082);
  const MegatronLog infinite = megatron_text(" iteration       10/infinity | elapsed time per iteration (ms): 1.5 |\n");
  EXPECT_FALSE(infinite.iterations[0].train_iterations.has_value());
}

TEST(MegatronLogTest, TruncatedLogIgnoresItsUnfinishedLastLine) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_truncated.log"));
  EXPECT_EQ(log.ignored_lines, 1);
  ASSERT_EQ(log.iterations.size(), 3u);
  EXPECT_EQ(log.iterations.back().iteration, 30);
}

TEST(MegatronLogTest, BrokenLinesAreErrorsNamingTheLine) {
  EXPECT_EQ(error_of([] { read_megatron_log(log_fixture("megatron_garbled.log")); }),
            "megatron_garbled.log:101: expected a number after 'elapsed time per iteration (ms):', found '1O4.9'");
  EXPECT_EQ(error_of([] { megatron_text("a\n iteration 10/20 | consumed samples: 5 | learning rate: 1.0E-04 |\n"); }),
            "train.log:2: expected 'elapsed time per iteration (ms): …' in the iteration line");
  EXPECT_EQ(error_of([] { megatron_text(" iteration 10/20 | elapsed time per iteration (ms): 1.0 | number of skipped iterations: x |\n"); }),
            "train.log:1: expected a whole number after 'number of skipped iterations:', found 'x'");
  EXPECT_EQ(error_of([] { megatron_text(" iteratio 10/ | elapsed time per iteration (ms): 1.0 |\n"); }),
            "train.log:1: expected 'iteration N/M |' before 'elapsed time per iteration (ms)'");
  EXPECT_EQ(error_of([] { megatron_text(" iteration 10/20 | elapsed time per iteration (ms): 0.0 |\n"); }),
            "train.log:1: expected a time above 0 and at most 1e9 ms (11 days) after 'elapsed time per iteration (ms):', "
            "found '0.0'");
  EXPECT_EQ(error_of([] { megatron_text(" iteration 10/20 | elapsed time per iteration (ms): 1e308 |\n"); }),
            "train.log:1: expected a time above 0 and at most 1e9 ms (11 days) after 'elapsed time per iteration (ms):', "
            "found '1e308'");
  EXPECT_EQ(error_of([] {
              megatron_text(" iteration 10/20 | elapsed time per iteration (ms): 1.0 |\n"
                            "(min, max) time across ranks (ms):\n"
                            "    forward-compute ......: (1.0; 2.0)\n");
            }),
            "train.log:3: expected '(min, max)' times in ms after 'forward-compute:', found '(1.0; 2.0)'");
  EXPECT_EQ(error_of([] { megatron_text("[Rank 0] (after 10 iterations) memory (MB) | allocated: 1.0 | max allocated: lots\n"); }),
            "train.log:1: expected a number after 'max allocated:', found 'lots'");
  EXPECT_THAT(error_of([] {
                megatron_text(" iteration 20/20 | elapsed time per iteration (ms): 1.0 |\n"
                              " iteration 10/20 | elapsed time per iteration (ms): 1.0 |\n");
              }),
              HasSubstr("train.log:2: iteration 10 comes after iteration 20 (line 1)"));
  EXPECT_THAT(error_of([] { megatron_text("hello\nworld\n"); }), HasSubstr("train.log: no Megatron-LM iteration lines"));
  EXPECT_EQ(error_of([] { megatron_text(""); }), "train.log: the log is empty");
  EXPECT_EQ(error_of([] { megatron_text(std::string("ok\nbin\0ary\n", 11)); }),
            "train.log:2: binary data (a NUL byte), not a text training log");
  EXPECT_THAT(error_of([] { megatron_text(std::string(size_t(kMaxTrainingLogLineBytes) + 1, 'x') + "\n"); }),
              HasSubstr("train.log:1: the line is 1.0 MiB"));
}

TEST(MegatronPlanTest, PlanRebuiltFromTheArgumentsBlock) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_core_0_9.log"));
  MegatronPlanOptions options;
  options.devices_per_node = 4;
  const core::Plan plan = plan_from_megatron_arguments(log, options);
  EXPECT_EQ(plan.model.num_layers, 12);
  EXPECT_EQ(plan.model.hidden_size, 768);
  EXPECT_EQ(plan.model.vocab_size, 50257);
  EXPECT_EQ(plan.padded_vocab_size(), 50688);
  EXPECT_EQ(plan.model.seq_length, 1024);
  EXPECT_EQ(plan.cluster.nodes, 2);
  EXPECT_EQ(plan.cluster.devices_per_node, 4);
  EXPECT_EQ(plan.cluster.profile, "h100-80gb-dgx");
  EXPECT_EQ(plan.parallel.tensor_parallel, 2);
  EXPECT_EQ(plan.parallel.pipeline_parallel, 2);
  EXPECT_EQ(plan.parallel.data_parallel, 2);
  EXPECT_EQ(plan.parallel.micro_batch_size, 4);
  EXPECT_EQ(plan.training.global_batch_size, 32);
  EXPECT_TRUE(plan.parallel.sequence_parallel);
  EXPECT_TRUE(plan.parallel.distributed_optimizer);
  EXPECT_TRUE(plan.parallel.overlap_grad_reduce);
  EXPECT_EQ(plan.parallel.recompute, core::Recompute::selective);
  EXPECT_EQ(plan.parallel.attention_backend, core::AttentionBackend::flash);
  EXPECT_EQ(plan.training.dtype, core::DType::bf16);
  EXPECT_EQ(plan.training.train_iters, 50);

  // A Llama-style run with grouped queries and the interleaved schedule.
  MegatronLog llama = log;
  llama.arguments["swiglu"] = "True";
  llama.arguments["normalization"] = "RMSNorm";
  llama.arguments["position_embedding_type"] = "rope";
  llama.arguments["rotary_base"] = "500000";
  llama.arguments["group_query_attention"] = "True";
  llama.arguments["num_query_groups"] = "4";
  llama.arguments["untie_embeddings_and_output_weights"] = "True";
  llama.arguments["num_layers_per_virtual_pipeline_stage"] = "3";
  llama.arguments["recompute_granularity"] = "None";
  const core::Plan llama_plan = plan_from_megatron_arguments(llama, options);
  EXPECT_EQ(llama_plan.model.activation, core::Activation::swiglu);
  EXPECT_EQ(llama_plan.model.normalization, core::Normalization::rmsnorm);
  EXPECT_EQ(llama_plan.model.rotary_base, 500000);
  EXPECT_EQ(llama_plan.model.num_query_groups, 4);
  EXPECT_TRUE(llama_plan.model.untie_embeddings_and_output_weights);
  EXPECT_EQ(llama_plan.parallel.schedule, core::Schedule::interleaved);
  EXPECT_EQ(llama_plan.parallel.layers_per_virtual_stage, 3);
  EXPECT_EQ(llama_plan.parallel.recompute, core::Recompute::none);
}

TEST(MegatronPlanTest, MissingUnsupportedOrInvalidArgumentsAreRefused) {
  const MegatronLog log = read_megatron_log(log_fixture("megatron_core_0_9.log"));
  MegatronLog missing = log;
  missing.arguments.erase("hidden_size");
  EXPECT_EQ(error_of([&] { plan_from_megatron_arguments(missing, {}); }),
            "megatron_core_0_9.log: the arguments block has no value for hidden_size (--hidden-size), which the plan "
            "needs");
  MegatronLog moe = log;
  moe.arguments["num_experts"] = "8";
  EXPECT_THAT(error_of([&] { plan_from_megatron_arguments(moe, {}); }), HasSubstr("mixture of experts (num_experts 8)"));
  MegatronLog bad = log;
  bad.arguments["num_attention_heads"] = "5";
  EXPECT_THAT(error_of([&] { plan_from_megatron_arguments(bad, {}); }),
              HasSubstr("the plan rebuilt from the arguments block is not valid"));
  MegatronLog odd = log;
  odd.arguments["bf16"] = "maybe";
  EXPECT_EQ(error_of([&] { plan_from_megatron_arguments(odd, {}); }),
            "megatron_core_0_9.log: argument bf16 is 'maybe' in the arguments block; expected True or False");
  MegatronPlanOptions three_per_node;
  three_per_node.devices_per_node = 3;
  EXPECT_THAT(error_of([&] { plan_from_megatron_arguments(log, three_per_node); }),
              HasSubstr("world_size 8 is not a whole number of nodes of 3 devices"));
  EXPECT_THAT(error_of([] { plan_from_megatron_arguments(read_megatron_log(log_fixture("megatron_lm_v1.log")), {}); }),
              HasSubstr("the log has no arguments block"));
}

TEST(LlmcLogTest, CudaLogWithMfuAndASkippedUpdate) {
  const LlmcLog log = read_llmc_log(log_fixture("llmc_gpt2_cu.log"));
  EXPECT_EQ(log.variant, "llmc-cu-mfu");
  ASSERT_EQ(log.steps.size(), 6u);
  EXPECT_EQ(log.steps[0].step, 1);
  EXPECT_EQ(log.steps[0].total_steps, 6);
  EXPECT_DOUBLE_EQ(log.steps[1].loss, 10.938402);
  EXPECT_DOUBLE_EQ(*log.steps[1].grad_norm, 12.1102);
  EXPECT_DOUBLE_EQ(*log.steps[1].learning_rate, 1.71e-5);
  EXPECT_DOUBLE_EQ(log.steps[1].step_time_s, 0.0984);
  EXPECT_DOUBLE_EQ(*log.steps[1].mfu_percent, 64.2);
  EXPECT_DOUBLE_EQ(*log.steps[1].tokens_per_s, 1332000);
  EXPECT_FALSE(log.steps[2].update_skipped);
  EXPECT_TRUE(log.steps[3].update_skipped);
  EXPECT_FALSE(log.steps[4].update_skipped);
  EXPECT_EQ(log.parameters.at("num_processes"), "8");
  EXPECT_EQ(log.parameters.at("total batch size"), "131072");
}

TEST(LlmcLogTest, OlderFormats) {
  const LlmcLog c = read_llmc_log(log_fixture("llmc_old.log"));
  EXPECT_EQ(c.variant, "llmc-c");
  ASSERT_EQ(c.steps.size(), 4u);
  EXPECT_EQ(c.steps[0].step, 1) << "train_gpt2.c counts from 0";
  EXPECT_DOUBLE_EQ(c.steps[3].loss, 4.138577);
  EXPECT_DOUBLE_EQ(c.steps[3].step_time_s, 1.84825);
  const LlmcLog early = llmc_text("step    1/10: train loss 4.367631 (80.123456 ms, 51123 tok/s)\n");
  EXPECT_EQ(early.variant, "llmc-cu-early");
  EXPECT_DOUBLE_EQ(*early.steps[0].tokens_per_s, 51123);
  const LlmcLog zscore = llmc_text("step    2/10 | loss 7.5 (+1.00z)| norm 1.5000 (+0.50z)| lr 6.00e-04 | 91.50 ms | 179000 tok/s\n");
  EXPECT_EQ(zscore.variant, "llmc-cu-zscore");
  EXPECT_FALSE(zscore.steps[0].mfu_percent.has_value());
  EXPECT_TRUE(std::isnan(llmc_text("step 3/9 | loss nan (+nanz)| norm nan (+nanz)| lr 1.00e-04 | 90.00 ms | 1 tok/s\n").steps[0].loss));
}

TEST(LlmcLogTest, BrokenLinesAreErrorsNamingTheLine) {
  EXPECT_EQ(error_of([] { llmc_text("x\nstep    2/10 | loss 7.5 (+1.00z)| norm 1.5 | lr 6.00e-04 | 9l.50 ms | 1 tok/s\n"); }),
            "gpt2.log:2: expected a number after '|', found '9l.50'");
  EXPECT_THAT(error_of([] { llmc_text("step 2/10 loss 7.5\n"); }), HasSubstr("gpt2.log:1: expected an llm.c step line"));
  EXPECT_EQ(error_of([] { llmc_text("step 1: train loss 4.0 (took -1 ms)\n"); }),
            "gpt2.log:1: expected a step time above 0 and at most 1e9 ms (11 days), found '-1'");
  EXPECT_EQ(error_of([] { llmc_text("step 1: train loss 4.0 (took 1e300 ms)\n"); }),
            "gpt2.log:1: expected a step time above 0 and at most 1e9 ms (11 days), found '1e300'");
  EXPECT_THAT(error_of([] { llmc_text("val loss 3.0\n"); }), HasSubstr("gpt2.log: no llm.c step lines"));
  const LlmcLog cut = llmc_text("step 1: train loss 4.0 (took 10 ms)\nstep 2: train lo");
  EXPECT_EQ(cut.ignored_lines, 1);
  EXPECT_EQ(cut.steps.size(), 1u);
}

class LogImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("loom_log_import_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db"))
                .string();
    remove();
  }
  void TearDown() override { remove(); }
  void remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  std::string path_;
};

TEST_F(LogImportTest, MegatronRunStoredWithStepsRanksAndCategories) {
  core::Store store = core::Store::open(path_);
  const LogImportResult r = import_megatron_log(store, log_fixture("megatron_core_0_9.log"), {});
  EXPECT_TRUE(r.plan_from_arguments);
  EXPECT_EQ(r.steps, 5);
  EXPECT_EQ(r.status, core::RunStatus::completed);
  EXPECT_DOUBLE_EQ(r.steady_step_time_s, (0.1049 + 0.1051 + 0.1047) / 3);
  EXPECT_EQ(r.peak_memory_bytes, std::llround(5023.5107421875 * 1024 * 1024));
  EXPECT_EQ(r.ranks_with_memory, 4);
  EXPECT_THAT(r.measured_categories, ::testing::ElementsAre("backward_s", "dp_comm_s", "forward_s", "optimizer_s", "pp_comm_s"));
  const core::RunRow run = store.run(r.run_id);
  EXPECT_EQ(run.source, "megatron");
  EXPECT_EQ(run.backend, "cuda");
  EXPECT_EQ(run.profile_name, "h100-80gb-dgx");
  EXPECT_TRUE(run.prediction_id.has_value());
  const core::Json run_json = core::Json::parse(run.run_json);
  EXPECT_EQ(run_json.at("format"), "megatron-core");
  EXPECT_EQ(run_json.at("log_interval"), 10);
  const auto steps = store.steps(r.run_id);
  ASSERT_EQ(steps.size(), 5u);
  EXPECT_EQ(steps[1].step, 20);
  EXPECT_DOUBLE_EQ(steps[1].tokens_per_s, 32.0 * 1024 / 0.1053);
  EXPECT_DOUBLE_EQ(steps[1].loss, 7.123456);
  const auto ranks = store.rank_stats(r.run_id);
  ASSERT_EQ(ranks.size(), 4u);
  EXPECT_EQ(ranks[2].rank, 4);
  const core::Json stats = core::Json::parse(ranks[2].stats_json);
  EXPECT_EQ(stats.at("pipeline_rank"), 1) << "tp fastest, then dp, then pp";
  EXPECT_EQ(stats.at("max_reserved_bytes"), int64_t(5522) * 1024 * 1024);
  EXPECT_EQ(stats.at("measured_steps"), 3);
  EXPECT_EQ(stats.at("warmup_steps"), 2);
  // forward-compute's max over iterations 30, 40, 50: 31.60, 31.70, 31.80 ms.
  EXPECT_NEAR(stats.at("time_by_category").at("forward_s").get<double>(), 0.0316 + 0.0317 + 0.0318, 1e-12);
  // pp: forward-recv + backward-send + the two send-receive pairs.
  EXPECT_NEAR(stats.at("time_by_category").at("pp_comm_s").get<double>(), 3 * (8.25 + 1.20 + 6.75 + 4.10) / 1e3, 1e-12);

  const sim::RunComparison c = sim::compare_run(store, r.run_id);
  auto row = [&](const std::string& quantity) {
    for (const auto& candidate : c.rows)
      if (candidate.quantity == quantity) return candidate;
    ADD_FAILURE() << quantity;
    return sim::ComparisonRow{};
  };
  EXPECT_NEAR(*row("forward").measured, 0.0317, 1e-12);
  EXPECT_FALSE(row("tp comm (exposed)").measured.has_value()) << "Megatron does not time it";
  EXPECT_FALSE(row("recompute").measured.has_value());
  EXPECT_NEAR(*row("step time").measured, r.steady_step_time_s, 1e-15);
  EXPECT_EQ(c.ranks.size(), 4u);
}

TEST_F(LogImportTest, SkippedAndNanIntervalsHaveNoLossAndTruncatedRunsFailed) {
  core::Store store = core::Store::open(path_);
  const LogImportResult v2 = import_megatron_log(store, log_fixture("megatron_lm_v2.log"), {});
  EXPECT_EQ(v2.steps_without_loss, 2);
  const auto steps = store.steps(v2.run_id);
  EXPECT_TRUE(std::isnan(steps[0].loss)) << "all ten iterations skipped";
  EXPECT_DOUBLE_EQ(steps[1].loss, 7.311204) << "two of ten skipped: the mean of the other eight";
  EXPECT_TRUE(std::isnan(steps[2].loss)) << "a NaN iteration";
  EXPECT_DOUBLE_EQ(steps[2].step_time_s, 0.1179) << "its time is kept";
  EXPECT_EQ(store.plan(v2.plan_id).plan_json.find("\"dtype\": \"fp16\"") != std::string::npos ||
                store.plan(v2.plan_id).plan_json.find("\"dtype\":\"fp16\"") != std::string::npos,
            true);
  const auto ranks = store.rank_stats(v2.run_id);
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_NEAR(core::Json::parse(ranks[0].stats_json).at("time_by_category").at("dp_comm_s").get<double>(), 2 * 0.0057,
              1e-12);

  const LogImportResult cut = import_megatron_log(store, log_fixture("megatron_truncated.log"), {});
  EXPECT_EQ(cut.status, core::RunStatus::failed);
  EXPECT_EQ(cut.reason, "the log ends at iteration 30 of 50");
  EXPECT_EQ(cut.ignored_lines, 1);
  EXPECT_EQ(store.run(cut.run_id).reason.value_or(""), "the log ends at iteration 30 of 50");
}

TEST_F(LogImportTest, GivenPlansMustMatchTheLog) {
  core::Store store = core::Store::open(path_);
  LogImportOptions options;
  options.plan_path = log_fixture("megatron_v1_plan.json");
  const LogImportResult v1 = import_megatron_log(store, log_fixture("megatron_lm_v1.log"), options);
  EXPECT_FALSE(v1.plan_from_arguments);
  EXPECT_EQ(v1.peak_memory_bytes, int64_t(5000) * 1024 * 1024);
  EXPECT_TRUE(v1.measured_categories.empty());
  options.plan_path = log_fixture("other_model_plan.json");
  EXPECT_THAT(error_of([&] { import_megatron_log(store, log_fixture("megatron_core_0_9.log"), options); }),
              HasSubstr("world_size is 16 in the plan but 8 in the log's arguments"));
  EXPECT_THAT(error_of([&] { import_llmc_log(store, log_fixture("llmc_gpt2_cu.log"), options); }),
              HasSubstr("the world size is 16 in the plan but 8 in the log ('num_processes')"));
  EXPECT_THAT(error_of([&] { import_llmc_log(store, log_fixture("llmc_gpt2_cu.log"), {}); }),
              HasSubstr("needs the run's plan (--plan PLAN.json)"));
  EXPECT_EQ(store.list_runs().size(), 1u) << "refused imports store nothing";
  EXPECT_EQ(store.list_plans().size(), 1u);
}

TEST_F(LogImportTest, LlmcRunStoredWithSkippedUpdateWithoutLoss) {
  core::Store store = core::Store::open(path_);
  LogImportOptions options;
  options.plan_path = log_fixture("llmc_gpt2_124m_plan.json");
  const LogImportResult r = import_llmc_log(store, log_fixture("llmc_gpt2_cu.log"), options);
  EXPECT_EQ(r.source, "llmc");
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(r.steps_without_loss, 1);
  EXPECT_EQ(r.status, core::RunStatus::completed);
  EXPECT_DOUBLE_EQ(r.steady_step_time_s, (0.09795 + 0.0981 + 0.0982 + 0.098) / 4);
  const auto steps = store.steps(r.run_id);
  EXPECT_TRUE(std::isnan(steps[3].loss));
  EXPECT_DOUBLE_EQ(steps[4].loss, 10.6);
  EXPECT_DOUBLE_EQ(steps[4].tokens_per_s, 131072 / 0.0982);
  EXPECT_EQ(store.run(r.run_id).source, "llmc");
  const sim::RunComparison c = sim::compare_run(store, r.run_id);
  for (const auto& row : c.rows)
    if (row.quantity != "step time" && row.quantity != "tokens/s") EXPECT_FALSE(row.measured.has_value()) << row.quantity;
  EXPECT_EQ(detect_log(log_fixture("llmc_old.log")).source, "llmc");
  EXPECT_EQ(detect_log(log_fixture("megatron_core_0_9.log")).source, "megatron");
  EXPECT_FALSE(detect_log(log_fixture("megatron_core_0_9.log")).needs_plan);
  EXPECT_TRUE(detect_log(log_fixture("megatron_lm_v1.log")).needs_plan);
}

}  // namespace
}  // namespace loom::plan
