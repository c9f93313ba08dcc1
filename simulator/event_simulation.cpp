#include "simulator/event_simulation.hpp"

#include "core/error.hpp"
#include "core/limits.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <tuple>
#include <fmt/format.h>

namespace loom::sim {
namespace {

using core::Action;
using core::ActionKind;

struct RankState {
  size_t next = 0;      // index of the next action
  double clock_s = 0;   // when the rank is free
  bool waiting = false; // blocked on a receive whose message has not been sent, or at the barrier
  bool at_step_statistics = false;  // computed its gradient norm and waits for the other ranks
  // The data-parallel stream (overlap-grad-reduce, overlap-param-gather): when it is free, and
  // the transfers it has run, for the contention they cause on compute.
  double dp_free_s = 0;
  std::vector<std::pair<double, double>> dp_busy;
};

class Simulation {
 public:
  Simulation(const core::PipelineSchedule& schedule, const StepCosts& costs, const SimulationOptions& options)
      : schedule_(schedule), costs_(costs), options_(options), state_(schedule.ranks.size()),
        messages_(schedule.ranks.size() * 2 * size_t(schedule.microbatches) * size_t(schedule.virtual_stages)) {
    timeline_.ranks.resize(schedule.ranks.size());
  }

  Timeline run() {
    start_parameter_gathers();
    std::vector<int32_t> ready;
    for (int32_t r = 0; r < int32_t(schedule_.ranks.size()); ++r) ready.push_back(r);
    while (!ready.empty()) {
      const int32_t r = ready.back();
      ready.pop_back();
      advance(r, ready);
    }
    for (size_t r = 0; r < state_.size(); ++r)
      if (state_[r].next < schedule_.ranks[r].size())
        throw Error("schedule deadlocked in simulation: pipeline rank {} waits at action {}", r, state_[r].next);
    for (size_t r = 0; r < state_.size(); ++r) {
      RankTotals& totals = timeline_.ranks[r];
      totals.end_s = state_[r].clock_s;
      timeline_.step_time_s = std::max(timeline_.step_time_s, totals.end_s);
    }
    // Ranks that finish early wait for the slowest one at the step's end (the gradient-norm
    // all-reduce and the next step's first transfers synchronise them): count it as bubble.
    for (RankTotals& totals : timeline_.ranks) {
      const double busy = totals.forward_s + totals.backward_s + totals.recompute_s + totals.tp_comm_s +
                          totals.pp_comm_s + totals.dp_comm_exposed_s + totals.optimizer_s;
      totals.idle_s = std::max(0.0, timeline_.step_time_s - busy);  // no negative rounding residue
    }
    return std::move(timeline_);
  }

 private:
  int32_t virtual_stage(int32_t rank, const Action& a) const { return schedule_.virtual_stage(rank, a.chunk); }

  // The action the peer must be at for `a` on `rank` to complete.
  Action counterpart(int32_t rank, const Action& a) const {
    const int32_t stage = virtual_stage(rank, a);
    const bool forward_direction = a.kind == ActionKind::send_activation || a.kind == ActionKind::recv_grad;
    const int32_t peer_stage = forward_direction ? stage + 1 : stage - 1;
    static constexpr auto match = [](ActionKind k) {
      switch (k) {
        case ActionKind::send_activation: return ActionKind::recv_activation;
        case ActionKind::recv_activation: return ActionKind::send_activation;
        case ActionKind::send_grad: return ActionKind::recv_grad;
        case ActionKind::recv_grad: return ActionKind::send_grad;
        default: return k;
      }
    };
    return {match(a.kind), a.microbatch, schedule_.chunk_of_stage(peer_stage), rank};
  }

  // A send from virtual stage `stage` crosses the link to stage + 1 (activations) or stage − 1
  // (gradients); send_s is indexed by the lower stage of each link.
  double transfer_s(int32_t stage, ActionKind send_kind) const {
    return costs_.send_s[size_t(send_kind == ActionKind::send_activation ? stage : stage - 1)];
  }

  void record(int32_t rank, Stream stream, std::string name, double start, double duration, const Action& a) {
    if (!options_.record_timeline || duration <= 0) return;
    make_room_for_event();
    timeline_.events.push_back({rank, stream, std::move(name), start, duration, a.microbatch, a.chunk});
  }

  // A timeline of millions of events is gigabytes in memory and on disk (a trace): refuse it.
  void make_room_for_event() const {
    if (int64_t(timeline_.events.size() + timeline_.transfers.size()) < options_.max_timeline_events) return;
    throw InvalidInput("the timeline of this step ({} pipeline ranks × {} virtual stages × {} microbatches) holds more "
                       "than the {} events Loom records for a trace or a chart; simulate it without the timeline, or "
                       "trace a plan with fewer microbatches",
                       schedule_.pipeline_size, schedule_.virtual_stages, schedule_.microbatches,
                       options_.max_timeline_events);
  }

  // overlap-param-gather: the all-gathers of the parameters updated at the end of the previous
  // step run from the start of this one, bucket by bucket in the order the forward needs them
  // (the rank's first chunk first), on the rank's data-parallel stream.
  void start_parameter_gathers() {
    if (!costs_.has_buckets()) return;
    gather_done_.resize(costs_.stage_bucket_list.size());
    for (int32_t rank = 0; rank < int32_t(state_.size()); ++rank) {
      RankState& s = state_[size_t(rank)];
      for (int32_t chunk = 0; chunk < schedule_.virtual_stages; ++chunk) {
        const int32_t stage = schedule_.virtual_stage(rank, chunk);
        const std::vector<GradientBucket>& buckets = costs_.buckets(stage);
        gather_done_[size_t(stage)].assign(buckets.size(), 0.0);
        for (size_t k = buckets.size(); k-- > 0;) {  // buckets are listed in backward order
          if (buckets[k].gather_s <= 0) continue;
          const double start = s.dp_free_s;
          s.dp_free_s = start + buckets[k].gather_s;
          s.dp_busy.emplace_back(start, s.dp_free_s);
          gather_done_[size_t(stage)][k] = s.dp_free_s;
          timeline_.ranks[size_t(rank)].dp_comm_s += buckets[k].gather_s;
          record(rank, Stream::dp_comm, fmt::format("parameter all-gather, bucket {}", k), start, buckets[k].gather_s,
                 Action{ActionKind::forward, 0, chunk, -1});
        }
      }
    }
  }

  // How long a rank's data-parallel transfers overlap [start, end).
  static double dp_overlap_s(const RankState& s, double start, double end) {
    double overlap = 0;
    for (const auto& [from, to] : s.dp_busy) overlap += std::max(0.0, std::min(to, end) - std::max(from, start));
    return overlap;
  }

  // The first forward of each chunk waits until the gathers of the buckets it reaches are done.
  double parameter_wait_s(int32_t stage, double start) const {
    if (gather_done_.empty()) return 0;
    const std::vector<GradientBucket>& buckets = costs_.buckets(stage);
    double wait = 0;
    for (size_t k = 0; k < buckets.size(); ++k)
      wait = std::max(wait, gather_done_[size_t(stage)][k] - (start + buckets[k].needed_s));
    return wait;
  }

  // overlap-grad-reduce: during the last microbatch's backward of a chunk, each bucket's
  // reduction starts on the data-parallel stream once its last gradient is final.
  void start_gradient_reductions(int32_t rank, int32_t stage, double start, const Action& a) {
    RankState& s = state_[size_t(rank)];
    const std::vector<GradientBucket>& buckets = costs_.buckets(stage);
    for (size_t k = 0; k < buckets.size(); ++k) {
      const double begin = std::max(start + buckets[k].ready_s, s.dp_free_s);
      s.dp_free_s = begin + buckets[k].reduce_s;
      s.dp_busy.emplace_back(begin, s.dp_free_s);
      timeline_.ranks[size_t(rank)].dp_comm_s += buckets[k].reduce_s;
      record(rank, Stream::dp_comm, fmt::format("gradient reduction, bucket {}", k), begin, buckets[k].reduce_s, a);
    }
  }

  void run_compute(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    const int32_t stage = virtual_stage(rank, a);
    const bool forward = a.kind == ActionKind::forward;
    const ActionCost& cost = forward ? costs_.forward[size_t(stage)] : costs_.backward[size_t(stage)];
    const bool overlapped_dp = costs_.has_buckets();
    if (overlapped_dp && forward && a.microbatch == 0) {
      const double wait = std::max(0.0, parameter_wait_s(stage, s.clock_s));
      totals.dp_comm_exposed_s += wait;
      record(rank, Stream::dp_comm, "wait for parameters", s.clock_s, wait, a);
      s.clock_s += wait;
    }
    if (overlapped_dp && !forward && a.microbatch == schedule_.microbatches - 1)
      start_gradient_reductions(rank, stage, s.clock_s, a);
    // Compute beside data-parallel transfers runs slower (the profile's contention factor).
    const double contention =
        overlapped_dp ? (costs_.compute_slowdown(rank) - 1.0) * dp_overlap_s(s, s.clock_s, s.clock_s + cost.total_s())
                      : 0.0;
    (forward ? totals.forward_s : totals.backward_s) += cost.compute_s + contention;
    totals.recompute_s += cost.recompute_s;
    totals.tp_comm_s += cost.tp_comm_s;
    totals.tp_comm_hidden_s += cost.tp_comm_hidden_s;
    if (options_.record_timeline) {
      const std::string label = schedule_.virtual_stages > 1
                                    ? fmt::format("{}{}.{}", forward ? 'F' : 'B', a.microbatch, a.chunk)
                                    : fmt::format("{}{}", forward ? 'F' : 'B', a.microbatch);
      record(rank, Stream::compute, label, s.clock_s, cost.total_s() + contention, a);
      double t = s.clock_s, compute_start = s.clock_s;
      for (const Segment& segment : cost.segments) {
        if (segment.beside_compute) {
          record(rank, segment.stream, fmt::format("{} (beside compute)", segment.name), compute_start,
                 segment.duration_s, a);
          continue;
        }
        if (segment.stream != Stream::compute) record(rank, segment.stream, std::string(segment.name), t, segment.duration_s, a);
        else compute_start = t;
        t += segment.duration_s;
      }
    }
    s.clock_s += cost.total_s() + contention;
  }

  void run_grad_sync(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    // Overlapped buckets: wait for the last one (at least the last bucket, complete only at the
    // end of the backward, is exposed).
    const double wait = std::max(0.0, s.dp_free_s - s.clock_s);
    totals.dp_comm_exposed_s += wait;
    record(rank, Stream::dp_comm, "wait for gradient buckets", s.clock_s, wait, a);
    s.clock_s += wait;
    // What is left to reduce here: everything without overlap-grad-reduce, the tied embedding.
    const double sync = costs_.grad_sync_s[size_t(rank)];
    totals.dp_comm_s += sync;
    totals.dp_comm_exposed_s += sync;
    record(rank, Stream::dp_comm, "grad sync", s.clock_s, sync, a);
    s.clock_s += sync;
  }

  // The optimizer step in the executor's order: the local gradient norm, then the world-wide
  // all-reduce of the step statistics (loss and squared norm), where every rank waits for the
  // last to arrive, then clipping, AdamW and the ZeRO-1 all-gather. Returns false while this rank
  // waits for others at the all-reduce. The wait and the all-reduce itself count as idle, as the
  // executor, which times neither as a category, measures them.
  bool run_optimizer(int32_t rank, const Action& a, std::vector<int32_t>& ready) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    if (!s.at_step_statistics && !step_statistics_done_) {
      const double norm = costs_.grad_norm_s[size_t(rank)];
      totals.optimizer_s += norm;
      record(rank, Stream::compute, "gradient norm", s.clock_s, norm, a);
      s.clock_s += norm;
      s.at_step_statistics = true;
      if (++ranks_at_step_statistics_ < state_.size()) return false;
      // The last rank has arrived: the all-reduce ends for all at once.
      double last_arrival = 0;
      for (const RankState& other : state_) last_arrival = std::max(last_arrival, other.clock_s);
      const double done = last_arrival + costs_.step_statistics_s;
      for (int32_t r = 0; r < int32_t(state_.size()); ++r) {
        record(r, Stream::dp_comm, "step statistics all-reduce", last_arrival, costs_.step_statistics_s, a);
        state_[size_t(r)].clock_s = done;
        if (r != rank) wake(r, ready);
      }
      step_statistics_done_ = true;
    }
    if (!step_statistics_done_) return false;
    const double update = costs_.optimizer_s[size_t(rank)] - costs_.grad_norm_s[size_t(rank)];
    const double gather = costs_.optimizer_comm_s[size_t(rank)];
    totals.optimizer_s += update - gather;
    totals.dp_comm_s += gather;
    totals.dp_comm_exposed_s += gather;
    record(rank, Stream::compute, "optimizer step", s.clock_s, update - gather, a);
    record(rank, Stream::dp_comm, "parameter all-gather", s.clock_s + update - gather, gather, a);
    s.clock_s += update;
    return true;
  }

  // What is known of one message, kept under its receiving end: (receiving rank, receive
  // kind, microbatch, chunk). Negative times: not yet.
  struct Message {
    double sent_s = -1;      // when a rendezvous sender reached its send and began to wait
    double posted_s = -1;    // when the receiver reached its receive and began to wait
    double arrival_s = -1;   // when the transfer ends
  };

  Message& message(int32_t rank, ActionKind recv_kind, int32_t microbatch, int32_t chunk) {
    const size_t m = size_t(schedule_.microbatches), v = size_t(schedule_.virtual_stages);
    const size_t kind = recv_kind == ActionKind::recv_activation ? 0 : 1;
    return messages_[((size_t(rank) * 2 + kind) * m + size_t(microbatch)) * v + size_t(chunk)];
  }

  void wake(int32_t rank, std::vector<int32_t>& ready) {
    if (!state_[size_t(rank)].waiting) return;
    state_[size_t(rank)].waiting = false;
    ready.push_back(rank);
  }

  void record_transfer(int32_t rank, const Action& a, double start, double duration) {
    timeline_.ranks[size_t(rank)].pp_comm_s += duration;
    if (!options_.record_timeline) return;
    const bool activation = a.kind == ActionKind::send_activation;
    record(rank, Stream::pp_comm, fmt::format("send {} {}", activation ? "activation" : "grad", a.microbatch), start,
           duration, a);
    make_room_for_event();
    timeline_.transfers.push_back({rank, a.peer, start, start + duration,
                                   fmt::format("{} {}", activation ? "activation" : "grad", a.microbatch)});
  }

  // An eager send goes out when the sender reaches it (the sender is busy for the transfer)
  // and lands at the receiver when the transfer ends, whether or not the receiver is there yet.
  // A rendezvous send (a message above the link's eager limit: MPI's blocking send) starts
  // only once both ends have reached the pair of actions, and occupies both until it ends.
  // Returns false when the sender must wait for its receiver.
  bool run_send(int32_t rank, const Action& a, std::vector<int32_t>& ready) {
    RankState& s = state_[size_t(rank)];
    const int32_t stage = virtual_stage(rank, a);
    const double duration = transfer_s(stage, a.kind);
    const Action landing = counterpart(rank, a);
    Message& msg = message(a.peer, landing.kind, landing.microbatch, landing.chunk);
    const bool rendezvous =
        costs_.send_rendezvous[size_t(a.kind == ActionKind::send_activation ? stage : stage - 1)];
    if (!rendezvous) {
      msg.arrival_s = s.clock_s + duration;
      record_transfer(rank, a, s.clock_s, duration);
      s.clock_s += duration;
      wake(a.peer, ready);
      return true;
    }
    if (msg.sent_s >= 0 && msg.arrival_s >= 0) {  // the receiver came and completed the transfer
      s.clock_s = msg.arrival_s;
      msg = Message{};
      return true;
    }
    if (msg.posted_s < 0) {  // the receiver is not there yet: wait for it
      msg.sent_s = s.clock_s;
      return false;
    }
    const double start = std::max(s.clock_s, msg.posted_s);
    record_transfer(rank, a, start, duration);
    msg.arrival_s = start + duration;
    s.clock_s = msg.arrival_s;
    wake(a.peer, ready);
    return true;
  }

  // Returns false when the message cannot be had yet (the rank then blocks).
  bool run_recv(int32_t rank, const Action& a, std::vector<int32_t>& ready) {
    RankState& s = state_[size_t(rank)];
    Message& msg = message(rank, a.kind, a.microbatch, a.chunk);
    const Action sent = counterpart(rank, a);
    const double transfer = transfer_s(schedule_.virtual_stage(a.peer, sent.chunk), sent.kind);
    if (msg.arrival_s < 0 && msg.sent_s >= 0) {
      // A rendezvous sender waits here: the transfer runs now, and ends for both.
      const double start = std::max(s.clock_s, msg.sent_s);
      record_transfer(a.peer, sent, start, transfer);
      msg.arrival_s = start + transfer;
      timeline_.ranks[size_t(rank)].pp_comm_s += transfer;
      if (options_.record_timeline)
        record(rank, Stream::pp_comm,
               fmt::format("recv {} {}", a.kind == ActionKind::recv_activation ? "activation" : "grad", a.microbatch),
               start, transfer, a);
      s.clock_s = msg.arrival_s;
      wake(a.peer, ready);  // the sender finds its transfer done and clears the message
      return true;
    }
    if (msg.arrival_s < 0) {
      msg.posted_s = s.clock_s;
      return false;
    }
    const double arrival = msg.arrival_s;
    const bool sender_done = msg.sent_s < 0;  // eager, or a rendezvous its sender completed
    if (sender_done) msg = Message{};
    if (arrival > s.clock_s) {
      // Waiting for a message: the part that overlaps its transfer is communication, the rest
      // (the sender was still computing) is bubble.
      const double exposed = std::min(transfer, arrival - s.clock_s);
      timeline_.ranks[size_t(rank)].pp_comm_s += exposed;
      if (options_.record_timeline)
        record(rank, Stream::pp_comm,
               fmt::format("recv {} {}", a.kind == ActionKind::recv_activation ? "activation" : "grad", a.microbatch),
               arrival - exposed, exposed, a);
      s.clock_s = arrival;
    }
    return true;
  }

  void advance(int32_t rank, std::vector<int32_t>& ready) {
    RankState& s = state_[size_t(rank)];
    const std::vector<Action>& actions = schedule_.ranks[size_t(rank)];
    while (s.next < actions.size()) {
      const Action& a = actions[s.next];
      switch (a.kind) {
        case ActionKind::forward:
        case ActionKind::backward: run_compute(rank, a); break;
        case ActionKind::grad_sync: run_grad_sync(rank, a); break;
        case ActionKind::optimizer_step:
          if (!run_optimizer(rank, a, ready)) {
            s.waiting = true;
            return;
          }
          break;
        default:
          if (!(a.is_send() ? run_send(rank, a, ready) : run_recv(rank, a, ready))) {
            s.waiting = true;
            return;
          }
          break;
      }
      ++s.next;
    }
    s.waiting = false;
  }

  const core::PipelineSchedule& schedule_;
  const StepCosts& costs_;
  const SimulationOptions& options_;
  std::vector<RankState> state_;
  std::vector<Message> messages_;  // see message()
  std::vector<std::vector<double>> gather_done_;  // by virtual stage and bucket: when its gather ends
  size_t ranks_at_step_statistics_ = 0;
  bool step_statistics_done_ = false;
  Timeline timeline_;
};

}  // namespace

namespace {

// Costs built for another schedule are a programming error: named here, not read out of bounds.
void check_cost_shapes(const core::PipelineSchedule& schedule, const StepCosts& costs) {
  const size_t stages = size_t(schedule.pipeline_size) * size_t(schedule.virtual_stages);
  const size_t ranks = size_t(schedule.pipeline_size);
  const auto expect = [](const char* name, size_t actual, size_t expected) {
    if (actual != expected)
      throw std::logic_error(fmt::format("StepCosts::{} has {} entries; the schedule needs {}", name, actual, expected));
  };
  expect("forward", costs.forward.size(), stages);
  expect("backward", costs.backward.size(), stages);
  expect("send_s", costs.send_s.size(), stages);
  expect("send_rendezvous", costs.send_rendezvous.size(), stages);
  expect("grad_sync_s", costs.grad_sync_s.size(), ranks);
  expect("optimizer_s", costs.optimizer_s.size(), ranks);
  expect("optimizer_comm_s", costs.optimizer_comm_s.size(), ranks);
  expect("grad_norm_s", costs.grad_norm_s.size(), ranks);
  if (costs.has_buckets()) {
    expect("stage_bucket_list", costs.stage_bucket_list.size(), stages);
    for (uint16_t list : costs.stage_bucket_list)
      if (list >= costs.bucket_lists.size())
        throw std::logic_error(fmt::format("StepCosts::stage_bucket_list names list {} of {}", list, costs.bucket_lists.size()));
  }
  if (!costs.overlap_compute_slowdown.empty()) expect("overlap_compute_slowdown", costs.overlap_compute_slowdown.size(), ranks);
}

}  // namespace

Timeline simulate_schedule(const core::PipelineSchedule& schedule, const StepCosts& costs,
                           const SimulationOptions& options) {
  const int64_t triples = int64_t(schedule.pipeline_size) * schedule.virtual_stages * schedule.microbatches;
  if (triples > core::limits::kMaxSimulatedStageMicrobatches)
    throw InvalidInput("a schedule of {} pipeline ranks × {} virtual stages × {} microbatches = {} is more than the {} "
                       "Loom simulates",
                       schedule.pipeline_size, schedule.virtual_stages, schedule.microbatches, triples,
                       core::limits::kMaxSimulatedStageMicrobatches);
  check_cost_shapes(schedule, costs);
  return Simulation(schedule, costs, options).run();
}

int64_t stage_microbatches(const core::Plan& plan) {
  // p·v ≤ num-layers ≤ 2^14 and m ≤ global-batch-size ≤ 2^24 (core/limits.hpp): no overflow.
  return plan.parallel.pipeline_parallel * plan.virtual_stages() * plan.microbatches();
}

void check_simulation_size(const core::Plan& plan) {
  const int64_t triples = stage_microbatches(plan);
  if (triples <= core::limits::kMaxSimulatedStageMicrobatches) return;
  const core::ParallelPlan& p = plan.parallel;
  throw InvalidInput(
      "global-batch-size={} / (micro-batch-size={} × data-parallel-size={}) = {} microbatches on "
      "pipeline-model-parallel-size={} × {} virtual stages: {} stage-microbatches to simulate, more than the {} Loom "
      "simulates (its memory and time grow with them); use a larger micro-batch-size, more data parallelism or a "
      "smaller global batch",
      plan.training.global_batch_size, p.micro_batch_size, p.data_parallel, plan.microbatches(), p.pipeline_parallel,
      plan.virtual_stages(), triples, core::limits::kMaxSimulatedStageMicrobatches);
}

}  // namespace loom::sim
