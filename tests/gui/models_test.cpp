// The models under the Plan and Results views, without a screen: the form's inputs checked
// field by field, the search job (progress, cancel, stale results), the results table with its
// numeric sorting and typed filter, and the reject reasons — each model through
// QAbstractItemModelTester.

#include "gui_test_support.hpp"

#include "core/error.hpp"
#include "core/model_presets.hpp"
#include "core/profile.hpp"
#include "gui/models/plan_filter_model.hpp"
#include "gui/models/plan_inputs.hpp"
#include "gui/models/plan_table_model.hpp"
#include "gui/models/reject_reasons_model.hpp"
#include "gui/models/search_job.hpp"

#include <gtest/gtest.h>

#include <QAbstractItemModelTester>
#include <QSignalSpy>

#include <algorithm>
#include <set>

namespace loom::gui {
namespace {

using test::wait_until;

PlanInputs gpt3_on(const char* preset, int64_t nodes, int64_t global_batch) {
  PlanInputs in = default_plan_inputs();
  in.model = core::find_model_preset(preset).spec;
  in.nodes = nodes;
  in.devices_per_node = 8;
  in.profile = "a100-80gb-dgx";
  in.global_batch_size = global_batch;
  return in;
}

// One search shared by the table tests: GPT-3 1.3B on 32 A100s.
const plan::SearchResult& searched() {
  static const plan::SearchResult result = [] {
    plan::SearchOptions options;
    options.top = 40;
    options.pareto = true;
    return plan::search(to_search_request(gpt3_on("gpt3-1.3b", 4, 256)), options);
  }();
  return result;
}

TEST(PlanInputs, TheDefaultsCanBeSearched) {
  EXPECT_EQ(find_input_problem(default_plan_inputs()), std::nullopt);
  EXPECT_NO_THROW(to_search_request(default_plan_inputs()));
}

TEST(PlanInputs, EachProblemIsShownAtTheFieldItNames) {
  struct Case {
    const char* what;
    std::function<void(PlanInputs&)> spoil;
    const char* field;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"heads that do not divide the hidden size", [](PlanInputs& in) { in.model.num_attention_heads = 7; },
       "num-attention-heads", "does not divide hidden-size"},
      {"no layers", [](PlanInputs& in) { in.model.num_layers = 0; }, "num-layers", "must be a positive integer"},
      // "hidden-size" occurs inside "ffn-hidden-size": the message is still the FFN's.
      {"an FFN of size 0", [](PlanInputs& in) { in.model.ffn_hidden_size = 0; }, "ffn-hidden-size", "positive"},
      {"kv heads that do not divide the heads", [](PlanInputs& in) { in.model.num_query_groups = 5; },
       "num-query-groups", "does not divide"},
      {"no nodes", [](PlanInputs& in) { in.nodes = 0; }, "nodes", "nodes=0"},
      {"too many devices per node", [](PlanInputs& in) { in.devices_per_node = 5000; }, "devices-per-node", "5000"},
      {"an unknown profile", [](PlanInputs& in) { in.profile = "no-such-gpu"; }, "profile", "no-such-gpu"},
      {"a profile file that is not JSON", [](PlanInputs& in) { in.profile = LOOM_BIN_DIR "/loom"; }, "profile", "profile"},
      {"an empty batch", [](PlanInputs& in) { in.global_batch_size = 0; }, "global-batch-size", "global-batch-size=0"},
  };
  for (const Case& c : cases) {
    PlanInputs in = default_plan_inputs();
    c.spoil(in);
    const std::optional<InputProblem> problem = find_input_problem(in);
    ASSERT_TRUE(problem.has_value()) << c.what;
    EXPECT_EQ(problem->field, c.field) << c.what << ": " << problem->message;
    EXPECT_NE(problem->message.find(c.says), std::string::npos) << c.what << ": " << problem->message;
    EXPECT_THROW(to_search_request(in), InvalidInput) << c.what;
  }
}

TEST(PlanTableModel, PassesTheModelTesterAndHoldsTheBestAndTheFront) {
  PlanTableModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.setResult(searched());
  const plan::SearchResult& result = searched();
  ASSERT_FALSE(result.top.empty());
  ASSERT_FALSE(result.pareto.empty());
  // Every ranked plan once, and every front plan once (some are both).
  EXPECT_GE(model.rowCount(), int(result.top.size()));
  EXPECT_LE(model.rowCount(), int(result.top.size() + result.pareto.size()));
  int on_front = 0;
  for (int row = 0; row < model.rowCount(); ++row) on_front += model.row(row).on_pareto_front;
  EXPECT_EQ(on_front, int(result.pareto.size()));
  const int best = model.bestRow();
  ASSERT_GE(best, 0);
  EXPECT_EQ(model.row(best).prediction->step_time_s, result.top.front().prediction.step_time_s);
  EXPECT_EQ(model.data(model.index(best, PlanTableModel::rank)).toString(), "1");
  const QString step_time = model.data(model.index(best, PlanTableModel::step_time)).toString();
  EXPECT_TRUE(step_time.endsWith(" ms") || step_time.endsWith(" s")) << step_time.toStdString();
  EXPECT_TRUE(model.data(model.index(best, PlanTableModel::peak_memory)).toString().endsWith(" GiB"));
  EXPECT_DOUBLE_EQ(model.data(model.index(best, PlanTableModel::mfu), PlanTableModel::SortRole).toDouble(),
                   result.top.front().prediction.mfu);
  model.clear();
  EXPECT_EQ(model.rowCount(), 0);
}

TEST(PlanTableModel, SortsOnNumbersNotOnText) {
  PlanTableModel model;
  model.setResult(searched());
  PlanFilterModel sorted;
  QAbstractItemModelTester tester(&sorted, QAbstractItemModelTester::FailureReportingMode::Fatal);
  sorted.setSourceModel(&model);
  for (const int column : {int(PlanTableModel::peak_memory), int(PlanTableModel::step_time), int(PlanTableModel::tensor_parallel)}) {
    sorted.sort(column, Qt::AscendingOrder);
    double previous = -1;
    for (int row = 0; row < sorted.rowCount(); ++row) {
      const double value = sorted.data(sorted.index(row, column), PlanTableModel::SortRole).toDouble();
      EXPECT_LE(previous, value) << "column " << column << " row " << row;
      previous = value;
    }
  }
}

TEST(PlanFilterModel, KeepsTheRowsEveryTermHoldsFor) {
  PlanTableModel model;
  model.setResult(searched());
  PlanFilterModel filter;
  QAbstractItemModelTester tester(&filter, QAbstractItemModelTester::FailureReportingMode::Fatal);
  filter.setSourceModel(&model);
  auto count = [&](auto&& keep) {
    int n = 0;
    for (int row = 0; row < model.rowCount(); ++row) n += keep(model.row(row));
    return n;
  };
  filter.setFilterExpression("tp=2");
  EXPECT_EQ(filter.rowCount(), count([](const PlanTableModel::Row& r) { return r.plan.parallel.tensor_parallel == 2; }));
  filter.setFilterExpression("pp>=2 1f1b");
  EXPECT_EQ(filter.rowCount(), count([](const PlanTableModel::Row& r) {
              return r.plan.parallel.pipeline_parallel >= 2 && r.plan.parallel.schedule == core::Schedule::one_f_one_b;
            }));
  const double best_s = searched().top.front().prediction.step_time_s;
  filter.setFilterExpression(QString("step time<=%1").arg(best_s * 1.1, 0, 'g', 17));
  const int near_best = count([&](const PlanTableModel::Row& r) { return r.prediction->step_time_s <= best_s * 1.1; });
  EXPECT_EQ(filter.rowCount(), near_best);
  EXPECT_GE(near_best, 1);
  filter.setFilterExpression("no-such-word");
  EXPECT_EQ(filter.rowCount(), 0);
  filter.setFilterExpression("");
  EXPECT_EQ(filter.rowCount(), model.rowCount());
}

TEST(PlanTableModel, ShowsTheAttentionBackendAndTheOverlaps) {
  // Two plans of the search: one with tensor parallelism, switched to flash attention with every
  // overlap (tp-comm-overlap needs sequence parallelism, which needs tp > 1), one left bare.
  const auto& top = searched().top;
  const auto with_tp = std::find_if(top.begin(), top.end(),
                                    [](const plan::RankedPlan& r) { return r.plan.parallel.tensor_parallel > 1; });
  ASSERT_NE(with_tp, top.end());
  plan::SearchResult result;
  result.top = {*with_tp, with_tp == top.begin() ? top[1] : top[0]};
  core::ParallelPlan& switched = result.top[0].plan.parallel;
  switched.sequence_parallel = true;
  switched.distributed_optimizer = true;
  switched.attention_backend = core::AttentionBackend::flash;
  switched.overlap_grad_reduce = true;
  switched.overlap_param_gather = true;
  switched.tp_comm_overlap = true;
  switched.ddp_bucket_size = 20'000'000;
  EXPECT_NO_THROW(result.top[0].plan.validate());
  core::ParallelPlan& bare = result.top[1].plan.parallel;
  bare.attention_backend = core::AttentionBackend::unfused;
  bare.overlap_grad_reduce = bare.overlap_param_gather = bare.tp_comm_overlap = false;
  bare.ddp_bucket_size.reset();

  PlanTableModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.setResult(result);
  ASSERT_EQ(model.rowCount(), 2);
  EXPECT_EQ(model.headerData(PlanTableModel::attention_backend, Qt::Horizontal).toString(), "attention");
  EXPECT_EQ(model.headerData(PlanTableModel::overlaps, Qt::Horizontal).toString(), "overlap");
  EXPECT_EQ(model.data(model.index(0, PlanTableModel::attention_backend)).toString(), "flash");
  EXPECT_EQ(model.data(model.index(0, PlanTableModel::overlaps)).toString(), "grad+param+tp");
  EXPECT_EQ(model.data(model.index(1, PlanTableModel::attention_backend)).toString(), "unfused");
  EXPECT_EQ(model.data(model.index(1, PlanTableModel::overlaps)).toString(), "none");
  // The short cell's tooltip names the Megatron-LM arguments and the bucket size.
  const QString tip = model.data(model.index(0, PlanTableModel::overlaps), Qt::ToolTipRole).toString();
  EXPECT_TRUE(tip.contains("overlap-grad-reduce, overlap-param-gather")) << tip.toStdString();
  EXPECT_TRUE(tip.contains("ddp-bucket-size 20,000,000")) << tip.toStdString();

  // The filter finds them by their words.
  PlanFilterModel filter;
  filter.setSourceModel(&model);
  filter.setFilterExpression("flash");
  ASSERT_EQ(filter.rowCount(), 1);
  EXPECT_EQ(filter.mapToSource(filter.index(0, 0)).row(), 0);
  filter.setFilterExpression("grad+param");
  EXPECT_EQ(filter.rowCount(), 1);
  filter.setFilterExpression("unfused");
  EXPECT_EQ(filter.rowCount(), 1);
}

TEST(PlanTableModel, ShowsTheNearestMissesWhenNothingFits) {
  PlanInputs in = gpt3_on("gpt3-175b", 1, 8);
  plan::SearchOptions options;
  options.nearest_misses = 3;
  const plan::SearchResult result = plan::search(to_search_request(in), options);
  ASSERT_TRUE(result.top.empty());
  PlanTableModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.setResult(result);
  ASSERT_EQ(model.rowCount(), 3);
  EXPECT_EQ(model.bestRow(), -1);
  for (int row = 0; row < 3; ++row) {
    EXPECT_EQ(model.data(model.index(row, PlanTableModel::fits)).toString(), "no");
    EXPECT_EQ(model.data(model.index(row, PlanTableModel::step_time)).toString(), "—");
    EXPECT_GT(model.row(row).peak_memory_bytes, core::resolve_profile("a100-80gb-dgx").device.memory_bytes);
  }
}

TEST(RejectReasonsModel, CountsEveryRejectedCombination) {
  RejectReasonsModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::Fatal);
  model.setRejects(searched().rejects, core::resolve_profile("a100-80gb-dgx").device.memory_bytes);
  EXPECT_GT(model.rowCount(), 0);
  EXPECT_EQ(model.total(), searched().rejects.total());
  std::set<QString> reasons;
  for (int row = 0; row < model.rowCount(); ++row)
    reasons.insert(model.data(model.index(row, RejectReasonsModel::reason)).toString());
  EXPECT_EQ(int(reasons.size()), model.rowCount()) << "each reason once";
}

TEST(SearchJob, ReportsProgressAndTheResult) {
  SearchJob job;
  QSignalSpy finished(&job, &SearchJob::finished);
  QSignalSpy progress(&job, &SearchJob::progressChanged);
  plan::SearchOptions options;
  options.top = 5;
  job.start(to_search_request(gpt3_on("gpt3-1.3b", 4, 256)), options);
  EXPECT_TRUE(job.isRunning());
  ASSERT_TRUE(wait_until([&] { return finished.count() == 1; }));
  EXPECT_FALSE(job.isRunning());
  const auto result = finished.at(0).at(0).value<std::shared_ptr<const plan::SearchResult>>();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->top.size(), 5u);
  ASSERT_GT(progress.count(), 0);
  EXPECT_DOUBLE_EQ(progress.last().at(0).toDouble(), 1.0);
}

TEST(SearchJob, CancelStopsTheSearchAndANewSearchDropsTheOldResult) {
  SearchJob job;
  QSignalSpy finished(&job, &SearchJob::finished);
  QSignalSpy cancelled(&job, &SearchJob::cancelled);
  // A large space, so that the search is still running when it is cancelled.
  const plan::SearchRequest large = to_search_request(gpt3_on("gpt3-175b", 512, 1536));
  job.start(large, {});
  job.cancel();
  ASSERT_TRUE(wait_until([&] { return cancelled.count() == 1; }));
  EXPECT_EQ(finished.count(), 0);
  EXPECT_FALSE(job.isRunning());

  plan::SearchOptions small;
  small.top = 3;
  job.start(large, {});
  job.start(to_search_request(gpt3_on("gpt3-1.3b", 1, 64)), small);  // the first becomes stale
  ASSERT_TRUE(wait_until([&] { return finished.count() == 1; }));
  QCoreApplication::processEvents();
  EXPECT_EQ(finished.count(), 1);
  EXPECT_EQ(finished.at(0).at(0).value<std::shared_ptr<const plan::SearchResult>>()->top.front().plan.model.name,
            "gpt3-1.3b");
}

}  // namespace
}  // namespace loom::gui
