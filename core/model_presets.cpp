#include "core/model_presets.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace loom::core {
namespace {

struct Shape {
  int64_t layers, hidden, heads, query_groups, ffn, vocab, seq;
};

ModelSpec gpt_style(std::string_view name, Shape s) {
  ModelSpec m;
  m.name = std::string(name);
  m.num_layers = s.layers;
  m.hidden_size = s.hidden;
  m.num_attention_heads = s.heads;
  // Query groups only for grouped-query attention, and the tokenizer's vocabulary, padded for
  // each tp as Megatron pads it: what `loom init` writes, so that heads and tp can be edited alone.
  if (s.query_groups != s.heads) m.num_query_groups = s.query_groups;
  m.ffn_hidden_size = s.ffn;
  m.vocab_size = s.vocab;
  m.seq_length = s.seq;
  return m;
}

// Llama: SwiGLU MLP, RMSNorm, rotary positions, no biases, untied output layer.
ModelSpec llama_style(std::string_view name, Shape s) {
  ModelSpec m = gpt_style(name, s);
  m.activation = Activation::swiglu;
  m.normalization = Normalization::rmsnorm;
  m.position_embedding = PositionEmbedding::rope;
  m.add_bias_linear = false;
  m.untie_embeddings_and_output_weights = true;
  return m;
}

// Llama 3 raised the rotary base from 10,000 to 500,000 (its paper, §3.1.1 and Table 3).
ModelSpec llama3_style(std::string_view name, Shape s) {
  ModelSpec m = llama_style(name, s);
  m.rotary_base = 500000;
  return m;
}

constexpr std::string_view kGpt2 =
    "Radford et al. 2019, 'Language Models are Unsupervised Multitask Learners', Table 2; "
    "hyper-parameters as in OpenAI's released GPT-2 checkpoints (n_ctx 1024, vocab 50257)";
constexpr std::string_view kGpt3 =
    "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table 2.1 (n_ctx 2048, GPT-2 "
    "vocabulary of 50257)";
constexpr std::string_view kLlama2 =
    "Touvron et al. 2023, 'Llama 2: Open Foundation and Fine-Tuned Chat Models', Table 1 and the "
    "released config.json files (context 4096, vocab 32000)";
constexpr std::string_view kLlama3 =
    "Llama Team 2024, 'The Llama 3 Herd of Models', Table 3, and the released config.json files "
    "(vocab 128256, pre-training context 8192)";
constexpr std::string_view kMegatron =
    "Narayanan et al. 2021 (SC21), 'Efficient Large-Scale Language Model Training on GPU "
    "Clusters Using Megatron-LM', Table 1 (seq 2048, vocab 51200)";

std::vector<ModelPreset> build_presets() {
  std::vector<ModelPreset> p;
  auto add = [&](std::string_view name, std::string_view family, std::string_view source, ModelSpec spec) {
    p.push_back({name, family, source, std::move(spec)});
  };
  // GPT-2: MHA, 4h MLP, tied embeddings, learned positions.
  add("gpt2-124m", "GPT-2", kGpt2, gpt_style("gpt2-124m", {12, 768, 12, 12, 3072, 50257, 1024}));
  add("gpt2-350m", "GPT-2", kGpt2, gpt_style("gpt2-350m", {24, 1024, 16, 16, 4096, 50257, 1024}));
  add("gpt2-774m", "GPT-2", kGpt2, gpt_style("gpt2-774m", {36, 1280, 20, 20, 5120, 50257, 1024}));
  add("gpt2-1.5b", "GPT-2", kGpt2, gpt_style("gpt2-1.5b", {48, 1600, 25, 25, 6400, 50257, 1024}));
  // GPT-3 (n_layers, d_model, n_heads as in Table 2.1).
  add("gpt3-125m", "GPT-3", kGpt3, gpt_style("gpt3-125m", {12, 768, 12, 12, 3072, 50257, 2048}));
  add("gpt3-350m", "GPT-3", kGpt3, gpt_style("gpt3-350m", {24, 1024, 16, 16, 4096, 50257, 2048}));
  add("gpt3-760m", "GPT-3", kGpt3, gpt_style("gpt3-760m", {24, 1536, 16, 16, 6144, 50257, 2048}));
  // Table 2.1 gives 1.3B 24 heads of 128, which cannot make d_model 2048; 16 heads of 128 is
  // what reproductions (EleutherAI GPT-Neo 1.3B, Megatron's GPT-3 XL configs) use.
  add("gpt3-1.3b", "GPT-3", kGpt3, gpt_style("gpt3-1.3b", {24, 2048, 16, 16, 8192, 50257, 2048}));
  add("gpt3-2.7b", "GPT-3", kGpt3, gpt_style("gpt3-2.7b", {32, 2560, 32, 32, 10240, 50257, 2048}));
  add("gpt3-6.7b", "GPT-3", kGpt3, gpt_style("gpt3-6.7b", {32, 4096, 32, 32, 16384, 50257, 2048}));
  // Table 2.1 prints d_model 5140 for 13B; 40 heads × d_head 128 make it 5120, the value used.
  add("gpt3-13b", "GPT-3", kGpt3, gpt_style("gpt3-13b", {40, 5120, 40, 40, 20480, 50257, 2048}));
  add("gpt3-175b", "GPT-3", kGpt3, gpt_style("gpt3-175b", {96, 12288, 96, 96, 49152, 50257, 2048}));
  // Llama 2 (70B uses grouped-query attention with 8 key/value heads).
  add("llama2-7b", "Llama 2", kLlama2, llama_style("llama2-7b", {32, 4096, 32, 32, 11008, 32000, 4096}));
  add("llama2-13b", "Llama 2", kLlama2, llama_style("llama2-13b", {40, 5120, 40, 40, 13824, 32000, 4096}));
  add("llama2-70b", "Llama 2", kLlama2, llama_style("llama2-70b", {80, 8192, 64, 8, 28672, 32000, 4096}));
  // Llama 3 / 3.1 (grouped-query attention with 8 key/value heads throughout).
  add("llama3-8b", "Llama 3", kLlama3, llama3_style("llama3-8b", {32, 4096, 32, 8, 14336, 128256, 8192}));
  add("llama3-70b", "Llama 3", kLlama3, llama3_style("llama3-70b", {80, 8192, 64, 8, 28672, 128256, 8192}));
  add("llama3-405b", "Llama 3", kLlama3,
      llama3_style("llama3-405b", {126, 16384, 128, 8, 53248, 128256, 8192}));
  // Megatron-LM PTD-P paper, Table 1 (GPT architecture, 4h MLP).
  const Shape megatron[] = {
      {24, 2304, 24, 24, 4 * 2304, 51200, 2048},     {30, 3072, 32, 32, 4 * 3072, 51200, 2048},
      {36, 4096, 32, 32, 4 * 4096, 51200, 2048},     {40, 6144, 48, 48, 4 * 6144, 51200, 2048},
      {48, 8192, 64, 64, 4 * 8192, 51200, 2048},     {60, 10240, 80, 80, 4 * 10240, 51200, 2048},
      {80, 12288, 96, 96, 4 * 12288, 51200, 2048},   {96, 16384, 128, 128, 4 * 16384, 51200, 2048},
      {105, 20480, 128, 128, 4 * 20480, 51200, 2048}, {128, 25600, 160, 160, 4 * 25600, 51200, 2048},
  };
  const std::string_view megatron_names[] = {
      "megatron-1.7b",   "megatron-3.6b",   "megatron-7.5b",   "megatron-18.4b",  "megatron-39.1b",
      "megatron-76.1b",  "megatron-145.6b", "megatron-310.1b", "megatron-529.6b", "megatron-1t"};
  for (size_t i = 0; i < std::size(megatron); ++i)
    add(megatron_names[i], "Megatron-LM", kMegatron, gpt_style(megatron_names[i], megatron[i]));
  // Loom's own test model: GPT-2's architecture at a size a laptop CPU trains in seconds.
  // Its 256 byte tokens are padded to multiples of 64 × tp: no padding at any tp its 4 heads allow,
  // so every layout trains the very same model and their losses compare.
  ModelSpec tiny = gpt_style("loom-tiny", {4, 128, 4, 4, 512, 256, 64});
  tiny.make_vocab_size_divisible_by = 64;
  add("loom-tiny", "Loom", "Loom's test model: GPT-2 architecture, 4 layers, 128 wide, 256 tokens", std::move(tiny));
  // Its Llama twin: grouped-query attention (4 heads in 2 groups), SwiGLU, RMSNorm, rotary
  // positions, untied output layer. ffn 384 = 3·h gives its linear layers exactly loom-tiny's
  // FLOPs per token (3h² + 3·h·f = 12h²), so the two architectures' throughputs compare directly.
  ModelSpec tiny_llama = llama_style("loom-tiny-llama", {4, 128, 4, 2, 384, 256, 64});
  tiny_llama.make_vocab_size_divisible_by = 64;
  add("loom-tiny-llama", "Loom",
      "Loom's Llama test model: 4 layers, 128 wide, 4 heads in 2 query groups, SwiGLU 384, 256 tokens",
      std::move(tiny_llama));
  return p;
}

}  // namespace

std::span<const ModelPreset> model_presets() {
  static const std::vector<ModelPreset> presets = build_presets();
  return presets;
}

const ModelPreset& find_model_preset(std::string_view name) {
  for (const ModelPreset& preset : model_presets())
    if (preset.name == name) return preset;
  std::string known;
  for (const ModelPreset& preset : model_presets()) known += (known.empty() ? "" : ", ") + std::string(preset.name);
  throw InvalidInput("unknown model preset '{}'; expected a model JSON file or one of: {}", name, known);
}

ModelSpec resolve_model(std::string_view name_or_file) {
  for (const ModelPreset& preset : model_presets())
    if (preset.name == name_or_file) return preset.spec;
  const std::string path(name_or_file);
  if (path == "-" || std::filesystem::exists(path)) return read_model_file(path);
  return find_model_preset(name_or_file).spec;  // throws the list of known names
}

}  // namespace loom::core
