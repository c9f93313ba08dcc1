#include "cli/pipeline_stages.hpp"

#include "cli/format.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace loom::cli {

std::string range_text(int64_t first, int64_t last) {
  return first == last ? std::to_string(first) : fmt::format("{}–{}", first, last);
}

std::vector<StageRow> pipeline_stage_rows(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  const int64_t pp = p.pipeline_parallel, stage_ranks = p.tensor_parallel * p.data_parallel;
  const std::vector<int64_t> chunks = plan.virtual_stage_layers();
  const std::vector<int64_t> groups = plan.pipeline_rank_groups();
  const std::vector<core::DeviceGroup> device_groups = plan.cluster.device_groups();
  std::vector<StageRow> rows;
  for (int64_t r = 0; r < pp; ++r) {
    StageRow row;
    row.stage = r;
    row.first_rank = r * stage_ranks;
    row.last_rank = (r + 1) * stage_ranks - 1;
    row.device_group = groups[size_t(r)];
    row.profile = device_groups[size_t(row.device_group)].profile;
    for (size_t i = size_t(r); i < chunks.size(); i += size_t(pp)) {
      row.chunk_layers.push_back(chunks[i]);
      row.layers += chunks[i];
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string layer_split_source(const core::ParallelPlan& p) {
  if (!p.pipeline_layer_split.empty()) return "pipeline-layer-split";
  if (p.first_stage_layers && p.last_stage_layers) return "decoder-first/last-pipeline-num-layers";
  if (p.first_stage_layers) return "decoder-first-pipeline-num-layers";
  if (p.last_stage_layers) return "decoder-last-pipeline-num-layers";
  if (p.account_for_embedding && p.account_for_loss) return "account-for-embedding/loss-in-pipeline-split";
  if (p.account_for_embedding) return "account-for-embedding-in-pipeline-split";
  if (p.account_for_loss) return "account-for-loss-in-pipeline-split";
  return "even split";
}

std::string layer_split_text(const core::Plan& plan) {
  const std::vector<int64_t> ranks = plan.pipeline_rank_layers();
  std::string text = plan.parallel.has_layer_split_rule() ? fmt::format("{}", fmt::join(ranks, ", "))
                                                          : fmt::format("{} each", ranks.front());
  text += fmt::format(" ({})", layer_split_source(plan.parallel));
  if (plan.virtual_stages() > 1) {
    // Chunk c of every rank, c = 0 … v-1, as Megatron numbers virtual stages.
    const std::vector<int64_t> chunks = plan.virtual_stage_layers();
    const size_t pp = size_t(plan.parallel.pipeline_parallel);
    std::vector<std::string> rounds;
    for (size_t c = 0; c * pp < chunks.size(); ++c)
      rounds.push_back(fmt::format("{}", fmt::join(chunks.begin() + long(c * pp), chunks.begin() + long((c + 1) * pp), ", ")));
    text += fmt::format("; per virtual stage {}", fmt::join(rounds, " | "));
  }
  return text;
}

std::string placement_text(const core::Plan& plan) {
  const std::vector<StageRow> rows = pipeline_stage_rows(plan);
  std::vector<std::string> parts;
  for (size_t i = 0; i < rows.size();) {
    size_t j = i;
    while (j + 1 < rows.size() && rows[j + 1].device_group == rows[i].device_group) ++j;
    parts.push_back(fmt::format("stage{} {} on {} (group {}, ranks {})", i == j ? "" : "s", range_text(int64_t(i), int64_t(j)),
                                rows[i].profile, rows[i].device_group, range_text(rows[i].first_rank, rows[j].last_rank)));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

core::Json pipeline_stages_json(const core::Plan& plan) {
  core::Json out = core::Json::array();
  for (const StageRow& row : pipeline_stage_rows(plan))
    out.push_back({{"stage", row.stage},
                   {"first_rank", row.first_rank},
                   {"last_rank", row.last_rank},
                   {"device_group", row.device_group},
                   {"profile", row.profile},
                   {"layers", row.layers},
                   {"virtual_stage_layers", row.chunk_layers}});
  return out;
}

namespace {

std::string gib(int64_t bytes) { return fmt::format("{:.2f}", double(bytes) / double(int64_t(1) << 30)); }

std::string busy_text(double s) {
  if (s >= 1.0) return fmt::format("{:.3f} s", s);
  return fmt::format("{:.2f} ms", s * 1e3);
}

}  // namespace

std::string pipeline_stage_table(const core::Plan& plan, const sim::Prediction* prediction) {
  const std::vector<StageRow> rows = pipeline_stage_rows(plan);
  const bool chunks = plan.virtual_stages() > 1;
  std::vector<std::string> header = {"stage", "ranks", "device group", "layers"};
  if (chunks) header.push_back("per virtual stage");
  std::vector<size_t> right = {0, 3};
  if (prediction) {
    right.insert(right.end(), {header.size(), header.size() + 1, header.size() + 3});  // memory, of, busy
    for (const char* column : {"memory GiB", "of GiB", "fits", "busy"}) header.push_back(column);
    header.push_back("");
  }
  TextTable table(header, right);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows.size() > 16 && i == 6) {
      table.add_row({"…"});
      i = rows.size() - 6;
    }
    const StageRow& row = rows[i];
    std::vector<std::string> cells = {std::to_string(row.stage), range_text(row.first_rank, row.last_rank),
                                      fmt::format("{}: {}", row.device_group, row.profile), std::to_string(row.layers)};
    if (chunks) cells.push_back(fmt::format("{}", fmt::join(row.chunk_layers, " + ")));
    if (prediction) {
      const bool known = i < prediction->stages.size() && i < prediction->memory.size();
      const sim::StagePrediction* stage = known ? &prediction->stages[i] : nullptr;
      cells.push_back(i < prediction->memory.size() ? gib(prediction->memory[i].total_bytes()) : "-");
      cells.push_back(stage ? gib(stage->device_memory_bytes) : "-");
      cells.push_back(stage ? (stage->fits ? "yes" : "NO") : "-");
      cells.push_back(stage ? busy_text(stage->busy_s) : "-");
      cells.push_back(int64_t(i) == prediction->bottleneck_pipeline_stage ? "◀ bottleneck" : "");
    }
    table.add_row(std::move(cells));
  }
  return table.render();
}

}  // namespace loom::cli
