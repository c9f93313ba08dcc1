#include "simulator/trace.hpp"

#include "core/enums.hpp"

#include <fmt/format.h>

#include <array>
#include <string>
#include <vector>

namespace loom::sim {
namespace {

constexpr std::array<Stream, 4> kStreams = {Stream::compute, Stream::tp_comm, Stream::pp_comm,
                                            Stream::dp_comm};

// Chrome's trace format takes times in microseconds; the simulator works in seconds.
double to_us(double seconds) {
  return seconds * 1e6;
}

// A fixed tid per stream, so every rank's threads line up in the same order in the viewer.
int tid_of(Stream stream) {
  return static_cast<int>(stream);
}

// "layers 12–15", or "layer 12" when a chunk holds a single layer.
std::string layer_range(int64_t first, int64_t count) {
  if (count == 1) return fmt::format("layer {}", first);
  return fmt::format("layers {}–{}", first, first + count - 1);
}

// Names the process after the layers the rank holds (and, on a mixed cluster, its group's
// profile), so a slow rank in the viewer can be told apart at a glance. With interleaving, chunk c
// of rank r is virtual stage c·p + r (Megatron); stages hold Plan::virtual_stage_layers.
std::string process_name(const core::Plan& plan, int64_t rank) {
  const int64_t p = plan.parallel.pipeline_parallel;
  const int64_t v = plan.virtual_stages();
  const std::vector<int64_t> layers = plan.virtual_stage_layers();
  std::vector<int64_t> first_layer(layers.size(), 0);  // the first layer of each virtual stage
  for (size_t s = 1; s < layers.size(); ++s) first_layer[s] = first_layer[s - 1] + layers[s - 1];
  const auto range = [&](int64_t stage) {
    const int64_t first = first_layer[size_t(stage)], count = layers[size_t(stage)];
    return count == 0 ? std::string("no layers") : layer_range(first, count);
  };
  std::string name;
  if (v == 1) {
    name = fmt::format("pipeline rank {} ({})", rank, range(rank));
  } else {
    std::string ranges;
    for (int64_t c = 0; c < v; ++c) {
      const int64_t stage = c * p + rank, first = first_layer[size_t(stage)], count = layers[size_t(stage)];
      ranges += c == 0       ? range(stage)
                : count == 0 ? std::string(", none")
                : count == 1 ? fmt::format(", {}", first)
                             : fmt::format(", {}–{}", first, first + count - 1);
    }
    name = fmt::format("pipeline rank {} ({} chunks: {})", rank, v, ranges);
  }
  if (plan.cluster.mixed())
    name += fmt::format(" on {}", plan.cluster.groups[size_t(plan.pipeline_rank_groups()[size_t(rank)])].profile);
  return name;
}

core::Json metadata(std::string_view name, int64_t pid, int tid, core::Json args) {
  return core::Json{
      {"name", name}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", std::move(args)}};
}

// Chrome's reserved colour names: forward green, backward orange, so the 1F1B pattern shows.
const char* colour_of(const TimelineEvent& event) {
  if (event.stream != Stream::compute || event.name.empty()) return nullptr;
  if (event.name.front() == 'F') return "thread_state_running";
  if (event.name.front() == 'B') return "thread_state_iowait";
  return nullptr;
}

core::Json complete_event(const TimelineEvent& event) {
  const std::string_view stream = to_string(event.stream);
  core::Json x = {{"name", event.name},
                  {"cat", stream},
                  {"ph", "X"},
                  {"pid", event.pipeline_rank},
                  {"tid", tid_of(event.stream)},
                  {"ts", to_us(event.start_s)},
                  {"dur", to_us(event.duration_s)}};
  if (const char* colour = colour_of(event)) x["cname"] = colour;
  if (event.microbatch >= 0) x["args"] = {{"microbatch", event.microbatch}, {"chunk", event.chunk}};
  return x;
}

// A flow half ("s" at the sender, "f" at the receiver); each binds to the pp-comm slice that
// encloses its time stamp, which draws the arrow from the send to the matching receive.
core::Json flow_event(const Transfer& transfer, int64_t id, bool start) {
  core::Json flow = {{"name", transfer.name},
                     {"cat", "pp transfer"},
                     {"ph", start ? "s" : "f"},
                     {"id", id},
                     {"pid", start ? transfer.from_rank : transfer.to_rank},
                     {"tid", tid_of(Stream::pp_comm)},
                     {"ts", to_us(start ? transfer.start_s : transfer.end_s)}};
  if (!start) flow["bp"] = "e";
  return flow;
}

// Every event of the trace in order, each handed to `emit` as a small JSON object.
template <typename Emit>
void emit_trace_events(const core::Plan& plan, const Prediction& prediction, Emit&& emit) {
  for (int64_t rank = 0; rank < plan.parallel.pipeline_parallel; ++rank) {
    emit(metadata("process_name", rank, 0, {{"name", process_name(plan, rank)}}));
    emit(metadata("process_sort_index", rank, 0, {{"sort_index", rank}}));
    for (Stream stream : kStreams) {
      emit(metadata("thread_name", rank, tid_of(stream), {{"name", to_string(stream)}}));
      emit(metadata("thread_sort_index", rank, tid_of(stream), {{"sort_index", tid_of(stream)}}));
    }
  }
  for (const TimelineEvent& event : prediction.timeline.events) emit(complete_event(event));
  // Ids start at 1: some viewers treat id 0 as "no flow".
  int64_t id = 1;
  for (const Transfer& transfer : prediction.timeline.transfers) {
    emit(flow_event(transfer, id, true));
    emit(flow_event(transfer, id, false));
    ++id;
  }
}

core::Json other_data(const core::Plan& plan, const Prediction& prediction) {
  return {{"model", plan.model.name},
          {"profile", prediction.profile_name},
          {"step_time_s", prediction.step_time_s},
          {"tensor_parallel", plan.parallel.tensor_parallel},
          {"pipeline_parallel", plan.parallel.pipeline_parallel},
          {"data_parallel", plan.parallel.data_parallel},
          {"schedule", core::to_string(plan.parallel.schedule)}};
}

}  // namespace

core::Json chrome_trace(const core::Plan& plan, const Prediction& prediction) {
  core::Json events = core::Json::array();
  emit_trace_events(plan, prediction, [&](core::Json event) { events.push_back(std::move(event)); });
  return core::Json{{"traceEvents", std::move(events)},
                    {"displayTimeUnit", "ms"},
                    {"otherData", other_data(plan, prediction)}};
}

std::string chrome_trace_text(const core::Plan& plan, const Prediction& prediction) {
  // The keys in chrome_trace's order (core::Json keeps insertion order), so the text is its dump.
  std::string text = R"({"traceEvents":[)";
  bool first = true;
  emit_trace_events(plan, prediction, [&](const core::Json& event) {
    if (!first) text += ',';
    first = false;
    text += event.dump();
  });
  text += R"(],"displayTimeUnit":"ms","otherData":)" + other_data(plan, prediction).dump() + "}\n";
  return text;
}

}  // namespace loom::sim
