#include "core/plan_json.hpp"

#include "core/checked_arithmetic.hpp"
#include "core/error.hpp"
#include "core/json_reader.hpp"
#include "core/limits.hpp"

namespace loom::core {


Json to_json(const ModelSpec& model) {
  // Writes what the model gives, so that a plan reads back as it was written: the vocabulary in
  // the derived form (vocab-size, make-vocab-size-divisible-by) or pinned (padded-vocab-size), and
  // num-query-groups only when given. Older plans keep their keys, in their order.
  Json out = {
      {"name", model.name},
      {"num-layers", model.num_layers},
      {"hidden-size", model.hidden_size},
      {"num-attention-heads", model.num_attention_heads},
  };
  if (model.num_query_groups) out["num-query-groups"] = *model.num_query_groups;
  out["ffn-hidden-size"] = model.ffn_hidden_size;
  if (model.vocab_size) out["vocab-size"] = *model.vocab_size;
  if (model.vocab_size && !model.padded_vocab_size)
    out["make-vocab-size-divisible-by"] = model.make_vocab_size_divisible_by;
  if (model.padded_vocab_size) out["padded-vocab-size"] = *model.padded_vocab_size;
  out["seq-length"] = model.seq_length;
  out["untie-embeddings-and-output-weights"] = model.untie_embeddings_and_output_weights;
  out["swiglu"] = model.activation == Activation::swiglu;
  out["normalization"] = to_string(model.normalization);
  out["position-embedding-type"] = to_string(model.position_embedding);
  if (model.position_embedding == PositionEmbedding::rope) out["rotary-base"] = model.rotary_base;
  out["add-bias-linear"] = model.add_bias_linear;
  return out;
}

Json to_json(const TrainSpec& training) {
  return {
      {"global-batch-size", training.global_batch_size},
      {"dtype", to_string(training.dtype)},
      {"lr", training.lr},
      {"min-lr", training.min_lr},
      {"lr-warmup-iters", training.lr_warmup_iters},
      {"train-iters", training.train_iters},
      {"weight-decay", training.weight_decay},
      {"clip-grad", training.clip_grad},
      {"adam-beta1", training.adam_beta1},
      {"adam-beta2", training.adam_beta2},
      {"adam-eps", training.adam_eps},
      {"seed", training.seed},
  };
}

Json to_json(const ClusterSpec& cluster) {
  Json out = Json::object();
  if (cluster.mixed()) {
    Json groups = Json::array();
    for (const DeviceGroup& group : cluster.groups)
      groups.push_back(
          {{"nodes", group.nodes}, {"devices-per-node", group.devices_per_node}, {"profile", group.profile}});
    out["groups"] = std::move(groups);
  } else {
    out = {
        {"nodes", cluster.nodes},
        {"devices-per-node", cluster.devices_per_node},
        {"profile", cluster.profile},
    };
  }
  out["price-per-device-hour"] =
      cluster.price_per_device_hour ? Json(*cluster.price_per_device_hour) : Json(nullptr);
  return out;
}

Json to_json(const ParallelPlan& parallel) {
  Json out = {
      {"tensor-model-parallel-size", parallel.tensor_parallel},
      {"pipeline-model-parallel-size", parallel.pipeline_parallel},
      {"micro-batch-size", parallel.micro_batch_size},
      {"schedule", to_string(parallel.schedule)},
      {"recompute-granularity", to_string(parallel.recompute)},
      {"sequence-parallel", parallel.sequence_parallel},
      {"use-distributed-optimizer", parallel.distributed_optimizer},
  };
  out["num-layers-per-virtual-pipeline-stage"] =
      parallel.layers_per_virtual_stage ? Json(*parallel.layers_per_virtual_stage) : Json(nullptr);
  // Written only when set, so that plans of an even split read as before.
  if (parallel.virtual_stages_per_rank) out["num-virtual-stages-per-pipeline-rank"] = *parallel.virtual_stages_per_rank;
  if (!parallel.pipeline_layer_split.empty()) out["pipeline-layer-split"] = parallel.pipeline_layer_split;
  if (parallel.first_stage_layers) out["decoder-first-pipeline-num-layers"] = *parallel.first_stage_layers;
  if (parallel.last_stage_layers) out["decoder-last-pipeline-num-layers"] = *parallel.last_stage_layers;
  if (parallel.account_for_embedding) out["account-for-embedding-in-pipeline-split"] = true;
  if (parallel.account_for_loss) out["account-for-loss-in-pipeline-split"] = true;
  out["attention-backend"] = to_string(parallel.attention_backend);
  out["overlap-grad-reduce"] = parallel.overlap_grad_reduce;
  out["overlap-param-gather"] = parallel.overlap_param_gather;
  out["tp-comm-overlap"] = parallel.tp_comm_overlap;
  out["ddp-bucket-size"] = parallel.ddp_bucket_size ? Json(*parallel.ddp_bucket_size) : Json(nullptr);
  return out;
}

Json to_json(const Plan& plan) {
  return {
      {"format", kPlanFormat},       {"version", kPlanVersion},
      {"model", to_json(plan.model)}, {"training", to_json(plan.training)},
      {"cluster", to_json(plan.cluster)}, {"parallel", to_json(plan.parallel)},
  };
}

namespace {

// vocab-size with make-vocab-size-divisible-by (derived per tp, as Megatron does), or a pinned
// padded-vocab-size, or both (the pin holds; vocab-size counts the real tokens among its rows).
void read_vocabulary(JsonObjectReader& reader, ModelSpec& model) {
  if (!reader.has("vocab-size") && !reader.has("padded-vocab-size"))
    throw InvalidInput("{} is missing: give the tokenizer's vocabulary (padded for each tensor-model-parallel-size "
                       "to a multiple of make-vocab-size-divisible-by, default {}), or pin {}",
                       reader.field("vocab-size"), kDefaultMakeVocabSizeDivisibleBy, reader.field("padded-vocab-size"));
  if (reader.has("make-vocab-size-divisible-by") && reader.has("padded-vocab-size"))
    throw InvalidInput("{} has no effect when {} is given: remove one (the pinned size is used as it is)",
                       reader.field("make-vocab-size-divisible-by"), reader.field("padded-vocab-size"));
  model.vocab_size = reader.nullable_int("vocab-size");
  model.make_vocab_size_divisible_by =
      reader.optional_int("make-vocab-size-divisible-by", kDefaultMakeVocabSizeDivisibleBy);
  model.padded_vocab_size = reader.nullable_int("padded-vocab-size");
}

}  // namespace

ModelSpec model_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  ModelSpec model;
  model.name = reader.optional_string("name", "");
  model.num_layers = reader.required_int("num-layers");
  model.hidden_size = reader.required_int("hidden-size");
  model.num_attention_heads = reader.required_int("num-attention-heads");
  model.num_query_groups = reader.nullable_int("num-query-groups");
  // Megatron's default, 4 × hidden; a hidden size whose four-fold passes int64 is refused here,
  // before validate() would name it, because the default itself cannot be computed.
  const std::optional<int64_t> default_ffn_hidden_size = checked_multiply(int64_t{4}, model.hidden_size);
  if (!default_ffn_hidden_size)
    throw InvalidInput("{}: {} is too large; expected a hidden size whose 4-fold (the default ffn-hidden-size) fits "
                       "in 64 bits",
                       reader.field("hidden-size"), model.hidden_size);
  model.ffn_hidden_size = reader.optional_int("ffn-hidden-size", *default_ffn_hidden_size);
  read_vocabulary(reader, model);
  model.seq_length = reader.required_int("seq-length");
  model.untie_embeddings_and_output_weights =
      reader.optional_bool("untie-embeddings-and-output-weights", false);
  model.activation = reader.optional_bool("swiglu", false) ? Activation::swiglu : Activation::gelu;
  model.normalization = parse_normalization(reader.optional_string("normalization", "LayerNorm"),
                                            reader.field("normalization"));
  model.position_embedding = parse_position_embedding(
      reader.optional_string("position-embedding-type", "learned_absolute"),
      reader.field("position-embedding-type"));
  model.add_bias_linear = reader.optional_bool("add-bias-linear", true);
  if (reader.has("rotary-base") && model.position_embedding != PositionEmbedding::rope)
    throw InvalidInput("{} has no effect with position-embedding-type {}: remove it, or use rope",
                       reader.field("rotary-base"), to_string(model.position_embedding));
  model.rotary_base = reader.optional_int("rotary-base", kDefaultRotaryBase);
  reader.finish();
  return model;
}

TrainSpec train_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  TrainSpec training;
  training.global_batch_size = reader.required_int("global-batch-size");
  training.dtype = parse_dtype(reader.optional_string("dtype", "bf16"), reader.field("dtype"));
  training.lr = reader.optional_number("lr", training.lr);
  training.min_lr = reader.optional_number("min-lr", training.min_lr);
  training.lr_warmup_iters = reader.optional_int("lr-warmup-iters", training.lr_warmup_iters);
  training.train_iters = reader.optional_int("train-iters", training.train_iters);
  training.weight_decay = reader.optional_number("weight-decay", training.weight_decay);
  training.clip_grad = reader.optional_number("clip-grad", training.clip_grad);
  training.adam_beta1 = reader.optional_number("adam-beta1", training.adam_beta1);
  training.adam_beta2 = reader.optional_number("adam-beta2", training.adam_beta2);
  training.adam_eps = reader.optional_number("adam-eps", training.adam_eps);
  training.seed = reader.optional_int("seed", training.seed);
  reader.finish();
  return training;
}

ClusterSpec cluster_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  ClusterSpec cluster;
  if (const Json* groups = reader.optional_array("groups", size_t(limits::kMaxDeviceGroups))) {
    for (const char* key : {"nodes", "devices-per-node", "profile"})
      if (reader.has(key))
        throw InvalidInput("{} cannot be given beside {}: a mixed cluster gives nodes, devices-per-node and profile "
                           "in each group",
                           reader.field(key), reader.field("groups"));
    for (size_t g = 0; g < groups->size(); ++g) {
      const std::string group_path = fmt::format("{}[{}]", reader.field("groups"), g);
      if (!(*groups)[g].is_object())
        throw InvalidInput("{}: expected an object with nodes, devices-per-node and profile, got {}", group_path,
                           json_excerpt((*groups)[g]));
      JsonObjectReader group_reader((*groups)[g], group_path);
      DeviceGroup group;
      group.nodes = group_reader.required_int("nodes");
      group.devices_per_node = group_reader.required_int("devices-per-node");
      group.profile = group_reader.required_string("profile");
      group_reader.finish();
      cluster.groups.push_back(std::move(group));
    }
    if (cluster.groups.empty())
      throw InvalidInput("{} is empty; list 2 or more device groups, or give nodes, devices-per-node and profile",
                         reader.field("groups"));
    cluster.summarise_groups();
  } else {
    cluster.nodes = reader.required_int("nodes");
    cluster.devices_per_node = reader.required_int("devices-per-node");
    cluster.profile = reader.required_string("profile");
  }
  cluster.price_per_device_hour = reader.nullable_number("price-per-device-hour");
  reader.finish();
  return cluster;
}

ParallelPlan parallel_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  if (reader.has("data-parallel-size"))
    throw InvalidInput("{} is derived as devices / (tensor-model-parallel-size × "
                       "pipeline-model-parallel-size) and must not be given",
                       reader.field("data-parallel-size"));
  ParallelPlan parallel;
  parallel.tensor_parallel = reader.required_int("tensor-model-parallel-size");
  parallel.pipeline_parallel = reader.required_int("pipeline-model-parallel-size");
  parallel.layers_per_virtual_stage = reader.nullable_int("num-layers-per-virtual-pipeline-stage");
  parallel.virtual_stages_per_rank = reader.nullable_int("num-virtual-stages-per-pipeline-rank");
  // One entry per virtual stage; a stage holds at least one layer except the first and last.
  parallel.pipeline_layer_split =
      reader.optional_int_array("pipeline-layer-split", size_t(limits::kMaxLayers) + 2);
  // An empty list would read as "no split" (the even one): more likely a mistake than meant.
  if (parallel.pipeline_layer_split.empty() && reader.has("pipeline-layer-split") &&
      !document.at("pipeline-layer-split").is_null())
    throw InvalidInput("{} is empty; expected the layers of every pipeline stage (or remove it for an even split)",
                       reader.field("pipeline-layer-split"));
  parallel.first_stage_layers = reader.nullable_int("decoder-first-pipeline-num-layers");
  parallel.last_stage_layers = reader.nullable_int("decoder-last-pipeline-num-layers");
  parallel.account_for_embedding = reader.optional_bool("account-for-embedding-in-pipeline-split", false);
  parallel.account_for_loss = reader.optional_bool("account-for-loss-in-pipeline-split", false);
  parallel.micro_batch_size = reader.required_int("micro-batch-size");
  parallel.schedule = parse_schedule(reader.optional_string("schedule", "1f1b"), reader.field("schedule"));
  parallel.recompute = parse_recompute(reader.optional_string("recompute-granularity", "none"),
                                       reader.field("recompute-granularity"));
  parallel.sequence_parallel = reader.optional_bool("sequence-parallel", false);
  parallel.distributed_optimizer = reader.optional_bool("use-distributed-optimizer", false);
  // Absent in plans written before Loom knew them: the old behaviour (unfused attention, no
  // overlap), which `loom show` states.
  parallel.attention_backend = parse_attention_backend(reader.optional_string("attention-backend", "unfused"),
                                                       reader.field("attention-backend"));
  parallel.overlap_grad_reduce = reader.optional_bool("overlap-grad-reduce", false);
  parallel.overlap_param_gather = reader.optional_bool("overlap-param-gather", false);
  parallel.tp_comm_overlap = reader.optional_bool("tp-comm-overlap", false);
  parallel.ddp_bucket_size = reader.nullable_int("ddp-bucket-size");
  reader.finish();
  return parallel;
}

void derive_data_parallel(Plan& plan) {
  plan.cluster.validate();  // bounds the device count, so the products below cannot overflow
  const int64_t devices = plan.cluster.world_size();
  const int64_t tp = plan.parallel.tensor_parallel, pp = plan.parallel.pipeline_parallel;
  const bool splits = tp > 0 && pp > 0 && tp <= devices && pp <= devices && devices % (tp * pp) == 0;
  plan.parallel.data_parallel = splits ? devices / (tp * pp) : 0;
}

Plan plan_from_json(const Json& document) {
  JsonObjectReader reader(document, "");
  const std::string format = reader.optional_string("format", std::string(kPlanFormat));
  if (format != kPlanFormat)
    throw InvalidInput("format=\"{}\" is not a Loom plan; expected \"{}\"", text_excerpt(format), kPlanFormat);
  const int64_t version = reader.optional_int("version", kPlanVersion);
  if (version != kPlanVersion)
    throw InvalidInput("version={} is not supported; this Loom reads plan version {}", version,
                       kPlanVersion);
  Plan plan;
  plan.model = model_from_json(reader.required_object("model"));
  plan.training = train_from_json(reader.required_object("training"));
  plan.cluster = cluster_from_json(reader.required_object("cluster"));
  plan.parallel = parallel_from_json(reader.required_object("parallel"));
  reader.finish();
  derive_data_parallel(plan);
  plan.validate();
  return plan;
}

Plan read_plan_text(std::string_view text, std::string_view source) {
  return plan_from_json(parse_json_text(text, source));
}

Plan read_plan_file(const std::string& path) {
  return read_plan_text(read_text_file(path), path == "-" ? "<stdin>" : path);
}

ModelSpec read_model_file(const std::string& path) {
  const std::string text = read_text_file(path);
  ModelSpec model = model_from_json(parse_json_text(text, path), "model");
  model.validate();
  return model;
}

}  // namespace loom::core
