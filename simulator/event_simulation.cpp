#include "simulator/event_simulation.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <map>
#include <tuple>
#include <fmt/format.h>

namespace loom::sim {
namespace {

using core::Action;
using core::ActionKind;

struct RankState {
  size_t next = 0;      // index of the next action
  double clock_s = 0;   // when the rank is free
  bool waiting = false; // blocked on a receive whose message has not been sent
};

class Simulation {
 public:
  Simulation(const core::PipelineSchedule& schedule, const StepCosts& costs, const SimulationOptions& options)
      : schedule_(schedule), costs_(costs), options_(options), state_(schedule.ranks.size()),
        arrivals_(schedule.ranks.size() * 2 * size_t(schedule.microbatches) * size_t(schedule.virtual_stages), -1.0) {
    timeline_.ranks.resize(schedule.ranks.size());
  }

  Timeline run() {
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
    timeline_.events.push_back({rank, stream, std::move(name), start, duration, a.microbatch, a.chunk});
  }

  void run_compute(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    const int32_t stage = virtual_stage(rank, a);
    const bool forward = a.kind == ActionKind::forward;
    const ActionCost& cost = forward ? costs_.forward[size_t(stage)] : costs_.backward[size_t(stage)];
    (forward ? totals.forward_s : totals.backward_s) += cost.compute_s;
    totals.recompute_s += cost.recompute_s;
    totals.tp_comm_s += cost.tp_comm_s;
    if (options_.record_timeline) {
      const std::string label = schedule_.virtual_stages > 1
                                    ? fmt::format("{}{}.{}", forward ? 'F' : 'B', a.microbatch, a.chunk)
                                    : fmt::format("{}{}", forward ? 'F' : 'B', a.microbatch);
      record(rank, Stream::compute, label, s.clock_s, cost.total_s(), a);
      double t = s.clock_s;
      for (const Segment& segment : cost.segments) {
        if (segment.stream != Stream::compute) record(rank, segment.stream, std::string(segment.name), t, segment.duration_s, a);
        t += segment.duration_s;
      }
    }
    s.clock_s += cost.total_s();
  }

  void run_grad_sync(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    const double sync = costs_.grad_sync_s[size_t(rank)];
    // With overlap the reduction starts while the last backward still runs (bucket by bucket).
    double overlap = 0;
    if (options_.overlap_grad_reduce)
      overlap = std::min(sync, costs_.backward[size_t(schedule_.virtual_stage(rank, 0))].compute_s);
    totals.dp_comm_s += sync;
    totals.dp_comm_exposed_s += sync - overlap;
    record(rank, Stream::dp_comm, "grad sync", s.clock_s - overlap, sync, a);
    s.clock_s += sync - overlap;
  }

  void run_optimizer(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    RankTotals& totals = timeline_.ranks[size_t(rank)];
    const double step = costs_.optimizer_s[size_t(rank)];
    const double gather = costs_.optimizer_comm_s[size_t(rank)];
    totals.optimizer_s += step - gather;
    totals.dp_comm_s += gather;
    totals.dp_comm_exposed_s += gather;
    record(rank, Stream::compute, "optimizer step", s.clock_s, step - gather, a);
    record(rank, Stream::dp_comm, "parameter all-gather", s.clock_s + step - gather, gather, a);
    s.clock_s += step;
  }

  // Where a message's arrival time is kept: one slot per (receiving rank, receive kind,
  // microbatch, chunk); negative while nothing is in flight there.
  double& arrival_slot(int32_t rank, ActionKind recv_kind, int32_t microbatch, int32_t chunk) {
    const size_t m = size_t(schedule_.microbatches), v = size_t(schedule_.virtual_stages);
    const size_t kind = recv_kind == ActionKind::recv_activation ? 0 : 1;
    return arrivals_[((size_t(rank) * 2 + kind) * m + size_t(microbatch)) * v + size_t(chunk)];
  }

  // A send goes out when the sender reaches it (the sender is busy for the transfer) and lands
  // at the receiver when the transfer ends, whether or not the receiver is there yet: NCCL and
  // MPI both buffer a pipeline message in flight, and Megatron posts each receive together with
  // the neighbouring send.
  void run_send(int32_t rank, const Action& a, std::vector<int32_t>& ready) {
    RankState& s = state_[size_t(rank)];
    const double duration = transfer_s(virtual_stage(rank, a), a.kind);
    const Action landing = counterpart(rank, a);
    arrival_slot(a.peer, landing.kind, landing.microbatch, landing.chunk) = s.clock_s + duration;
    timeline_.ranks[size_t(rank)].pp_comm_s += duration;
    if (options_.record_timeline) {
      const bool activation = a.kind == ActionKind::send_activation;
      record(rank, Stream::pp_comm, fmt::format("send {} {}", activation ? "activation" : "grad", a.microbatch),
             s.clock_s, duration, a);
      timeline_.transfers.push_back({rank, a.peer, s.clock_s, s.clock_s + duration,
                                     fmt::format("{} {}", activation ? "activation" : "grad", a.microbatch)});
    }
    s.clock_s += duration;
    if (state_[size_t(a.peer)].waiting) {
      state_[size_t(a.peer)].waiting = false;
      ready.push_back(a.peer);
    }
  }

  // Returns false when the message has not been sent yet (the rank then blocks).
  bool run_recv(int32_t rank, const Action& a) {
    RankState& s = state_[size_t(rank)];
    double& slot = arrival_slot(rank, a.kind, a.microbatch, a.chunk);
    if (slot < 0) return false;
    const double arrival = slot;
    slot = -1;
    if (arrival > s.clock_s) {
      // Waiting for a message: the part that overlaps its transfer is communication, the rest
      // (the sender was still computing) is bubble.
      const Action sent = counterpart(rank, a);
      const double transfer = transfer_s(schedule_.virtual_stage(a.peer, sent.chunk), sent.kind);
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
        case ActionKind::optimizer_step: run_optimizer(rank, a); break;
        default:
          if (a.is_send()) {
            run_send(rank, a, ready);
          } else if (!run_recv(rank, a)) {
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
  std::vector<double> arrivals_;  // see arrival_slot
  Timeline timeline_;
};

}  // namespace

Timeline simulate_schedule(const core::PipelineSchedule& schedule, const StepCosts& costs,
                           const SimulationOptions& options) {
  return Simulation(schedule, costs, options).run();
}

}  // namespace loom::sim
