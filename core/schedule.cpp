#include "core/schedule.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace loom::core {
namespace {

// Every rank's compute list has the same shape (Megatron-LM, schedules.py): `warmup` forwards,
// then alternately one forward and one backward, then the remaining backwards. The kinds differ
// only in the warm-up length and in which (microbatch, chunk) the k-th forward/backward runs.
// Computed on demand rather than stored: large schedules are bound by memory traffic.
class ComputeOrder {
 public:
  ComputeOrder(Schedule kind, int32_t p, int32_t v, int32_t m)
      : kind_(kind), p_(p), v_(v), m_(m), total_(m * v) {}

  int32_t size() const { return 2 * total_; }

  int32_t warmup(int32_t r) const {
    switch (kind_) {
      case Schedule::gpipe: return total_;
      case Schedule::one_f_one_b: return std::min(p_ - r - 1, m_);
      case Schedule::interleaved:
        // Megatron runs everything as warm-up when m == p; otherwise rank r keeps enough
        // forwards in flight for its first backward's chunk to have been reached.
        return m_ == p_ ? total_ : std::min((p_ - r - 1) * 2 + (v_ - 1) * p_, total_);
    }
    return total_;
  }

  // The i-th compute of rank r.
  Action at(int32_t r, int32_t i) const {
    const int32_t w = warmup(r);
    if (i < w) return nth(ActionKind::forward, i);
    if (i >= 2 * total_ - w) return nth(ActionKind::backward, i - total_);  // cooldown
    const int32_t j = i - w;
    return j % 2 == 0 ? nth(ActionKind::forward, w + j / 2) : nth(ActionKind::backward, j / 2);
  }

 private:
  Schedule kind_;
  int32_t p_, v_, m_, total_;

  // Megatron's get_model_chunk_id: virtual microbatches go in groups of p·v; within a group p
  // microbatches run through one chunk, then the same p through the next (backwards take the
  // chunks in reverse). With v = 1 the k-th is simply microbatch k.
  Action nth(ActionKind kind, int32_t k) const {
    int32_t chunk = (k % (p_ * v_)) / p_;
    if (kind == ActionKind::backward) chunk = v_ - 1 - chunk;
    return Action{kind, (k / (p_ * v_)) * p_ + k % p_, chunk, -1};
  }
};

int32_t duration(ActionKind kind) {
  return kind == ActionKind::forward ? 1 : 2;
}

// Unit-time run of the compute orders (forward 1, backward 2, transfers free), giving each
// compute's start. Its only purpose is to place each send/recv where a natural execution reaches
// it; sweeping ranks round-robin gives the same times as an event queue because a compute's
// start depends only on its inputs and its rank's previous compute.
std::vector<std::vector<int32_t>> simulate(const ComputeOrder& order, int32_t p, int32_t v,
                                           int32_t m) {
  const int32_t last = p * v - 1;
  std::vector<int32_t> forward_end(size_t(p) * size_t(v) * size_t(m), -1);
  std::vector<int32_t> backward_end(forward_end.size(), -1);
  auto at = [m](int32_t stage, int32_t mb) { return size_t(stage) * size_t(m) + size_t(mb); };
  std::vector<std::vector<int32_t>> starts(static_cast<size_t>(p));
  std::vector<int32_t> free_at(static_cast<size_t>(p), 0);
  for (auto& s : starts) s.reserve(size_t(order.size()));
  size_t remaining = size_t(p) * size_t(order.size());
  while (remaining > 0) {
    bool progressed = false;
    for (int32_t r = 0; r < p; ++r) {
      auto& mine = starts[size_t(r)];
      while (int32_t(mine.size()) < order.size()) {
        const Action a = order.at(r, int32_t(mine.size()));
        const int32_t s = a.chunk * p + r;
        const bool forward = a.kind == ActionKind::forward;
        const int32_t own = forward_end[at(s, a.microbatch)];
        const int32_t input = forward    ? (s > 0 ? forward_end[at(s - 1, a.microbatch)] : 0)
                              : s < last ? backward_end[at(s + 1, a.microbatch)]
                                         : own;
        if (input < 0 || (!forward && own < 0)) break;
        const int32_t start = std::max(free_at[size_t(r)], input);
        free_at[size_t(r)] = start + duration(a.kind);
        (forward ? forward_end : backward_end)[at(s, a.microbatch)] = free_at[size_t(r)];
        mine.push_back(start);
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) throw std::logic_error("pipeline schedule: compute orders deadlock");
  }
  return starts;
}

// Rank r's list is the projection onto r of one global event sequence ordered by (time,
// send/recv pairs before compute starts, rank — a pair's rank being its producer's). Since every
// send immediately precedes its receive there, running the lists with rendezvous p2p replays that
// sequence and cannot deadlock. Rank r's own computes and sends are already in that order, and
// so are the receives coming from each neighbour, so a merge builds the projection directly.
class Projection {
 public:
  Projection(const ComputeOrder& order, const std::vector<std::vector<int32_t>>& starts,
             const PipelineSchedule& s)
      : order_(order), starts_(starts), s_(s) {}

  std::vector<Action> rank(int32_t r) const {
    const int32_t p = s_.pipeline_size, n = order_.size();
    std::vector<Incoming> incoming;
    for (int32_t q : {(r + p - 1) % p, (r + 1) % p}) {
      if (q == r || (!incoming.empty() && incoming[0].from == q)) continue;
      incoming.push_back({q, -1, kNone, {}});
      advance(incoming.back(), r);
    }
    std::vector<Action> out;
    out.reserve(size_t(3 * n + 2));
    int32_t i = 0;
    Action pending_send;  // the output of own compute i - 1, still to place
    int64_t pending_key = kNone;
    while (true) {
      int64_t best = pending_key != kNone ? pending_key
                     : i < n              ? key(starts_[size_t(r)][size_t(i)], true, r)
                                          : kNone;
      Incoming* take = nullptr;
      for (auto& in : incoming)
        if (in.key < best) best = in.key, take = &in;
      if (best == kNone) break;
      if (take != nullptr) {
        out.push_back(take->recv);
        advance(*take, r);
      } else if (pending_key != kNone) {
        out.push_back(pending_send);
        pending_key = kNone;
      } else {
        const Action a = order_.at(r, i);
        out.push_back(a);
        pending_send = send(r, a);
        if (pending_send.peer >= 0) pending_key = key(end(r, i, a), false, r);
        ++i;
      }
    }
    out.push_back({ActionKind::grad_sync, -1, 0, -1});
    out.push_back({ActionKind::optimizer_step, -1, 0, -1});
    return out;
  }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  const ComputeOrder& order_;
  const std::vector<std::vector<int32_t>>& starts_;
  const PipelineSchedule& s_;

  // The receives one neighbour's computes produce for this rank, walked in that neighbour's order.
  struct Incoming {
    int32_t from;  // the neighbour rank
    int32_t i;     // its compute whose output is received next
    int64_t key;   // of that receive, kNone when there are no more
    Action recv;
  };

  void advance(Incoming& in, int32_t r) const {
    while (++in.i < order_.size()) {
      const Action a = order_.at(in.from, in.i);
      if (consumer_rank(in.from, a) != r) continue;
      in.key = key(end(in.from, in.i, a), false, in.from);
      in.recv = recv(in.from, a);
      return;
    }
    in.key = kNone;
  }

  int64_t key(int64_t time, bool is_compute, int32_t rank) const {
    return (time * 2 + (is_compute ? 1 : 0)) * s_.pipeline_size + rank;
  }
  int64_t end(int32_t r, int32_t i, const Action& a) const {
    return starts_[size_t(r)][size_t(i)] + duration(a.kind);
  }
  // The virtual stage fed by compute `a` of rank r: the next one's activation, the previous
  // one's gradient.
  int32_t consumer_stage(int32_t r, const Action& a) const {
    const int32_t s = s_.virtual_stage(r, a.chunk);
    if (a.kind == ActionKind::forward) return s < s_.last_virtual_stage() ? s + 1 : -1;
    return s > 0 ? s - 1 : -1;
  }
  // The other rank compute `a` of rank r sends to, or -1 (none, or data staying on r).
  int32_t consumer_rank(int32_t r, const Action& a) const {
    const int32_t stage = consumer_stage(r, a);
    return stage < 0 || s_.rank_of_stage(stage) == r ? -1 : s_.rank_of_stage(stage);
  }
  // The send compute `a` of rank r needs; its peer is -1 when it needs none.
  Action send(int32_t r, const Action& a) const {
    const bool forward = a.kind == ActionKind::forward;
    return {forward ? ActionKind::send_activation : ActionKind::send_grad, a.microbatch, a.chunk,
            consumer_rank(r, a)};
  }
  Action recv(int32_t q, const Action& a) const {
    const bool forward = a.kind == ActionKind::forward;
    return {forward ? ActionKind::recv_activation : ActionKind::recv_grad, a.microbatch,
            s_.chunk_of_stage(consumer_stage(q, a)), q};
  }
};

}  // namespace

PipelineSchedule build_schedule(Schedule kind, int32_t pipeline_size, int32_t virtual_stages,
                                int32_t microbatches) {
  const int32_t p = pipeline_size, v = virtual_stages, m = microbatches;
  if (p < 1 || v < 1 || m < 1)
    throw InvalidInput("pipeline schedule needs positive sizes, got p={} v={} m={}", p, v, m);
  if (v > 1 && kind != Schedule::interleaved)
    throw InvalidInput("pipeline schedule {} takes no virtual stages, got v={}", to_string(kind),
                       v);
  if (kind == Schedule::interleaved && m % p != 0)
    throw InvalidInput(
        "interleaved schedule needs microbatches ({}) divisible by pipeline size ({})", m, p);
  // Keeps the unit-time simulation (at most 3·m·v per rank, times p ranks) in 32 bits.
  if (int64_t(p) * v * m * 3 > std::numeric_limits<int32_t>::max())
    throw InvalidInput("pipeline schedule too large: p={} v={} m={}", p, v, m);

  const ComputeOrder order(kind, p, v, m);
  const auto starts = simulate(order, p, v, m);
  PipelineSchedule schedule{kind, p, v, m, {}};
  const Projection projection(order, starts, schedule);
  schedule.ranks.reserve(size_t(p));
  for (int32_t r = 0; r < p; ++r) schedule.ranks.push_back(projection.rank(r));
  return schedule;
}

}  // namespace loom::core
