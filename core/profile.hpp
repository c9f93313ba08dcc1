#pragma once
// A profile describes one kind of device and its links, and says where its numbers came from
// (DESIGN.md §5): "measured" by `loom profile` on that hardware, or "datasheet" figures.
//
// It holds three kinds of knowledge, in the order the simulator prefers them:
//  1. measured tables: GEMM time by (m, n, k, dtype), other kernels by bytes, collectives by
//     (collective, level, ranks, bytes);
//  2. datasheet peaks: FLOP/s per dtype, memory bandwidth, link bandwidth and latency;
//  3. efficiency assumptions that turn peaks into times where no table covers an operation,
//     each written in the file with its justification.

#include "core/cluster_spec.hpp"
#include "core/enums.hpp"
#include "core/json_reader.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::core {

inline constexpr std::string_view kProfileFormat = "loom-profile";
inline constexpr int kProfileVersion = 1;

// The range in which every number of a profile must lie to be read: profile_from_json refuses
// any other value, naming the field, the value and the range. The ranges are wide (every
// shipped profile and every profile `loom profile` measures lies far inside) but exclude the
// physically absurd, which would otherwise reach the simulator: a bandwidth of 1e-300 bytes/s
// predicts a step time of inf s. NaN and infinity are outside every range.
struct PlausibleRange {
  double min = 0, max = 0;
  std::string_view text;  // the range in the message: "1e6 to 1e15 bytes/s (1 MB/s to 1 PB/s)"
};
namespace plausible {
inline constexpr PlausibleRange kFlopsPerS{1e6, 1e18, "1e6 to 1e18 FLOP/s"};  // a microcontroller to 1000 H100s
inline constexpr PlausibleRange kBandwidth{1e6, 1e15, "1e6 to 1e15 bytes/s (1 MB/s to 1 PB/s)"};
inline constexpr PlausibleRange kMemoryBytes{double(int64_t(1) << 20), double(int64_t(1) << 50), "1 MiB to 1 PiB"};
inline constexpr PlausibleRange kHostCores{1, 1 << 20, "1 to 1048576 cores"};
inline constexpr PlausibleRange kThreadsPerRank{1, 4096, "1 to 4096 threads"};
inline constexpr PlausibleRange kLatency{0, 1, "0 to 1 s"};  // per message step; 0: none
inline constexpr PlausibleRange kEagerLimitBytes{0, double(int64_t(1) << 40), "0 to 1 TiB"};
inline constexpr PlausibleRange kHalfSaturationFlops{0, 1e15, "0 to 1e15 FLOP"};
inline constexpr PlausibleRange kKernelLaunch{0, 1, "0 to 1 s"};
// Measured tables: a time between a nanosecond (below any timer's use) and 11 days.
inline constexpr PlausibleRange kSampleTime{1e-9, 1e6, "1e-9 to 1e6 s"};
inline constexpr PlausibleRange kDimension{1, 1 << 24, "1 to 16777216"};  // GEMM m, n, k; attention sizes
inline constexpr PlausibleRange kSampleBytes{1, double(int64_t(1) << 50), "1 byte to 1 PiB"};
inline constexpr PlausibleRange kRanks{1, 1 << 20, "1 to 1048576 ranks"};
inline constexpr PlausibleRange kSpread{0, 1e6, "0 to 1e6"};  // relative spread of a sample's repeats
// How many times slower the same kernels run with a node's ranks all busy than with one alone:
// below 0.5 or above 16 the probe measured something else than sharing.
inline constexpr PlausibleRange kLoadSlowdown{0.5, 16, "0.5 to 16"};
inline constexpr PlausibleRange kReserveBytes{0, double(int64_t(1) << 50), "0 to 1 PiB"};
// A fitted multiplier on measured-table times: beyond 4× either way the table is wrong, not off.
inline constexpr PlausibleRange kTableTimeScale{0.25, 4, "0.25 to 4"};
}  // namespace plausible

// The load under which a CPU profile was measured (`loom profile` records it): how many of the
// node's ranks computed while its tables were timed, and how much slower a probe ran with
// `probe_busy_ranks_per_node` ranks computing at once (each with the profile's threads, all
// within the cores) than with one alone — the ranks' shared memory bandwidth and caches, and
// vCPUs that are hyperthreads of one core. The cost model carries the tables to a plan's own
// number of busy ranks per node with it (sim::CostModel).
struct MeasuredLoad {
  int64_t tables_busy_ranks_per_node = 1;
  int64_t probe_busy_ranks_per_node = 2;
  double slowdown = 1.0;
  // How many times slower than alone a rank computes with `busy_ranks` ranks computing on its
  // node: linear in the ranks between 1 (alone) and the probe's load, the probe's slowdown beyond.
  double contention(int64_t busy_ranks) const;
};

struct DeviceSpec {
  std::string name;  // "NVIDIA A100-SXM4-80GB"
  int64_t memory_bytes = 0;
  std::map<DType, double> peak_flops_per_s;  // dense, per dtype
  double memory_bandwidth_bytes_per_s = 0;
  // CPU devices: the ranks of a node share its cores. Ranks × threads_per_rank beyond
  // host_cores slow every rank's compute in proportion (0: devices do not share, as GPUs).
  int64_t host_cores = 0;
  int64_t threads_per_rank = 1;
  // A device that computes in one type whatever the plan asks (the CPU executor: fp32). Plans
  // are simulated in that type: its tables, its element sizes, its memory.
  std::optional<DType> compute_dtype;
  // CPU profiles measured by `loom profile`: the load its tables were measured under. Absent
  // (older and datasheet profiles, GPUs): tables apply to every plan as measured.
  std::optional<MeasuredLoad> measured_load;
  // What the runtime holds on each device beside the plan's tensors (CUDA context, library
  // workspaces, allocator slack), counted in every stage's memory. Absent: 1 GiB.
  std::optional<int64_t> runtime_reserve_bytes;
  static constexpr int64_t kDefaultRuntimeReserveBytes = int64_t(1) << 30;
  int64_t runtime_reserve_or_default() const { return runtime_reserve_bytes.value_or(kDefaultRuntimeReserveBytes); }
};

// One level of the interconnect: "intra-node" (NVLink, shared memory) or "inter-node" (network).
struct LinkSpec {
  std::string level;
  double latency_s = 0;              // per message step of a collective algorithm
  double bandwidth_bytes_per_s = 0;  // per device, one direction
  // Fraction of `bandwidth_bytes_per_s` that collectives reach as bus bandwidth (nccl-tests'
  // busbw), used only where no measured collective table applies.
  double bus_bandwidth_fraction = 1.0;
  std::string justification;
  // Point-to-point messages up to this size are sent eagerly (buffered: the sender goes on);
  // larger ones wait until the receiver has posted its receive (rendezvous), as Open MPI's
  // shared-memory transport does above 4 KiB. Absent: every message is eager.
  std::optional<int64_t> eager_limit_bytes;
};

// How peaks become times when no table covers an operation.
struct EfficiencyModel {
  // GEMM throughput = peak · gemm_max_fraction · F / (F + gemm_half_saturation_flops), F being
  // the GEMM's FLOPs: small GEMMs cannot fill the device, large ones approach a ceiling.
  double gemm_max_fraction = 1.0;
  double gemm_half_saturation_flops = 0.0;
  double memory_bandwidth_fraction = 1.0;  // of memory_bandwidth_bytes_per_s, for memory-bound kernels
  double kernel_launch_s = 0.0;            // added to every kernel
  // A fused flash-attention kernel (attention-backend=flash) without a measured table: the
  // fraction of peak FLOP/s its forward and its backward reach on the FLOPs it executes
  // (ops.hpp: causal tiles only, the backward recomputing the scores). Absent in a profile:
  // gemm_max_fraction for both.
  std::optional<double> flash_forward_fraction;
  std::optional<double> flash_backward_fraction;
  std::string justification;
};

// Communication that runs beside compute (Megatron-Core's overlaps): what it hides and what it
// costs the compute it runs beside. Absent in a profile: nothing is hidden by tp-comm-overlap
// and overlapped transfers do not slow compute.
struct OverlapModel {
  // Compute that runs while a collective of the same device is on its links is this many times
  // slower (the collective's kernels take SMs and memory bandwidth): 1 = no contention.
  double compute_slowdown = 1.0;
  // tp-comm-overlap: the fraction of each tensor-parallel all-gather / reduce-scatter that runs
  // hidden behind the GEMM it feeds or drains; the rest stays exposed.
  double tp_comm_hidden_fraction = 0.0;
  std::string justification;
};

// Operand layouts of C[m×n] = op(A)·op(B): "nn" (forward), "nt" (data gradient, times the
// transposed weight), "tn" (weight gradient, accumulated into the gradient).
enum class GemmLayout : uint8_t { nn, nt, tn };
std::string_view to_string(GemmLayout layout);

struct GemmSample {
  int64_t m = 0, n = 0, k = 0;
  DType dtype = DType::bf16;
  double time_s = 0;
  GemmLayout layout = GemmLayout::nn;
};

// Causal self-attention (scores, masked softmax, weighted values) of `batch` = micro-batch ×
// heads independent heads of seq × head_dim, forward or backward, as one measured unit: a
// fused kernel on GPUs, a per-head loop of panel GEMMs on the CPU.
struct AttentionSample {
  int64_t batch = 0, seq = 0, head_dim = 0;
  DType dtype = DType::bf16;
  bool backward = false;
  double time_s = 0;
  AttentionBackend backend = AttentionBackend::unfused;  // "backend"; absent: unfused
};

// A memory-bound kernel measured at one size; names and byte counts in core/kernel_bytes.hpp.
struct KernelSample {
  std::string kernel;
  int64_t bytes = 0;
  double time_s = 0;
};

// "all_reduce", "all_gather", "reduce_scatter", "broadcast", "send_recv"; bytes as nccl-tests
// counts them (the whole array for all-gather and reduce-scatter).
struct CollectiveSample {
  std::string collective;
  std::string level;
  int64_t ranks = 0;
  int64_t bytes = 0;
  double time_s = 0;
};

struct ProfileTables {
  std::vector<GemmSample> gemm;
  std::vector<AttentionSample> attention;
  std::vector<KernelSample> kernels;
  std::vector<CollectiveSample> collectives;
  bool empty() const { return gemm.empty() && attention.empty() && kernels.empty() && collectives.empty(); }
};

// Multipliers on measured-table times, fitted by `loom calibrate` to measured runs (1: the table
// as measured). They move a table-driven profile, which the efficiency assumptions cannot.
struct TableTimeScales {
  double gemm = 1.0;
  double attention = 1.0;
  double kernels = 1.0;
  std::map<std::string, double> collectives_by_level;  // "intra-node", "inter-node"; absent: 1
  double collectives(std::string_view level) const;
};

// One free parameter of a calibration, as fitted.
struct CalibratedParameter {
  std::string name;
  std::string unit;
  double before = 0;
  double after = 0;
  std::optional<double> uncertainty;  // 1σ; absent when the fit left no residual to estimate it
  bool determined = false;
  std::string reason;  // why not determined
};

struct CalibrationRun {
  int64_t run_id = 0;
  std::string plan;    // the plan's name
  std::string source;  // "loom", "megatron", "llmc"
};

// How `loom calibrate` made a profile ("provenance": "calibrated") from a base profile, whose
// tables it keeps untouched.
struct Calibration {
  std::string base_profile;
  std::vector<CalibrationRun> fitted_runs;
  std::string store;
  std::string date;
  std::vector<CalibratedParameter> parameters;
  TableTimeScales table_time_scales;
};

struct Profile {
  std::string name;
  std::string provenance;  // "measured", "datasheet" or "calibrated"
  std::string description;
  std::string source;  // datasheet reference, or host/date/library versions when measured
  DeviceSpec device;
  std::vector<LinkSpec> links;
  EfficiencyModel efficiency;
  OverlapModel overlap;
  ProfileTables tables;
  std::optional<Calibration> calibration;  // with provenance "calibrated", and only then

  const LinkSpec* link(std::string_view level) const;
  double peak_flops_per_s(DType dtype) const;  // throws InvalidInput when the dtype has no peak
};

// Reads and checks a profile document; every problem is InvalidInput naming `source` and field.
Profile profile_from_json(const Json& json, std::string_view source);
Json to_json(const Profile& profile);

// Profiles shipped in profiles/ and compiled into the binary.
std::span<const Profile> builtin_profiles();
// A built-in profile name, or a path to a profile JSON file. Unknown → InvalidInput with the list.
Profile resolve_profile(std::string_view name_or_file);
// The profile of each of the cluster's device groups (ClusterSpec::device_groups order): one for
// a cluster of one kind.
std::vector<Profile> resolve_group_profiles(const ClusterSpec& cluster);

}  // namespace loom::core
