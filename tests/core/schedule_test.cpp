#include "core/schedule.hpp"
#include "core/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace loom::core {
namespace {

std::string compute_text(const PipelineSchedule& s, int32_t rank) {
  return to_text(s.ranks[size_t(rank)], false, s.virtual_stages > 1);
}

// The message check_schedule throws, or "(valid)".
std::string check_message(const PipelineSchedule& s) {
  try {
    check_schedule(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "(valid)";
}

void expect_mentions(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& part : parts)
    EXPECT_NE(message.find(part), std::string::npos)
        << "missing \"" << part << "\" in: " << message;
}

size_t find_action(const std::vector<Action>& actions, ActionKind kind, int32_t mb,
                   int32_t chunk = 0) {
  for (size_t i = 0; i < actions.size(); ++i)
    if (actions[i].kind == kind && actions[i].microbatch == mb && actions[i].chunk == chunk)
      return i;
  ADD_FAILURE() << "action not found";
  return 0;
}

TEST(Schedule, OneFOneBGoldenComputeOrder) {
  const auto s = build_schedule(Schedule::one_f_one_b, 4, 1, 8);
  EXPECT_EQ(compute_text(s, 0), "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(compute_text(s, 1), "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7");
  EXPECT_EQ(compute_text(s, 2), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7");
  EXPECT_EQ(compute_text(s, 3), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
}

TEST(Schedule, OneFOneBWithFewerMicrobatchesThanStages) {
  const auto s = build_schedule(Schedule::one_f_one_b, 4, 1, 2);
  EXPECT_EQ(compute_text(s, 0), "F0 F1 B0 B1");  // warm-up capped at m
  EXPECT_EQ(compute_text(s, 2), "F0 F1 B0 B1");
  EXPECT_EQ(compute_text(s, 3), "F0 B0 F1 B1");
}

TEST(Schedule, GpipeGoldenComputeOrder) {
  const auto s = build_schedule(Schedule::gpipe, 2, 1, 3);
  EXPECT_EQ(to_text(s), "0: F0 F1 F2 B0 B1 B2\n1: F0 F1 F2 B0 B1 B2");
}

// Worked by hand from Megatron's rules: forwards k = 0…7 run (mb, chunk) 0.0 1.0 0.1 1.1 2.0 3.0
// 2.1 3.1, backwards 0.1 1.1 0.0 1.0 2.1 3.1 2.0 3.0; warm-up is 4 on rank 0 and 2 on rank 1.
TEST(Schedule, InterleavedGoldenComputeOrder) {
  const auto s = build_schedule(Schedule::interleaved, 2, 2, 4);
  EXPECT_EQ(compute_text(s, 0),
            "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
  EXPECT_EQ(compute_text(s, 1),
            "F0.0 F1.0 F0.1 B0.1 F1.1 B1.1 F2.0 B0.0 F3.0 B1.0 F2.1 B2.1 F3.1 B3.1 B2.0 B3.0");
}

TEST(Schedule, InterleavedWithOneMicrobatchPerStageIsAllWarmUp) {
  const auto s = build_schedule(Schedule::interleaved, 2, 2, 2);
  EXPECT_EQ(to_text(s),
            "0: F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0\n"
            "1: F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0");
}

// Unit-time placement: rank 1's F0 ends at 2, its B0 at 4 (when rank 0 finished F1 at 2), so
// rank 0 receives G0 after sending A1, and rank 1 receives A1 before its B0.
TEST(Schedule, OneFOneBGoldenWithCommunication) {
  const auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  EXPECT_EQ(to_text(s, true),
            "0: F0 sA0 F1 sA1 rG0 B0 rG1 B1 GS OS\n"
            "1: rA0 F0 rA1 B0 sG0 F1 B1 sG1 GS OS");
  EXPECT_EQ(s.ranks[0][1], (Action{ActionKind::send_activation, 0, 0, 1}));
  EXPECT_EQ(s.ranks[1][0], (Action{ActionKind::recv_activation, 0, 0, 0}));
  EXPECT_EQ(s.ranks[0].back(), (Action{ActionKind::optimizer_step, -1, 0, -1}));
}

TEST(Schedule, TextShowsChunksOnCommunication) {
  const auto s = build_schedule(Schedule::interleaved, 2, 2, 2);
  const std::string rank1 = to_text(s.ranks[1], true, true);
  EXPECT_EQ(rank1.substr(0, 10), "rA0.0 F0.0");
  EXPECT_EQ(to_text(s.ranks[1], true, false).substr(0, 6), "rA0 F0");
  EXPECT_EQ(to_text(std::vector<Action>{}), "");
}

TEST(Schedule, EveryValidSizeChecks) {
  for (int32_t p = 1; p <= 8; ++p) {
    for (int32_t m = 1; m <= 2 * p + 3; ++m) {
      for (Schedule kind : {Schedule::gpipe, Schedule::one_f_one_b}) {
        const auto s = build_schedule(kind, p, 1, m);
        EXPECT_EQ(check_message(s), "(valid)") << to_string(kind) << " p=" << p << " m=" << m;
      }
    }
    for (int32_t v = 1; v <= 4; ++v) {
      for (int32_t m : {p, 2 * p, 3 * p, 5 * p}) {
        const auto s = build_schedule(Schedule::interleaved, p, v, m);
        EXPECT_EQ(check_message(s), "(valid)") << "interleaved p=" << p << " v=" << v << " m=" << m;
      }
    }
  }
}

TEST(Schedule, LargeScheduleChecks) {
  const auto s = build_schedule(Schedule::interleaved, 64, 4, 1024);
  ASSERT_EQ(s.ranks.size(), 64u);
  EXPECT_EQ(check_message(s), "(valid)");
}

TEST(Schedule, RejectsBadSizes) {
  EXPECT_THROW(build_schedule(Schedule::interleaved, 2, 2, 3), InvalidInput);
  EXPECT_THROW(build_schedule(Schedule::one_f_one_b, 2, 2, 4), InvalidInput);
  EXPECT_THROW(build_schedule(Schedule::gpipe, 2, 2, 4), InvalidInput);
  EXPECT_THROW(build_schedule(Schedule::one_f_one_b, 0, 1, 4), InvalidInput);
  EXPECT_THROW(build_schedule(Schedule::one_f_one_b, 2, 0, 4), InvalidInput);
  EXPECT_THROW(build_schedule(Schedule::one_f_one_b, 2, 1, 0), InvalidInput);
}

TEST(ScheduleCheck, RejectsDroppedRecv) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  auto& r1 = s.ranks[1];
  r1.erase(r1.begin() + std::ptrdiff_t(find_action(r1, ActionKind::recv_activation, 1)));
  expect_mentions(check_message(s), {"rank 1", "recv_activation", "microbatch 1", "missing"});
}

TEST(ScheduleCheck, RejectsBackwardBeforeForward) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  auto& r1 = s.ranks[1];
  std::swap(r1[find_action(r1, ActionKind::forward, 0)],
            r1[find_action(r1, ActionKind::backward, 0)]);
  expect_mentions(check_message(s), {"rank 1", "backward of microbatch 0", "before its forward"});
}

TEST(ScheduleCheck, RejectsRecvAfterItsConsumer) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  auto& r0 = s.ranks[0];
  std::swap(r0[find_action(r0, ActionKind::recv_grad, 1)],
            r0[find_action(r0, ActionKind::backward, 1)]);
  expect_mentions(check_message(s), {"rank 0", "recv_grad of microbatch 1", "needs it"});
}

TEST(ScheduleCheck, RejectsSendBeforeItsProducer) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  auto& r0 = s.ranks[0];
  std::swap(r0[find_action(r0, ActionKind::forward, 0)],
            r0[find_action(r0, ActionKind::send_activation, 0)]);
  expect_mentions(check_message(s), {"rank 0", "send_activation of microbatch 0", "produces it"});
}

// Rank 1 runs B0 before receiving A1 and sends G0 while rank 0 sends A1: both block in a send.
TEST(ScheduleCheck, RejectsTwoBlockingSends) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  s.ranks[1] = {{ActionKind::recv_activation, 0, 0, 0}, {ActionKind::forward, 0, 0, -1},
                {ActionKind::backward, 0, 0, -1},       {ActionKind::send_grad, 0, 0, 0},
                {ActionKind::recv_activation, 1, 0, 0}, {ActionKind::forward, 1, 0, -1},
                {ActionKind::backward, 1, 0, -1},       {ActionKind::send_grad, 1, 0, 0},
                {ActionKind::grad_sync, -1, 0, -1},     {ActionKind::optimizer_step, -1, 0, -1}};
  const std::string message = check_message(s);
  expect_mentions(message, {"deadlock", "rank 0 waits", "send_activation of microbatch 1",
                            "rank 1 waits", "send_grad of microbatch 0"});
}

TEST(ScheduleCheck, RejectsWrongPeer) {
  auto s = build_schedule(Schedule::one_f_one_b, 3, 1, 3);
  s.ranks[0][find_action(s.ranks[0], ActionKind::send_activation, 0)].peer = 2;
  expect_mentions(check_message(s), {"rank 0", "send_activation of microbatch 0", "wrong peer"});
}

TEST(ScheduleCheck, RejectsCommunicationAtTheEndsOfThePipeline) {
  auto s = build_schedule(Schedule::one_f_one_b, 2, 1, 2);
  s.ranks[0].insert(s.ranks[0].begin(), Action{ActionKind::recv_activation, 0, 0, 1});
  expect_mentions(check_message(s), {"rank 0", "recv_activation of microbatch 0", "not belong"});
}

TEST(ScheduleCheck, RejectsMisplacedOptimizerStepAndRepeats) {
  auto s = build_schedule(Schedule::gpipe, 2, 1, 2);
  std::swap(s.ranks[1][s.ranks[1].size() - 1], s.ranks[1][s.ranks[1].size() - 2]);
  expect_mentions(check_message(s), {"rank 1", "grad_sync then optimizer_step"});
  s = build_schedule(Schedule::gpipe, 2, 1, 2);
  s.ranks[0].insert(s.ranks[0].begin(), s.ranks[0][0]);
  expect_mentions(check_message(s), {"rank 0", "forward of microbatch 0", "repeats"});
}

// Megatron's 1F1B: warm-up forwards, then the first steady forward, then the first backward.
TEST(ScheduleProperty, OneFOneBForwardsBeforeFirstBackward) {
  for (int32_t p = 1; p <= 8; ++p) {
    for (int32_t m = 1; m <= 12; ++m) {
      const auto s = build_schedule(Schedule::one_f_one_b, p, 1, m);
      for (int32_t r = 0; r < p; ++r) {
        const auto& actions = s.ranks[size_t(r)];
        const auto first_b = std::find_if(actions.begin(), actions.end(), [](const Action& a) {
          return a.kind == ActionKind::backward;
        });
        const auto forwards = std::count_if(actions.begin(), first_b, [](const Action& a) {
          return a.kind == ActionKind::forward;
        });
        // With m ≤ p − r − 1 every forward is warm-up and no steady forward exists.
        EXPECT_EQ(forwards, std::min(std::min(p - r - 1, m) + 1, m))
            << "p=" << p << " m=" << m << " r=" << r;
      }
    }
  }
}

// The most (microbatch, chunk) forwards in flight on a rank is its warm-up plus the first
// steady-state forward, capped at m·v.
TEST(ScheduleProperty, InterleavedForwardsInFlight) {
  for (int32_t p = 2; p <= 6; ++p) {
    for (int32_t v = 1; v <= 4; ++v) {
      for (int32_t m : {p, 2 * p, 4 * p}) {
        const auto s = build_schedule(Schedule::interleaved, p, v, m);
        const int32_t total = m * v;
        for (int32_t r = 0; r < p; ++r) {
          int32_t in_flight = 0, most = 0;
          for (const Action& a : s.ranks[size_t(r)]) {
            if (a.kind == ActionKind::forward) most = std::max(most, ++in_flight);
            if (a.kind == ActionKind::backward) --in_flight;
          }
          const int32_t warmup = m == p ? total : std::min((p - r - 1) * 2 + (v - 1) * p, total);
          EXPECT_EQ(most, std::min(warmup + 1, total))
              << "p=" << p << " v=" << v << " m=" << m << " r=" << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace loom::core
