// `loom presets`: the model architectures and device profiles Loom knows by name.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "core/model_arithmetic.hpp"
#include "core/model_presets.hpp"
#include "core/plan_json.hpp"
#include "core/profile.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

namespace loom::cli {
namespace {

using core::Json;

void print_models() {
  TextTable table({"model", "family", "parameters", "layers", "hidden", "heads", "kv heads", "ffn",
                   "vocab", "seq", "mlp", "embeddings"},
                  {2, 3, 4, 5, 6, 7, 8, 9});
  std::map<std::string_view, std::string_view> sources;
  for (const core::ModelPreset& preset : core::model_presets()) {
    const core::ModelSpec& m = preset.spec;
    table.add_row({std::string(preset.name), std::string(preset.family),
                   human_count(double(core::parameter_count(m))), std::to_string(m.num_layers),
                   std::to_string(m.hidden_size), std::to_string(m.num_attention_heads),
                   std::to_string(m.query_groups()), std::to_string(m.ffn_hidden_size),
                   std::to_string(core::model_vocab_size(m)), std::to_string(m.seq_length),
                   m.activation == core::Activation::swiglu ? "SwiGLU" : "GELU",
                   m.tied_embeddings() ? "tied" : "untied"});
    sources.emplace(preset.family, preset.source);
  }
  fmt::print("Model presets (use with `loom init --model NAME`; the vocabulary is the tokenizer's, padded for each "
             "tensor-parallel size)\n{}\nSources:\n",
             table.render());
  for (const auto& [family, source] : sources) fmt::print("  {}: {}\n", family, source);
}

void print_profiles() {
  TextTable table({"profile", "provenance", "device", "memory", "bf16 peak", "HBM bandwidth",
                   "intra-node link", "inter-node link"},
                  {3, 4, 5, 6, 7});
  for (const core::Profile& p : core::builtin_profiles()) {
    auto link = [&](std::string_view level) {
      const core::LinkSpec* l = p.link(level);
      return l ? human_si(l->bandwidth_bytes_per_s, "B/s") : std::string("-");
    };
    auto bf16 = p.device.peak_flops_per_s.find(core::DType::bf16);
    table.add_row({p.name, p.provenance, p.device.name, human_bytes(double(p.device.memory_bytes)),
                   bf16 == p.device.peak_flops_per_s.end() ? "-" : human_si(bf16->second, "FLOP/s"),
                   human_si(p.device.memory_bandwidth_bytes_per_s, "B/s"), link("intra-node"),
                   link("inter-node")});
  }
  fmt::print("Device profiles (use with `loom init --profile NAME`; link bandwidth per device, one "
             "direction)\n{}",
             table.render());
}

Json models_json() {
  Json out = Json::array();
  for (const core::ModelPreset& preset : core::model_presets()) {
    Json entry = core::to_json(preset.spec);
    entry["family"] = preset.family;
    entry["source"] = preset.source;
    entry["parameters"] = core::parameter_count(preset.spec);
    out.push_back(std::move(entry));
  }
  return out;
}

Json profiles_json() {
  Json out = Json::array();
  for (const core::Profile& p : core::builtin_profiles()) out.push_back(core::to_json(p));
  return out;
}

}  // namespace

Command add_presets_command(CLI::App& parent) {
  struct Options {
    bool models = false;
    bool profiles = false;
    std::string format = "table";
  };
  auto options = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand("presets", "List the built-in model presets and device profiles");
  app->add_flag("--models", options->models, "Only the model presets");
  app->add_flag("--profiles", options->profiles, "Only the device profiles");
  add_format_option(*app, options->format);
  app->footer("Examples:\n  loom presets\n  loom presets --models --format json");
  return {app, [options] {
            const bool both = options->models == options->profiles;
            const bool models = both || options->models;
            const bool profiles = both || options->profiles;
            if (options->format == "json") {
              Json out = {{"format", "loom-presets"}, {"version", 1}};
              if (models) out["models"] = models_json();
              if (profiles) out["profiles"] = profiles_json();
              std::cout << out.dump(2) << "\n";
              return;
            }
            if (models) print_models();
            if (models && profiles) fmt::print("\n");
            if (profiles) print_profiles();
          }};
}

}  // namespace loom::cli
