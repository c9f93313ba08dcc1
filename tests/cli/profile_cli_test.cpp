// `loom profile` as a user runs it: real ranks under mpirun measure this machine's executor
// kernels and collectives, and the profile they write reads back with every table the simulator
// looks up, each kernel recorded at the bytes core/kernel_bytes.hpp charges. And `loom bench
// executor` / `loom-exec bench`, the executor's other measurement: its options, its refusals and
// its JSON.

#include "core/kernel_bytes.hpp"
#include "core/profile.hpp"
#include "run_loom.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

namespace loom::cli::testing {
namespace {

namespace fs = std::filesystem;
namespace kb = core::kernel_bytes;
using ::testing::HasSubstr;
using namespace std::string_literals;

// The bytes each kernel is charged for, from the size arguments its table line prints
// ("rows=64 width=256"); the CPU computes in fp32.
double charged_bytes(const std::string& kernel, const std::map<std::string, double>& a) {
  if (kernel == kb::kLayernorm) return kb::layernorm_forward(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kLayernormBackward)
    return kb::layernorm_backward(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kGelu) return kb::gelu_forward(a.at("inputs"), a.at("outputs"), 4);
  if (kernel == kb::kGeluBackward) return kb::gelu_backward(a.at("inputs"), a.at("outputs"), 4);
  if (kernel == kb::kRmsnorm) return kb::rmsnorm_forward(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kRmsnormBackward) return kb::rmsnorm_backward(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kSwiglu) return kb::swiglu_forward(a.at("rows"), a.at("ffn"), 4);
  if (kernel == kb::kSwigluBackward) return kb::swiglu_backward(a.at("rows"), a.at("ffn"), 4);
  if (kernel == kb::kRotary)
    return kb::rotary_forward(a.at("rows"), a.at("heads"), a.at("kv_heads"), a.at("head_dim"), 4);
  if (kernel == kb::kRotaryBackward)
    return kb::rotary_backward(a.at("rows"), a.at("heads"), a.at("kv_heads"), a.at("head_dim"), 4);
  if (kernel == kb::kQueryGroups)
    return kb::query_groups_forward(a.at("rows"), a.at("heads"), a.at("kv_heads"), a.at("head_dim"), 4);
  if (kernel == kb::kQueryGroupsBackward)
    return kb::query_groups_backward(a.at("rows"), a.at("heads"), a.at("kv_heads"), a.at("head_dim"), 4);
  if (kernel == kb::kResidual) return kb::residual(a.at("elements"), 4);
  if (kernel == kb::kResidualBackward) return kb::residual_backward(a.at("elements"), 4);
  if (kernel == kb::kBias) return kb::bias(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kBiasBackward) return kb::bias_backward(a.at("rows"), a.at("width"), 4);
  if (kernel == kb::kEmbedding) return kb::embedding_forward(a.at("tokens"), a.at("hidden"), 4);
  if (kernel == kb::kEmbeddingBackward)
    return kb::embedding_backward(a.at("tokens"), a.at("hidden"), 4);
  if (kernel == kb::kCrossEntropy)
    return kb::cross_entropy_forward(a.at("tokens"), a.at("vocab"), 4);
  if (kernel == kb::kCrossEntropyBackward)
    return kb::cross_entropy_backward(a.at("tokens"), a.at("vocab"), 4);
  if (kernel == kb::kAdamw) return kb::adamw(a.at("parameters"));
  if (kernel == kb::kGradNorm) return kb::grad_norm(a.at("parameters"));
  ADD_FAILURE() << "no byte count known for kernel " << kernel;
  return 0;
}

// Every combination of the distinct m, n and k values is measured exactly once.
void expect_full_grid(const std::vector<core::GemmSample>& gemm, core::GemmLayout layout) {
  std::set<int64_t> ms, ns, ks;
  std::set<std::tuple<int64_t, int64_t, int64_t>> shapes;
  size_t rows = 0;
  for (const core::GemmSample& s : gemm) {
    if (s.layout != layout) continue;
    EXPECT_EQ(s.dtype, core::DType::fp32);
    ms.insert(s.m);
    ns.insert(s.n);
    ks.insert(s.k);
    shapes.insert({s.m, s.n, s.k});
    ++rows;
  }
  EXPECT_GT(ms.size() * ns.size() * ks.size(), 8u) << core::to_string(layout);
  EXPECT_EQ(shapes.size(), ms.size() * ns.size() * ks.size()) << core::to_string(layout);
  EXPECT_EQ(rows, shapes.size()) << core::to_string(layout);
}

class LoomProfile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_profile_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(LoomProfile, AQuickProfileHasEveryTableTheSimulatorLooksUp) {
  // Three ranks: group sizes 2 and 3, and a rank that waits outside the 2-rank group.
  // A folder that does not exist is refused at once, not after the minute of measuring.
  const LoomResult nowhere = run_loom("profile --quick --ranks 3 --out '" + (dir_ / "nested" / "cpu.json").string() + "'");
  EXPECT_EQ(nowhere.exit_code, 2) << nowhere.err;
  EXPECT_THAT(nowhere.err, HasSubstr("nested' does not exist"));
  const std::string out = (dir_ / "cpu.json").string();
  const LoomResult measured =
      run_loom("profile --quick --ranks 3 --name test-cpu --out '" + out + "'");
  ASSERT_EQ(measured.exit_code, 0) << measured.err;
  EXPECT_THAT(measured.out, HasSubstr("written to " + out));
  const std::string text = read_file(out);
  const core::Json document = core::parse_json_text(text, out);
  const core::Profile profile = core::profile_from_json(document, out);
  EXPECT_EQ(profile.name, "test-cpu");
  EXPECT_EQ(profile.provenance, "measured");
  EXPECT_GT(profile.device.host_cores, 0);
  EXPECT_EQ(profile.device.threads_per_rank, 1);
  EXPECT_EQ(profile.device.compute_dtype, core::DType::fp32);
  EXPECT_GT(profile.peak_flops_per_s(core::DType::fp32), 1e9);
  for (const char* table : {"gemm", "attention", "kernels", "collectives"})
    for (const core::Json& row : document["tables"][table])
      ASSERT_TRUE(row.contains("spread")) << table;

  for (core::GemmLayout layout : {core::GemmLayout::nn, core::GemmLayout::nt, core::GemmLayout::tn})
    expect_full_grid(profile.tables.gemm, layout);

  std::map<bool, std::set<std::pair<int64_t, int64_t>>> attention;  // pass → (seq, head_dim)
  for (const core::AttentionSample& s : profile.tables.attention)
    attention[s.backward].insert({s.seq, s.head_dim});
  EXPECT_GT(attention[false].size(), 1u);
  EXPECT_EQ(attention[false], attention[true]);

  // Every kernel the executor runs, each table line's bytes from its kernel_bytes formula and
  // found in the profile; none it does not run on its own.
  std::set<std::pair<std::string, int64_t>> recorded;
  for (const core::KernelSample& s : profile.tables.kernels) recorded.insert({s.kernel, s.bytes});
  std::map<std::string, int> lines;
  const std::regex line(R"(^ *([a-z_]+) +((?:[a-z_]+=\d+ )+) *(\d+) )");
  std::istringstream printed(measured.out);
  for (std::string text_line; std::getline(printed, text_line);) {
    std::smatch match;
    if (!std::regex_search(text_line, match, line)) continue;
    const std::string kernel = match[1];
    std::map<std::string, double> arguments;
    std::istringstream words(match[2].str());
    for (std::string word; words >> word;)
      arguments[word.substr(0, word.find('='))] = std::stod(word.substr(word.find('=') + 1));
    const int64_t bytes = std::stoll(match[3]);
    EXPECT_EQ(bytes, int64_t(charged_bytes(kernel, arguments))) << text_line;
    EXPECT_TRUE(recorded.count({kernel, bytes})) << text_line;
    ++lines[kernel];
  }
  for (std::string_view kernel :
       {kb::kLayernorm, kb::kLayernormBackward, kb::kGelu, kb::kGeluBackward, kb::kRmsnorm, kb::kRmsnormBackward,
        kb::kSwiglu, kb::kSwigluBackward, kb::kRotary, kb::kRotaryBackward, kb::kQueryGroups,
        kb::kQueryGroupsBackward, kb::kResidual, kb::kResidualBackward, kb::kBias, kb::kBiasBackward,
        kb::kEmbedding, kb::kEmbeddingBackward, kb::kCrossEntropy, kb::kCrossEntropyBackward, kb::kAdamw,
        kb::kGradNorm})
    EXPECT_GE(lines[std::string(kernel)], 3) << kernel;
  EXPECT_EQ(lines.size(), 22u);
  EXPECT_EQ(profile.tables.kernels.size(), recorded.size());

  std::set<std::pair<std::string, int64_t>> collectives;  // (collective, ranks)
  for (const core::CollectiveSample& s : profile.tables.collectives) {
    EXPECT_EQ(s.level, "intra-node");
    collectives.insert({s.collective, s.ranks});
  }
  const std::set<std::pair<std::string, int64_t>> expected = {
      {"all_reduce", 2}, {"all_gather", 2},     {"reduce_scatter", 2},
      {"broadcast", 2},  {"send_recv", 2},      {"all_reduce", 3},
      {"all_gather", 3}, {"reduce_scatter", 3}, {"broadcast", 3}};
  EXPECT_EQ(collectives, expected);
  EXPECT_THAT(measured.out, HasSubstr("# all_reduce on 3 ranks"));  // the nccl-tests style tables
  ASSERT_EQ(profile.links.size(), 1u);
  EXPECT_GT(profile.links[0].bandwidth_bytes_per_s, 0);

  const LoomResult simulated = run_loom("simulate --profile '" + out + "' --format json");
  ASSERT_EQ(simulated.exit_code, 0) << simulated.err;
  EXPECT_THAT(simulated.out, HasSubstr("\"profile\": \"test-cpu\""));
}

// `loom profile --backend cuda` launches one rank per GPU (one by default) and passes the backend
// on; a CPU profile needs two ranks for its collectives.
TEST_F(LoomProfile, TheCudaBackendIsPassedToTheExecutor) {
  const std::string out = (dir_ / "gpu.json").string();
  const LoomResult gpu = run_loom("profile --backend cuda --quick --dry-run --out '" + out + "'");
  ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
  EXPECT_THAT(gpu.err, HasSubstr("mpirun -np 1 "));
  EXPECT_THAT(gpu.err, HasSubstr("--name cuda-"));
  EXPECT_THAT(gpu.err, HasSubstr("--backend cuda"));
  const LoomResult one_cpu = run_loom("profile --ranks 1 --dry-run --out '" + out + "'");
  EXPECT_EQ(one_cpu.exit_code, 2) << one_cpu.err;
  EXPECT_THAT(one_cpu.err, HasSubstr("at least 2 ranks"));
}

// `loom-exec` itself, beside `loom`: its refusals are its own one line.
LoomResult run_executor(const std::string& arguments) {
  const fs::path dir = fs::temp_directory_path() / ("loom_exec_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path executor = fs::path(LOOM_BINARY).parent_path() / "loom-exec";
  // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) about "'" + a temporary string.
  std::string command = "'";
  for (const std::string& piece : {executor.string(), "' "s, arguments, " </dev/null >'"s, (dir / "out").string(),
                                   "' 2>'"s, (dir / "err").string(), "'"s})
    command += piece;
  const int status = std::system(command.c_str());
  LoomResult result;
  result.signalled = !WIFEXITED(status);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(dir / "out");
  result.err = read_file(dir / "err");
  fs::remove_all(dir);
  return result;
}

// Bad input: status 2 and one line, `loom-exec: error: …` naming `word`, before any MPI.
void expect_refusal(const LoomResult& r, const std::string& word) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("loom-exec: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(word));
}

TEST(LoomExecBench, BadOptionsAreRefusedInOneLine) {
  expect_refusal(run_executor("bench --model nonsense"), "nonsense");
  expect_refusal(run_executor("bench --model gpt2-124m --seq 0"), "--seq");
  expect_refusal(run_executor("bench --model gpt2-124m --seq 65537"), "65536");
  expect_refusal(run_executor("bench --micro-batch 0"), "--micro-batch");
  expect_refusal(run_executor("bench --precision fp16"), "fp16");
  expect_refusal(run_executor("bench --profile no-such-profile"), "no-such-profile");
  expect_refusal(run_executor("bench --backend tpu"), "tpu");
  // The executor-only options are not the planner's.
  const LoomResult planner = run_loom("bench planner --seq 64");
  EXPECT_EQ(planner.exit_code, 2) << planner.err;
  EXPECT_THAT(planner.err, HasSubstr("--seq is an option of `loom bench executor`"));
}

// Without a usable GPU (no device here, or a build without CUDA) cuda is refused in one line,
// by `loom-exec` and through `loom`; with one, the benchmark runs on it.
TEST(LoomExecBench, CudaRunsOnAGpuOrIsRefusedInOneLine) {
  const LoomResult via_loom = run_loom("bench executor --backend cuda --seconds 0.05 --format json");
  if (via_loom.exit_code == 0) {
    const core::Json out = core::parse_json_text(via_loom.out, "bench output");
    EXPECT_EQ(out.at("backend"), "cuda");
    EXPECT_GT(out.at("mfu_fraction").get<double>(), 0);
    EXPECT_EQ(out.at("peak_profile"), "h100-80gb-dgx");
    return;
  }
  EXPECT_EQ(via_loom.exit_code, 2) << via_loom.err;
  EXPECT_THAT(via_loom.err, HasSubstr("loom: error: --backend cuda: "));
  expect_refusal(run_executor("bench --backend cuda"), "cuda");
  const std::string out = (fs::temp_directory_path() / "x.json").string();
  expect_refusal(run_executor("profile --backend cuda --quick --out '" + out + "'"), "cuda");
}

// GPT-2 small on the CPU, one short sequence: every field of the JSON, in its units. bf16 is
// asked for and fp32 computed, and the MFU is against a CPU profile's fp32 peak.
TEST(LoomExecBench, Gpt2OnTheCpuReportsItsSpeedAsJson) {
  const LoomResult r = run_loom(
      "bench executor --model gpt2-124m --backend cpu --seq 64 --micro-batch 1 --seconds 0.2 --precision bf16 "
      "--profile cpu-epyc-2core-vm --threads 2 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const core::Json out = core::parse_json_text(r.out, "bench output");
  EXPECT_EQ(out.at("model"), "gpt2-124m");
  EXPECT_EQ(out.at("backend"), "cpu");
  EXPECT_EQ(out.at("precision"), "fp32");
  EXPECT_EQ(out.at("requested_precision"), "bf16");
  EXPECT_EQ(out.at("seq_length"), 64);
  EXPECT_EQ(out.at("micro_batch_size"), 1);
  const double step = out.at("step_time_s").get<double>();
  EXPECT_GT(step, 0);
  EXPECT_NEAR(out.at("tokens_per_s").get<double>(), 64 / step, 1e-6 * 64 / step);
  EXPECT_GT(out.at("model_flops_per_s").get<double>(), 1e8);
  const core::Profile cpu = core::resolve_profile("cpu-epyc-2core-vm");
  EXPECT_EQ(out.at("peak_flops_per_s").get<double>(), cpu.peak_flops_per_s(core::DType::fp32));
  EXPECT_NEAR(out.at("mfu_fraction").get<double>(),
              out.at("model_flops_per_s").get<double>() / cpu.peak_flops_per_s(core::DType::fp32), 1e-9);
  // At least the fp32 weights, gradients and both Adam moments of 124M parameters.
  EXPECT_GT(out.at("peak_memory_bytes").get<int64_t>(), int64_t(124e6) * 16);
}

}  // namespace
}  // namespace loom::cli::testing
