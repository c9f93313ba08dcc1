// check_schedule: verifies a schedule from its definition alone (it shares nothing with the
// generator, so a generator bug cannot hide behind the same bug here).
#include "core/error.hpp"
#include "core/schedule.hpp"

#include <fmt/format.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace loom::core {
namespace {

constexpr size_t kDataKinds = 6;  // forward … recv_grad: the kinds tied to a (microbatch, chunk)

std::string_view kind_name(ActionKind kind) {
  switch (kind) {
    case ActionKind::forward: return "forward";
    case ActionKind::backward: return "backward";
    case ActionKind::send_activation: return "send_activation";
    case ActionKind::recv_activation: return "recv_activation";
    case ActionKind::send_grad: return "send_grad";
    case ActionKind::recv_grad: return "recv_grad";
    case ActionKind::grad_sync: return "grad_sync";
    case ActionKind::optimizer_step: return "optimizer_step";
  }
  return "?";
}

std::string describe(const Action& a) {
  if (a.kind == ActionKind::grad_sync || a.kind == ActionKind::optimizer_step)
    return std::string(kind_name(a.kind));
  std::string text =
      fmt::format("{} of microbatch {} (chunk {})", kind_name(a.kind), a.microbatch, a.chunk);
  if (a.is_send()) text += fmt::format(" to rank {}", a.peer);
  if (a.is_recv()) text += fmt::format(" from rank {}", a.peer);
  return text;
}

class Checker {
 public:
  explicit Checker(const PipelineSchedule& s)
      : s_(s), p_(s.pipeline_size), v_(s.virtual_stages), m_(s.microbatches) {}

  void run() {
    if (p_ < 1 || v_ < 1 || m_ < 1)
      throw Error("schedule: sizes must be positive, got p={} v={} m={}", p_, v_, m_);
    if (s_.ranks.size() != size_t(p_))
      throw Error("schedule: {} rank lists for pipeline size {}", s_.ranks.size(), p_);
    for (int32_t r = 0; r < p_; ++r) index_rank(r);
    for (int32_t r = 0; r < p_; ++r) check_rank(r);
    for (int32_t r = 0; r < p_; ++r) check_matching(r);
    check_rendezvous();
  }

 private:
  const PipelineSchedule& s_;
  const int32_t p_, v_, m_;
  // position_[r][kind][chunk·m + microbatch]: index of that action in rank r's list, or -1.
  std::vector<std::array<std::vector<int32_t>, kDataKinds>> position_;

  const Action& action(int32_t r, int32_t i) const { return s_.ranks[size_t(r)][size_t(i)]; }
  int32_t& position(int32_t r, ActionKind kind, int32_t mb, int32_t chunk) {
    return position_[size_t(r)][size_t(kind)][size_t(chunk) * size_t(m_) + size_t(mb)];
  }

  [[noreturn]] void fail(int32_t r, int32_t i, const std::string& what) const {
    throw Error("schedule: rank {}: action {} ({}) {}", r, i, describe(action(r, i)), what);
  }

  void index_rank(int32_t r) {
    auto& kinds = position_.emplace_back();
    for (auto& positions : kinds) positions.assign(size_t(v_) * size_t(m_), -1);
    const auto& actions = s_.ranks[size_t(r)];
    const int32_t n = int32_t(actions.size());
    if (n < 2 || actions[size_t(n - 2)].kind != ActionKind::grad_sync ||
        actions[size_t(n - 1)].kind != ActionKind::optimizer_step)
      throw Error("schedule: rank {}: the list must end with grad_sync then optimizer_step", r);
    for (int32_t i = 0; i < n - 2; ++i) {
      const Action& a = actions[size_t(i)];
      if (a.kind == ActionKind::grad_sync || a.kind == ActionKind::optimizer_step)
        fail(r, i, "is repeated: grad_sync and optimizer_step come once each, last");
      if (size_t(a.kind) >= kDataKinds) fail(r, i, "has an unknown kind");
      if (a.microbatch < 0 || a.microbatch >= m_ || a.chunk < 0 || a.chunk >= v_)
        fail(r, i, fmt::format("is outside m={} v={}", m_, v_));
      if ((a.is_send() || a.is_recv()) && (a.peer < 0 || a.peer >= p_))
        fail(r, i, fmt::format("names a peer outside the {} pipeline ranks", p_));
      int32_t& at = position(r, a.kind, a.microbatch, a.chunk);
      if (at >= 0) fail(r, i, fmt::format("repeats action {}", at));
      at = i;
    }
  }

  // Local completeness and order for every (microbatch, chunk): which p2p actions belong
  // follows from where the neighbouring virtual stages live.
  void check_rank(int32_t r) {
    const int32_t last = s_.last_virtual_stage();
    for (int32_t c = 0; c < v_; ++c) {
      const int32_t s = s_.virtual_stage(r, c);
      const int32_t prev_rank = s > 0 ? s_.rank_of_stage(s - 1) : -1;
      const int32_t next_rank = s < last ? s_.rank_of_stage(s + 1) : -1;
      const bool from_prev = prev_rank >= 0 && prev_rank != r;
      const bool to_next = next_rank >= 0 && next_rank != r;
      for (int32_t mb = 0; mb < m_; ++mb) {
        const int32_t f = position(r, ActionKind::forward, mb, c);
        const int32_t b = position(r, ActionKind::backward, mb, c);
        auto missing = [&](ActionKind kind) {
          throw Error("schedule: rank {}: {} of microbatch {} (chunk {}) is missing", r,
                      kind_name(kind), mb, c);
        };
        if (f < 0) missing(ActionKind::forward);
        if (b < 0) missing(ActionKind::backward);
        if (b < f) fail(r, b, fmt::format("comes before its forward (action {})", f));
        check_p2p(r, ActionKind::recv_activation, mb, c, from_prev, prev_rank, f, true);
        check_p2p(r, ActionKind::send_activation, mb, c, to_next, next_rank, f, false);
        check_p2p(r, ActionKind::recv_grad, mb, c, to_next, next_rank, b, true);
        check_p2p(r, ActionKind::send_grad, mb, c, from_prev, prev_rank, b, false);
      }
    }
  }

  // `compute` is the position of the forward/backward that consumes (recv) or produces (send)
  // the data.
  void check_p2p(int32_t r, ActionKind kind, int32_t mb, int32_t c, bool belongs, int32_t peer,
                 int32_t compute, bool before) {
    const int32_t i = position(r, kind, mb, c);
    if (i < 0) {
      if (!belongs) return;
      throw Error("schedule: rank {}: {} of microbatch {} (chunk {}) with rank {} is missing", r,
                  kind_name(kind), mb, c, peer);
    }
    if (!belongs)
      fail(r, i, "does not belong: that neighbouring virtual stage is absent or on this rank");
    if (action(r, i).peer != peer)
      fail(r, i, fmt::format("names the wrong peer: that virtual stage is on rank {}", peer));
    const Action& user = action(r, compute);
    if (before && i > compute)
      fail(r, i, fmt::format("comes after action {} ({}) that needs it", compute, describe(user)));
    if (!before && i < compute)
      fail(r, i,
           fmt::format("comes before action {} ({}) that produces it", compute, describe(user)));
  }

  // The action that must meet `a` (a send or receive on rank r): its rank and its exact value.
  std::pair<int32_t, Action> counterpart(int32_t r, const Action& a) const {
    const int32_t s = s_.virtual_stage(r, a.chunk);
    const bool toward_next =
        a.kind == ActionKind::send_activation || a.kind == ActionKind::recv_grad;
    const int32_t t = toward_next ? s + 1 : s - 1;
    ActionKind kind = ActionKind::recv_activation;
    switch (a.kind) {
      case ActionKind::send_activation: kind = ActionKind::recv_activation; break;
      case ActionKind::recv_activation: kind = ActionKind::send_activation; break;
      case ActionKind::send_grad: kind = ActionKind::recv_grad; break;
      default: kind = ActionKind::send_grad; break;
    }
    return {s_.rank_of_stage(t), Action{kind, a.microbatch, s_.chunk_of_stage(t), r}};
  }

  void check_matching(int32_t r) {
    const auto& actions = s_.ranks[size_t(r)];
    for (int32_t i = 0; i < int32_t(actions.size()); ++i) {
      const Action& a = actions[size_t(i)];
      if (!a.is_send() && !a.is_recv()) continue;
      const auto [q, b] = counterpart(r, a);
      const int32_t j = position(q, b.kind, b.microbatch, b.chunk);
      if (j < 0 || action(q, j) != b)
        fail(r, i, fmt::format("has no matching {} on rank {}", describe(b), q));
    }
  }

  // Each rank steps through its list; compute always completes, a send and its receive complete
  // together when both ranks stand at them.
  void check_rendezvous() const {
    std::vector<size_t> pc(size_t(p_), 0);
    size_t left = 0;
    for (const auto& actions : s_.ranks) left += actions.size();
    while (left > 0) {
      bool progressed = false;
      for (int32_t r = 0; r < p_; ++r) {
        const auto& actions = s_.ranks[size_t(r)];
        while (pc[size_t(r)] < actions.size()) {
          const Action& a = actions[pc[size_t(r)]];
          if (a.is_send() || a.is_recv()) {
            const auto [q, b] = counterpart(r, a);
            const auto& theirs = s_.ranks[size_t(q)];
            if (pc[size_t(q)] >= theirs.size() || theirs[pc[size_t(q)]] != b) break;
            ++pc[size_t(q)];
            --left;
          }
          ++pc[size_t(r)];
          --left;
          progressed = true;
        }
      }
      if (!progressed) deadlock(pc);
    }
  }

  [[noreturn]] void deadlock(const std::vector<size_t>& pc) const {
    constexpr int kShown = 4;  // a stuck 64-rank pipeline would otherwise print every rank
    std::string waits;
    int waiting = 0;
    for (int32_t r = 0; r < p_; ++r) {
      const auto& actions = s_.ranks[size_t(r)];
      if (pc[size_t(r)] >= actions.size() || ++waiting > kShown) continue;
      const Action& a = actions[pc[size_t(r)]];
      const int32_t q = a.peer;
      const auto& theirs = s_.ranks[size_t(q)];
      const std::string there =
          pc[size_t(q)] < theirs.size()
              ? fmt::format("is at action {} ({})", pc[size_t(q)], describe(theirs[pc[size_t(q)]]))
              : "has finished";
      waits += fmt::format("{}rank {} waits at action {} ({}) while rank {} {}",
                           waits.empty() ? "" : "; ", r, pc[size_t(r)], describe(a), q, there);
    }
    if (waiting > kShown) waits += fmt::format("; {} more ranks waiting", waiting - kShown);
    throw Error("schedule: deadlock with rendezvous send/recv: {}", waits);
  }
};

}  // namespace

void check_schedule(const PipelineSchedule& schedule) {
  Checker(schedule).run();
}

}  // namespace loom::core
