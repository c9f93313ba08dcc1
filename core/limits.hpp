#pragma once
// The largest value Loom accepts for each field of a plan, and the sizes beyond which it refuses
// to simulate or search, in one place. Each maximum is far beyond any published model or
// cluster (Llama 3 405B: 126 layers, hidden 16384, 128 heads, ffn 53248, vocabulary 128256,
// sequence 131072; the largest clusters: about 2^17 devices), and together they keep every
// integer count Loom derives inside int64: the static_asserts below check the products that are
// kept as integers. Byte counts that grow past them (activations of absurd sequences, the
// optimizer state of absurd models) are computed in floating point and refused, with the fields
// that drive them named, once they pass kMaxCountedBytes (core/checked_arithmetic.hpp).

#include <cstdint>

namespace loom::core::limits {

// model
inline constexpr int64_t kMaxLayers = int64_t(1) << 14;          // num-layers
inline constexpr int64_t kMaxHidden = int64_t(1) << 20;          // hidden-size
inline constexpr int64_t kMaxHeads = int64_t(1) << 16;           // num-attention-heads, num-query-groups
inline constexpr int64_t kMaxFfnHidden = int64_t(1) << 24;       // ffn-hidden-size
inline constexpr int64_t kMaxVocab = int64_t(1) << 24;           // vocab-size, padded-vocab-size
// make-vocab-size-divisible-by (Megatron's default 128; 64 … 1024 in published configurations).
// With tp at its maximum, a derived padded vocabulary stays below kMaxPaddedVocab.
inline constexpr int64_t kMaxVocabDivisor = int64_t(1) << 16;
inline constexpr int64_t kMaxSeqLength = int64_t(1) << 24;       // seq-length
inline constexpr int64_t kMaxRotaryBase = int64_t(1) << 30;      // rotary-base (an f32 holds it exactly)

// training
inline constexpr int64_t kMaxGlobalBatch = int64_t(1) << 24;     // global-batch-size (sequences)
inline constexpr int64_t kMaxTrainIters = int64_t(1) << 24;      // train-iters (the longest runs: ~2^21)
// Floating-point settings: beyond these a value is a typo, not a choice (AdamW moves a weight by
// about lr per step; Megatron's defaults are lr 1e-4 … 6e-4, weight decay 0.1, clip 1, eps 1e-8).
inline constexpr double kMaxLearningRate = 10.0;                 // lr (min-lr is at most lr)
inline constexpr double kMaxWeightDecay = 10.0;                  // weight-decay
inline constexpr double kMaxClipGrad = 1.0e6;                    // clip-grad (0 turns it off)
inline constexpr double kMaxAdamEps = 1.0;                       // adam-eps
// cluster: 2^20 devices in all (nodes × devices-per-node); every per-rank table (the rank
// layout `loom show` prints, the executor's process groups) stays a few megabytes.
inline constexpr int64_t kMaxNodes = int64_t(1) << 20;           // nodes
inline constexpr int64_t kMaxDevicesPerNode = 1024;              // devices-per-node
inline constexpr int64_t kMaxDevices = int64_t(1) << 20;         // nodes × devices-per-node, --devices
inline constexpr int64_t kMaxDeviceGroups = 64;                  // cluster.groups of a mixed cluster
inline constexpr double kMaxPricePerDeviceHour = 1.0e9;          // price-per-device-hour, any currency

// parallel: tp must divide the heads and pp the layers, so these follow from the model's maxima;
// they are checked first so that an absurd size is named as such.
inline constexpr int64_t kMaxTensorParallel = kMaxHeads;         // tensor-model-parallel-size
inline constexpr int64_t kMaxPipelineParallel = kMaxLayers;      // pipeline-model-parallel-size
// The vocabulary padded for a tensor-parallel size: vocab-size rounded up to a multiple of
// make-vocab-size-divisible-by × tp, so below their maxima's sum.
inline constexpr int64_t kMaxPaddedVocab = kMaxVocab + kMaxVocabDivisor * kMaxTensorParallel;
inline constexpr int64_t kMaxMicroBatch = int64_t(1) << 24;      // micro-batch-size
// ddp-bucket-size: more parameters than any model Loom counts (2^50 ≈ 10^15).
inline constexpr int64_t kMaxBucketParameters = int64_t(1) << 50;

// Bytes one part of one device's memory (weights, gradients, optimizer state, activations) may
// come to: 2^60 bytes (1 EiB), 10^7 times an 80 GB device. Five such parts still sum inside
// int64. A plan that needs more is refused, not ranked: its counts cannot be kept.
inline constexpr int64_t kMaxCountedBytes = int64_t(1) << 60;

// The event simulation holds the schedule (core/schedule: about 6 actions of 16 bytes per
// microbatch, chunk and pipeline rank) and a message slot per (rank, microbatch, chunk, direction):
// about 150 bytes per pipeline-rank × virtual-stage × microbatch triple. 2^20 triples bound it to
// about 150 MB and a second or two; real plans stay below 2^16 (Megatron's 1T run: 64 × 512).
inline constexpr int64_t kMaxSimulatedStageMicrobatches = int64_t(1) << 20;
// Events a recorded timeline (a `--trace`, the desktop app's Gantt chart) may hold: about 100 MB
// in memory and as many on disk; Perfetto opens a trace of that size in seconds.
inline constexpr int64_t kMaxTimelineEvents = int64_t(1) << 20;
// Valid plans a search keeps and scores (about 150 bytes each with their scores): 2^21 bound it
// to about 300 MB and a few seconds. A search beyond it is refused with what to narrow.
inline constexpr int64_t kMaxSearchCandidates = int64_t(1) << 21;

// Integer products Loom keeps in int64 (the rest are doubles with a range check).
inline constexpr int64_t kInt64Headroom = int64_t(1) << 62;
static_assert(kMaxMicroBatch * kMaxSeqLength < kInt64Headroom, "tokens of a microbatch");
static_assert(kMaxGlobalBatch * kMaxSeqLength < kInt64Headroom, "tokens of a step");
static_assert(kMaxHidden * (kMaxHidden + 2 * kMaxHidden) < kInt64Headroom, "one layer's QKV weights");
static_assert(kMaxLayers * (4 * kMaxHidden * kMaxHidden + 3 * kMaxHidden * kMaxFfnHidden + 8 * kMaxFfnHidden) <
                  kInt64Headroom / 2,
              "parameters of every layer");
static_assert(kMaxPaddedVocab * kMaxHidden < kInt64Headroom / 8, "embedding parameters");
static_assert(kMaxSeqLength * kMaxHidden < kInt64Headroom / 8, "learned position parameters");
static_assert(kMaxNodes * kMaxDevicesPerNode < kInt64Headroom, "devices");
static_assert(kMaxMicroBatch * kMaxDevices < kInt64Headroom, "sequences per microbatch round");
static_assert(kMaxSimulatedStageMicrobatches * 8 < (int64_t(1) << 31), "schedule indices stay int32");

}  // namespace loom::core::limits
