#pragma once
// The one pipeline schedule (DESIGN.md §2): for each pipeline rank, the ordered list of actions
// of one training step. The simulator times this list; the executor walks the very same list.
//
// Model chunks: with v virtual stages per pipeline rank, rank r holds chunks c = 0 … v-1, and
// chunk c on rank r is virtual stage s = c·p + r (Megatron's interleaving). Activations flow
// from virtual stage s to s+1 (rank r+1, or rank 0's next chunk after the last rank), gradients
// the other way. Without interleaving v = 1 and the chunk is always 0.

#include "core/enums.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace loom::core {

enum class ActionKind : uint8_t {
  forward,          // Forward(microbatch, chunk)
  backward,         // Backward(microbatch, chunk)
  send_activation,  // output of Forward(microbatch, chunk) to the next virtual stage's rank
  recv_activation,  // input of Forward(microbatch, chunk) from the previous virtual stage's rank
  send_grad,        // input gradient of Backward(microbatch, chunk) to the previous stage's rank
  recv_grad,        // output gradient for Backward(microbatch, chunk) from the next stage's rank
  grad_sync,        // data-parallel gradient reduction (and the tied-embedding sync)
  optimizer_step,   // AdamW step on this rank's parameters
};

struct Action {
  ActionKind kind = ActionKind::forward;
  int32_t microbatch = -1;  // -1 for grad_sync and optimizer_step
  int32_t chunk = 0;        // the local model chunk the data belongs to
  int32_t peer = -1;        // pipeline rank on the other end of a send/recv; -1 otherwise

  bool is_compute() const { return kind == ActionKind::forward || kind == ActionKind::backward; }
  bool is_send() const { return kind == ActionKind::send_activation || kind == ActionKind::send_grad; }
  bool is_recv() const { return kind == ActionKind::recv_activation || kind == ActionKind::recv_grad; }
  bool operator==(const Action&) const = default;
};

struct PipelineSchedule {
  Schedule kind = Schedule::one_f_one_b;
  int32_t pipeline_size = 1;   // p
  int32_t virtual_stages = 1;  // v, model chunks per pipeline rank
  int32_t microbatches = 1;    // m
  std::vector<std::vector<Action>> ranks;  // ranks[r]: rank r's actions in execution order

  int32_t virtual_stage(int32_t rank, int32_t chunk) const { return chunk * pipeline_size + rank; }
  int32_t rank_of_stage(int32_t stage) const { return stage % pipeline_size; }
  int32_t chunk_of_stage(int32_t stage) const { return stage / pipeline_size; }
  int32_t last_virtual_stage() const { return pipeline_size * virtual_stages - 1; }
};

// Builds the schedule. Throws InvalidInput on sizes the schedule cannot take (p, v, m < 1;
// v > 1 without the interleaved schedule; interleaved with m % p != 0).
//  - gpipe: all forwards, then all backwards.
//  - 1f1b: rank r runs min(p − r − 1, m) warm-up forwards, then alternates one forward and one
//    backward, then drains the remaining backwards (Megatron's schedule without interleaving).
//  - interleaved: Megatron's interleaved 1F1B over m·v (microbatch, chunk) pairs, warm-up
//    (p − r − 1)·2 + (v − 1)·p (all of them when m == p).
// Point-to-point actions are placed so that executing every rank's list in order with blocking
// (rendezvous) sends and receives cannot deadlock.
PipelineSchedule build_schedule(Schedule kind, int32_t pipeline_size, int32_t virtual_stages,
                                int32_t microbatches);

// Throws loom::Error describing the first violation: a forward or backward missing or repeated,
// a backward before its forward, a send without its matching receive (or a mismatched peer), a
// receive after the compute that needs it, grad_sync/optimizer_step not last, or a deadlock
// when the lists run in order with rendezvous point-to-point.
void check_schedule(const PipelineSchedule& schedule);

// Compact text: compute actions as F3 / B3 (microbatch 3), with ".c" for chunk c when v > 1
// (F3.1); with `include_communication`, also sA3 rA3 sG3 rG3 (send/recv activation/grad), GS
// (grad sync) and OS (optimizer step). Actions are separated by single spaces.
std::string to_text(const std::vector<Action>& actions, bool include_communication = false,
                    bool show_chunks = false);
// One line per rank: "0: F0 F1 B0 …".
std::string to_text(const PipelineSchedule& schedule, bool include_communication = false);

}  // namespace loom::core
