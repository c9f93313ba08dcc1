#pragma once
// Support for the layout tests: they drive the real `loom` and `loom-exec` binaries as separate
// processes (mpirun for every run, even a single rank, so that every layout is launched alike),
// in one scratch directory per test binary, and compare what the runs print (--jsonl) and save
// (--save-model, a full model in Hugging Face GPT-2 names) with a single-rank reference run of
// the same model and data.
//
// Tolerances (the "within 1e-5", made precise):
// - loss: |loss - reference| <= 1e-5 · |reference| at every step (relative; the losses are ~5);
// - parameters: |p - reference| <= 1e-5 · max(1, |reference|) for every element, i.e. absolute
//   1e-5 for elements up to 1 in magnitude (nearly all of them: initialised with std 0.02,
//   LayerNorm gains ≈ 1) and relative 1e-5 above. A purely relative test is meaningless for
//   elements near zero (biases start at exactly 0), where fp32 reduction-order noise dominates.
// - resume: the losses as exact doubles (the JSON lines print 17 significant digits, which
//   round-trip), and the final parameters bit for bit.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace loom::layout_tests {

inline constexpr double kLossRelativeTolerance = 1e-5;
inline constexpr double kParameterTolerance = 1e-5;
inline constexpr int kSteps = 10;

// A parallel layout of the test model; loom init turns it into a plan.
struct Layout {
  std::string name;  // the test's name: letters, digits and '_'
  int ranks = 1;     // devices in the plan = MPI ranks; dp = ranks / (tp · pp)
  int tp = 1;
  int pp = 1;
  std::string schedule = "1f1b";                // gpipe, 1f1b or interleaved
  std::optional<int> layers_per_virtual_stage;  // interleaved only
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  std::string recompute = "none";  // none, selective or full
  std::optional<int64_t> seed;     // default: loom init's
  bool untied_output_layer = false;  // the model's lm_head separate from wte
  // The Llama twin of the test model (GQA in 2 groups, SwiGLU, RMSNorm, rope, untied) instead of
  // the GPT-2 one; compared with its own single-rank reference.
  bool llama = false;
  // Said explicitly, whatever loom init's default: these tests cover the unfused kernel unless a
  // test asks for flash (layouts_flash_test.cpp).
  std::string attention_backend = "unfused";
  int micro_batch_size = 2;
  int train_iters = kSteps;
  // A model JSON of the test's own instead of the test model (the GPT-2 one, tied or untied).
  std::optional<std::filesystem::path> model_file;
  // Uneven pipeline splits (issue 23): pipeline-layer-split (interleaved when it lists more than pp
  // virtual stages), or Megatron's decoder-first/last-pipeline-num-layers and
  // account-for-embedding/loss-in-pipeline-split, with num-virtual-stages-per-pipeline-rank when
  // interleaved. make_plan writes them into the plan itself (see there).
  std::vector<int64_t> layer_split;
  std::optional<int64_t> first_stage_layers, last_stage_layers, virtual_stages_per_rank;
  bool account_for_embedding = false, account_for_loss = false;

  Layout(std::string name_, int ranks_, int tp_ = 1, int pp_ = 1)
      : name(std::move(name_)), ranks(ranks_), tp(tp_), pp(pp_) {}
  Layout with_schedule(std::string s, std::optional<int> layers_per_virtual = {}) const {
    Layout l = *this;
    l.schedule = std::move(s);
    l.layers_per_virtual_stage = layers_per_virtual;
    return l;
  }
  Layout with_sequence_parallel() const {
    Layout l = *this;
    l.sequence_parallel = true;
    return l;
  }
  Layout with_distributed_optimizer() const {
    Layout l = *this;
    l.distributed_optimizer = true;
    return l;
  }
  Layout with_recompute(std::string r) const {
    Layout l = *this;
    l.recompute = std::move(r);
    return l;
  }
  Layout with_seed(int64_t s) const {
    Layout l = *this;
    l.seed = s;
    return l;
  }
  Layout with_attention_backend(std::string backend) const {
    Layout l = *this;
    l.attention_backend = std::move(backend);
    return l;
  }
  Layout with_llama() const {
    Layout l = *this;
    l.llama = true;
    l.untied_output_layer = true;  // as Llama's
    return l;
  }
  Layout with_micro_batch_size(int b) const {
    Layout l = *this;
    l.micro_batch_size = b;
    return l;
  }
  Layout with_train_iters(int iters) const {
    Layout l = *this;
    l.train_iters = iters;
    return l;
  }
  Layout with_model_file(std::filesystem::path model) const {
    Layout l = *this;
    l.model_file = std::move(model);
    return l;
  }
  bool has_layer_split_rule() const {
    return !layer_split.empty() || first_stage_layers || last_stage_layers || account_for_embedding ||
           account_for_loss;
  }
  Layout with_layer_split(std::vector<int64_t> split) const {
    Layout l = *this;
    if (int64_t(split.size()) > pp) l.schedule = "interleaved";
    l.layer_split = std::move(split);
    return l;
  }
  // Megatron's decoder-first/last-pipeline-num-layers; `virtual_stages` > 1 interleaves.
  Layout with_first_last_layers(std::optional<int64_t> first, std::optional<int64_t> last,
                                std::optional<int64_t> virtual_stages = {}) const {
    Layout l = with_virtual_stages(virtual_stages);
    l.first_stage_layers = first;
    l.last_stage_layers = last;
    return l;
  }
  // Megatron's account-for-embedding/loss-in-pipeline-split; `virtual_stages` > 1 interleaves.
  Layout with_accounting(bool embedding, bool loss, std::optional<int64_t> virtual_stages = {}) const {
    Layout l = with_virtual_stages(virtual_stages);
    l.account_for_embedding = embedding;
    l.account_for_loss = loss;
    return l;
  }
  Layout with_virtual_stages(std::optional<int64_t> virtual_stages) const {
    Layout l = *this;
    if (virtual_stages) l.schedule = "interleaved";
    l.virtual_stages_per_rank = virtual_stages;
    return l;
  }
  Layout with_untied_output_layer() const {
    Layout l = *this;
    l.untied_output_layer = true;
    return l;
  }
};

// gtest prints a parameter with this (instead of its bytes) when a parameterised test fails.
inline void PrintTo(const Layout& layout, std::ostream* os) {
  *os << layout.name;
}

struct ProcessResult {
  std::string command;
  int exit_code = -1;  // 128 + N for a process killed by signal N
  std::string out;
  std::string err;
  double wall_s = 0;
};

// What one training run printed: the steps, losses and gradient norms of its JSON lines, in order.
// The gradient norm (before clipping) is compared too: with clipping active (clip-grad 1 and
// norms of 2 to 4 here) and Adam being invariant to the gradient's scale, a gradient scaled
// wrongly by a layout (summed instead of averaged over dp, say) would change neither the losses
// nor the parameters; its norm shows it.
struct RunOutput {
  ProcessResult process;
  std::vector<int64_t> steps;
  std::vector<double> losses;
  std::vector<double> grad_norms;
};

// The scratch directory of this test binary (created on first use; removed at exit unless a
// test failed or LOOM_KEEP_TEST_FILES is set) and the model JSON written into it (with its output
// layer tied to the token embedding, as GPT-2's, or untied).
std::filesystem::path scratch_dir();
std::filesystem::path model_json(bool untied_output_layer = false);
// The Llama test model: 4 layers, hidden 64, 4 heads in 2 query groups, SwiGLU 192, RMSNorm,
// rotary positions, no biases, untied output layer; byte vocabulary, sequence 32.
std::filesystem::path llama_model_json();
// The GPT-2 test model with six layers (room for uneven and interleaved splits, and pp 3).
std::filesystem::path six_layer_model_json();

// Runs `command` through /bin/sh with stdout and stderr captured; never throws for a non-zero exit.
ProcessResult run_process(const std::string& command);
std::string quote(const std::string& word);  // one shell word

// Writes a plan for `layout` with `loom init` (fp32, global batch 8, the layout's micro-batch size
// (2), train-iters (10) and attention backend) and checks that the plan holds the layout; returns its
// path. Throws on any failure. A layout with a layer-split rule is written from loom init's
// one-rank plan of the same model and settings with its parallel fields set here (loom init takes
// no split, and refuses some of these layouts' pp as uneven), then validated by core.
std::filesystem::path make_plan(const Layout& layout);

// `mpirun -np <ranks> loom-exec run PLAN --jsonl --threads 1 <extra>`; with `require_success`, a
// non-zero exit or a missing JSON line throws with the command and its stderr.
RunOutput run_exec(const std::filesystem::path& plan, int ranks, const std::string& extra,
                   bool require_success = true);
// `loom run PLAN --jsonl --threads 1 <extra>` (loom launches mpirun itself).
RunOutput run_loom_run(const std::filesystem::path& plan, const std::string& extra,
                       bool require_success = true);

// The single-rank reference: kSteps steps, its losses and its saved model. Run once per process.
struct Reference {
  RunOutput run;
  std::filesystem::path model;  // --save-model
};
const Reference& reference(bool llama = false);
// The single-rank reference of a model JSON of a test's own (e.g. six_layer_model_json()).
const Reference& reference(const std::filesystem::path& model_file);

// Descriptions of every violation of |other - reference| <= relative_tolerance · |reference| per
// step (0: exact doubles); empty when the runs agree. `what` names the quantity ("loss"), and
// the vectors' first element is step `first_step`.
std::vector<std::string> loss_mismatches(const std::vector<double>& reference,
                                         const std::vector<double>& other,
                                         double relative_tolerance,
                                         const std::string& what = "loss", int64_t first_step = 1);
// Every tensor of `reference_file` must be in `other_file` with the same dtype and shape and
// values within `tolerance` · max(1, |reference|) (0: bit for bit); no extra tensors. One line per
// offending tensor, naming its worst element.
std::vector<std::string> parameter_mismatches(const std::filesystem::path& reference_file,
                                              const std::filesystem::path& other_file,
                                              double tolerance);

// Adam turns fp32 noise in a gradient that is itself almost all cancellation (|g| near Adam's
// eps of 1e-8) into a visible difference of the update: in the Llama model's 10-step runs, one
// element of the 229,952 lands 1.5e-5 from the reference while every other is within 3e-6 (most
// within 1e-6). These comparisons allow `outliers` such elements in the whole model, each within
// `outlier_tolerance` · max(1, |reference|) — far below one step's largest update (lr 6e-4), so
// a layout that computed any gradient wrongly still fails (and the losses and gradient norms are
// compared without allowance).
struct OutlierAllowance {
  size_t outliers = 0;
  double outlier_tolerance = 0;
};
std::vector<std::string> parameter_mismatches(const std::filesystem::path& reference_file,
                                              const std::filesystem::path& other_file, double tolerance,
                                              OutlierAllowance allowance);

std::string join_lines(const std::vector<std::string>& lines, size_t at_most = 20);

}  // namespace loom::layout_tests
