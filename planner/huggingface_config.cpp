#include "planner/huggingface_config.hpp"

#include "core/error.hpp"

namespace loom::plan {
namespace {

// GPT-2 and Llama use an epsilon of 1e-5 in Loom's executor (gpt_layers.cpp) and in their
// published configs (GPT-2's layer_norm_epsilon, Llama 2's rms_norm_eps).
constexpr double kNormEpsilon = 1e-5;

std::string torch_dtype(core::DType dtype) {
  switch (dtype) {
    case core::DType::bf16: return "bfloat16";
    case core::DType::fp16: return "float16";
    case core::DType::fp32: return "float32";
  }
  return "float32";
}

}  // namespace

core::Json huggingface_config(const core::Plan& plan) {
  const core::ModelSpec& m = plan.model;
  const int64_t vocab = plan.padded_vocab_size();
  // Loom's model files hold fp32 masters whatever the plan trains in; the dtype says what the
  // plan trained in, as Hugging Face's configs do.
  if (m.family() == core::ModelFamily::gpt2) {
    return core::Json{{"architectures", {"GPT2LMHeadModel"}},
                      {"model_type", "gpt2"},
                      {"n_layer", m.num_layers},
                      {"n_embd", m.hidden_size},
                      {"n_head", m.num_attention_heads},
                      {"n_inner", m.ffn_hidden_size},
                      {"n_positions", m.seq_length},
                      {"n_ctx", m.seq_length},
                      {"vocab_size", vocab},
                      {"activation_function", "gelu_new"},  // GPT-2's tanh approximation
                      {"layer_norm_epsilon", kNormEpsilon},
                      {"tie_word_embeddings", m.tied_embeddings()},
                      {"resid_pdrop", 0.0},
                      {"embd_pdrop", 0.0},
                      {"attn_pdrop", 0.0},
                      {"torch_dtype", torch_dtype(plan.training.dtype)}};
  }
  if (m.family() == core::ModelFamily::llama) {
    return core::Json{{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"num_hidden_layers", m.num_layers},
                      {"hidden_size", m.hidden_size},
                      {"num_attention_heads", m.num_attention_heads},
                      {"num_key_value_heads", m.query_groups()},
                      {"head_dim", m.kv_channels()},
                      {"intermediate_size", m.ffn_hidden_size},
                      {"max_position_embeddings", m.seq_length},
                      {"vocab_size", vocab},
                      {"hidden_act", "silu"},
                      {"rms_norm_eps", kNormEpsilon},
                      {"rope_theta", m.rotary_base},
                      {"attention_bias", false},
                      {"mlp_bias", false},
                      {"tie_word_embeddings", m.tied_embeddings()},
                      {"attention_dropout", 0.0},
                      {"torch_dtype", torch_dtype(plan.training.dtype)}};
  }
  throw InvalidInput(
      "model '{}' is neither GPT-2's architecture (GELU, LayerNorm, learned positions, biases, one key/value head "
      "per query head) nor Llama's (SwiGLU, RMSNorm, rope, no biases): Hugging Face has no config for the mix",
      m.name);
}

}  // namespace loom::plan
