#pragma once
// A plan's model as a Hugging Face `config.json` (transformers' GPT2Config or LlamaConfig), to
// put beside a model file Loom wrote (`--save-model`, `loom checkpoint export`), so that
// `from_pretrained` loads Loom's weights with the architecture they were trained with.

#include "core/json_reader.hpp"
#include "core/plan.hpp"

namespace loom::plan {

// InvalidInput unless the model is one of the two families Loom's executor trains (GPT-2's or
// Llama's); the vocabulary is the plan's padded one, the rows Loom's model files hold.
core::Json huggingface_config(const core::Plan& plan);

}  // namespace loom::plan
