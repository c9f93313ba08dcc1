// Profile documents in JSON: strict reading (every field typed and range-checked, unknown keys
// refused) and writing.

#include "core/error.hpp"
#include "core/kernel_bytes.hpp"
#include "core/profile.hpp"

#include <cmath>
#include <optional>

namespace loom::core {
namespace {

// Refuses a value outside its plausible range (core/profile.hpp); NaN fails both comparisons.
template <typename Number>
Number plausible_value(JsonObjectReader& reader, std::string_view key, Number value, const PlausibleRange& range) {
  if (!(double(value) >= range.min && double(value) <= range.max))
    throw InvalidInput("{}={} is not plausible; expected {}", reader.field(key), value, range.text);
  return value;
}

double positive(JsonObjectReader& reader, std::string_view key, const PlausibleRange& range) {
  if (!reader.has(key)) throw InvalidInput("{} is missing; expected a positive number", reader.field(key));
  const double value = reader.optional_number(key, 0.0);
  if (!(std::isfinite(value) && value > 0))
    throw InvalidInput("{}={} must be a positive number", reader.field(key), value);
  return plausible_value(reader, key, value, range);
}

double fraction(JsonObjectReader& reader, std::string_view key, double fallback) {
  const double value = reader.optional_number(key, fallback);
  if (!(value > 0 && value <= 1))
    throw InvalidInput("{}={} must be a fraction in (0, 1]", reader.field(key), value);
  return value;
}

// A fraction in (0, 1] that may be left out (then the caller's fallback applies where it is used).
std::optional<double> optional_fraction(JsonObjectReader& reader, std::string_view key) {
  if (!reader.has(key)) {
    reader.accept(key);
    return std::nullopt;
  }
  return fraction(reader, key, 1.0);
}

double non_negative(JsonObjectReader& reader, std::string_view key, double fallback, const PlausibleRange& range) {
  const double value = reader.optional_number(key, fallback);
  if (!(std::isfinite(value) && value >= 0))
    throw InvalidInput("{}={} must be a non-negative number", reader.field(key), value);
  return plausible_value(reader, key, value, range);
}

int64_t positive_int(JsonObjectReader& reader, std::string_view key, const PlausibleRange& range) {
  const int64_t value = reader.required_int(key);
  if (value <= 0) throw InvalidInput("{}={} must be a positive integer", reader.field(key), value);
  return plausible_value(reader, key, value, range);
}

// A sample's spread is informative only (not kept), but a value there must still be sane.
void read_sample_spread(JsonObjectReader& reader) { non_negative(reader, "spread", 0.0, plausible::kSpread); }

std::string one_of(JsonObjectReader& reader, std::string_view key, std::initializer_list<std::string_view> allowed) {
  const std::string value = reader.required_string(key);
  std::string list;
  for (std::string_view a : allowed) {
    if (a == value) return value;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw InvalidInput("{}=\"{}\" is not valid; expected one of {}", reader.field(key), text_excerpt(value), list);
}

const std::initializer_list<std::string_view> kLevels = {"intra-node", "inter-node"};
std::string kernel_name(JsonObjectReader& reader) {
  const std::string value = reader.required_string("kernel");
  std::string list;
  for (std::string_view known : kernel_bytes::kAllKernels) {
    if (known == value) return value;
    list += (list.empty() ? "" : ", ") + std::string(known);
  }
  throw InvalidInput("{}=\"{}\" is not a kernel the simulator charges; expected one of {}", reader.field("kernel"),
                     text_excerpt(value), list);
}

GemmLayout parse_layout(JsonObjectReader& reader) {
  if (!reader.has("layout")) return GemmLayout::nn;
  const std::string value = reader.required_string("layout");
  for (GemmLayout layout : {GemmLayout::nn, GemmLayout::nt, GemmLayout::tn})
    if (to_string(layout) == value) return layout;
  throw InvalidInput("{}=\"{}\" is not valid; expected one of nn, nt, tn", reader.field("layout"), text_excerpt(value));
}
const std::initializer_list<std::string_view> kCollectives = {"all_reduce", "all_gather", "reduce_scatter",
                                                              "broadcast", "send_recv"};

DeviceSpec device_from_json(const Json& document) {
  JsonObjectReader reader(document, "device");
  DeviceSpec device;
  device.name = reader.required_string("name");
  device.memory_bytes = positive_int(reader, "memory_bytes", plausible::kMemoryBytes);
  JsonObjectReader peaks(reader.required_object("peak_flops_per_s"), reader.field("peak_flops_per_s"));
  for (DType dtype : {DType::fp32, DType::bf16, DType::fp16}) {
    const std::string key(to_string(dtype));
    if (peaks.has(key)) device.peak_flops_per_s[dtype] = positive(peaks, key, plausible::kFlopsPerS);
    else peaks.accept(key);
  }
  peaks.finish();
  if (device.peak_flops_per_s.empty())
    throw InvalidInput("device.peak_flops_per_s is empty; expected a peak for fp32, bf16 or fp16");
  device.memory_bandwidth_bytes_per_s = positive(reader, "memory_bandwidth_bytes_per_s", plausible::kBandwidth);
  if (reader.has("host_cores")) device.host_cores = positive_int(reader, "host_cores", plausible::kHostCores);
  else reader.accept("host_cores");
  if (reader.has("threads_per_rank"))
    device.threads_per_rank = positive_int(reader, "threads_per_rank", plausible::kThreadsPerRank);
  else reader.accept("threads_per_rank");
  if (reader.has("compute_dtype"))
    device.compute_dtype = parse_dtype(reader.required_string("compute_dtype"), reader.field("compute_dtype"));
  else reader.accept("compute_dtype");
  if (reader.has("measured_load")) {
    JsonObjectReader load(reader.required_object("measured_load"), reader.field("measured_load"));
    MeasuredLoad m;
    m.tables_busy_ranks_per_node = positive_int(load, "tables_busy_ranks_per_node", plausible::kRanks);
    m.probe_busy_ranks_per_node = positive_int(load, "probe_busy_ranks_per_node", plausible::kRanks);
    if (m.probe_busy_ranks_per_node < 2)
      throw InvalidInput("{}={} must be 2 or more: the probe compares ranks busy at once with one alone",
                         load.field("probe_busy_ranks_per_node"), m.probe_busy_ranks_per_node);
    m.slowdown = positive(load, "slowdown", plausible::kLoadSlowdown);
    load.finish();
    device.measured_load = m;
  } else {
    reader.accept("measured_load");
  }
  if (reader.has("runtime_reserve_bytes")) {
    const int64_t reserve = reader.required_int("runtime_reserve_bytes");
    device.runtime_reserve_bytes = plausible_value(reader, "runtime_reserve_bytes", reserve, plausible::kReserveBytes);
  } else {
    reader.accept("runtime_reserve_bytes");
  }
  reader.finish();
  return device;
}

LinkSpec link_from_json(const Json& document, const std::string& path) {
  JsonObjectReader reader(document, path);
  LinkSpec link;
  link.level = one_of(reader, "level", kLevels);
  link.latency_s = non_negative(reader, "latency_s", 0.0, plausible::kLatency);
  link.bandwidth_bytes_per_s = positive(reader, "bandwidth_bytes_per_s", plausible::kBandwidth);
  link.bus_bandwidth_fraction = fraction(reader, "bus_bandwidth_fraction", 1.0);
  if (reader.has("eager_limit_bytes")) {
    const int64_t limit = reader.required_int("eager_limit_bytes");
    if (limit < 0) throw InvalidInput("{}={} must be 0 or more bytes", reader.field("eager_limit_bytes"), limit);
    link.eager_limit_bytes = plausible_value(reader, "eager_limit_bytes", limit, plausible::kEagerLimitBytes);
  } else {
    reader.accept("eager_limit_bytes");
  }
  link.justification = reader.optional_string("justification", "");
  reader.finish();
  return link;
}

EfficiencyModel efficiency_from_json(const Json& document) {
  JsonObjectReader reader(document, "efficiency");
  EfficiencyModel model;
  model.gemm_max_fraction = fraction(reader, "gemm_max_fraction", 1.0);
  model.gemm_half_saturation_flops =
      non_negative(reader, "gemm_half_saturation_flops", 0.0, plausible::kHalfSaturationFlops);
  model.memory_bandwidth_fraction = fraction(reader, "memory_bandwidth_fraction", 1.0);
  model.kernel_launch_s = non_negative(reader, "kernel_launch_s", 0.0, plausible::kKernelLaunch);
  model.flash_forward_fraction = optional_fraction(reader, "flash_forward_fraction");
  model.flash_backward_fraction = optional_fraction(reader, "flash_backward_fraction");
  model.justification = reader.optional_string("justification", "");
  reader.finish();
  return model;
}

OverlapModel overlap_from_json(const Json& document) {
  JsonObjectReader reader(document, "overlap");
  OverlapModel model;
  model.compute_slowdown = reader.optional_number("compute_slowdown", 1.0);
  if (!(model.compute_slowdown >= 1.0 && model.compute_slowdown <= 10.0))
    throw InvalidInput("{}={} is not plausible; expected 1 (no contention) to 10", reader.field("compute_slowdown"),
                       model.compute_slowdown);
  model.tp_comm_hidden_fraction = reader.optional_number("tp_comm_hidden_fraction", 0.0);
  if (!(model.tp_comm_hidden_fraction >= 0.0 && model.tp_comm_hidden_fraction <= 1.0))
    throw InvalidInput("{}={} must be a fraction in [0, 1]", reader.field("tp_comm_hidden_fraction"),
                       model.tp_comm_hidden_fraction);
  model.justification = reader.optional_string("justification", "");
  reader.finish();
  return model;
}

// An array of objects under `key` of `reader`'s object, each read by `read_item` (which need not
// call finish()).
template <typename ReadItem>
void read_object_array(JsonObjectReader& reader, const Json& object, std::string_view key, ReadItem read_item) {
  reader.accept(key);
  auto it = object.find(key);
  if (it == object.end()) throw InvalidInput("{} is missing; expected an array", reader.field(key));
  if (!it->is_array()) throw InvalidInput("{}: expected an array, got {}", reader.field(key), json_type_name(*it));
  for (size_t i = 0; i < it->size(); ++i) {
    JsonObjectReader item((*it)[i], fmt::format("{}[{}]", reader.field(key), i));
    read_item(item);
    item.finish();
  }
}

double finite_number(JsonObjectReader& reader, std::string_view key) {
  if (!reader.has(key)) throw InvalidInput("{} is missing; expected a number", reader.field(key));
  const double value = reader.optional_number(key, 0.0);
  if (!std::isfinite(value)) throw InvalidInput("{}={} must be a finite number", reader.field(key), value);
  return value;
}

TableTimeScales table_time_scales_from_json(const Json& document) {
  JsonObjectReader reader(document, "calibration.table_time_scales");
  TableTimeScales scales;
  auto scale = [&](JsonObjectReader& r, std::string_view key) {
    if (!r.has(key)) {
      r.accept(key);
      return 1.0;
    }
    return plausible_value(r, key, finite_number(r, key), plausible::kTableTimeScale);
  };
  scales.gemm = scale(reader, "gemm");
  scales.attention = scale(reader, "attention");
  scales.kernels = scale(reader, "kernels");
  if (reader.has("collectives")) {
    JsonObjectReader levels(reader.required_object("collectives"), reader.field("collectives"));
    for (std::string_view level : kLevels)
      if (levels.has(level)) scales.collectives_by_level[std::string(level)] = scale(levels, level);
    levels.finish();
  } else {
    reader.accept("collectives");
  }
  reader.finish();
  return scales;
}

Calibration calibration_from_json(const Json& document) {
  JsonObjectReader reader(document, "calibration");
  Calibration calibration;
  calibration.base_profile = reader.required_string("base_profile");
  if (calibration.base_profile.empty())
    throw InvalidInput("calibration.base_profile is empty; expected the name of the profile calibrated");
  read_object_array(reader, document, "fitted_runs", [&](JsonObjectReader& r) {
    CalibrationRun run;
    run.run_id = r.required_int("run_id");
    if (run.run_id <= 0) throw InvalidInput("{}={} must be a positive run id", r.field("run_id"), run.run_id);
    run.plan = r.optional_string("plan", "");
    run.source = r.optional_string("source", "");
    calibration.fitted_runs.push_back(run);
  });
  if (calibration.fitted_runs.empty())
    throw InvalidInput("calibration.fitted_runs is empty; expected the runs the profile was fitted to");
  calibration.store = reader.optional_string("store", "");
  calibration.date = reader.optional_string("date", "");
  read_object_array(reader, document, "parameters", [&](JsonObjectReader& r) {
    CalibratedParameter parameter;
    parameter.name = r.required_string("name");
    if (parameter.name.empty()) throw InvalidInput("{} is empty; expected the parameter's name", r.field("name"));
    parameter.unit = r.optional_string("unit", "");
    parameter.before = finite_number(r, "before");
    parameter.after = finite_number(r, "after");
    parameter.uncertainty = r.nullable_number("uncertainty");
    if (parameter.uncertainty && !(std::isfinite(*parameter.uncertainty) && *parameter.uncertainty >= 0))
      throw InvalidInput("{}={} must be a non-negative number or null", r.field("uncertainty"), *parameter.uncertainty);
    if (!r.has("determined")) throw InvalidInput("{} is missing; expected true or false", r.field("determined"));
    parameter.determined = r.optional_bool("determined", false);
    parameter.reason = r.optional_string("reason", "");
    calibration.parameters.push_back(parameter);
  });
  if (reader.has("table_time_scales"))
    calibration.table_time_scales = table_time_scales_from_json(reader.required_object("table_time_scales"));
  else reader.accept("table_time_scales");
  reader.finish();
  return calibration;
}

Json to_json(const Calibration& calibration) {
  Json runs = Json::array();
  for (const CalibrationRun& run : calibration.fitted_runs)
    runs.push_back({{"run_id", run.run_id}, {"plan", run.plan}, {"source", run.source}});
  Json parameters = Json::array();
  for (const CalibratedParameter& p : calibration.parameters) {
    parameters.push_back({{"name", p.name},
                          {"unit", p.unit},
                          {"before", p.before},
                          {"after", p.after},
                          {"uncertainty", p.uncertainty ? Json(*p.uncertainty) : Json(nullptr)},
                          {"determined", p.determined}});
    if (!p.reason.empty()) parameters.back()["reason"] = p.reason;
  }
  const TableTimeScales& t = calibration.table_time_scales;
  Json scales = {{"gemm", t.gemm}, {"attention", t.attention}, {"kernels", t.kernels}};
  if (!t.collectives_by_level.empty()) scales["collectives"] = t.collectives_by_level;
  return {{"base_profile", calibration.base_profile},
          {"fitted_runs", runs},
          {"store", calibration.store},
          {"date", calibration.date},
          {"parameters", parameters},
          {"table_time_scales", scales}};
}

// Reads an array of objects under `key`; an empty array is an error (a table with no rows
// cannot be interpolated and is almost certainly a broken measurement).
template <typename ReadRow>
void read_rows(const Json& tables, std::string_view key, ReadRow read_row) {
  auto it = tables.find(key);
  if (it == tables.end()) return;
  if (!it->is_array()) throw InvalidInput("tables.{}: expected an array, got {}", key, json_type_name(*it));
  if (it->empty()) throw InvalidInput("tables.{} is empty; remove it or give at least one sample", key);
  for (size_t i = 0; i < it->size(); ++i) {
    JsonObjectReader reader((*it)[i], fmt::format("tables.{}[{}]", key, i));
    read_row(reader);
    reader.finish();
  }
}

ProfileTables tables_from_json(const Json& document) {
  JsonObjectReader check(document, "tables");
  for (const char* key : {"gemm", "attention", "kernels", "collectives"}) check.accept(key);
  check.finish();
  ProfileTables tables;
  read_rows(document, "gemm", [&](JsonObjectReader& r) {
    GemmSample s;
    s.m = positive_int(r, "m", plausible::kDimension);
    s.n = positive_int(r, "n", plausible::kDimension);
    s.k = positive_int(r, "k", plausible::kDimension);
    s.dtype = parse_dtype(r.required_string("dtype"), r.field("dtype"));
    s.layout = parse_layout(r);
    s.time_s = positive(r, "time_s", plausible::kSampleTime);
    read_sample_spread(r);
    tables.gemm.push_back(s);
  });
  read_rows(document, "attention", [&](JsonObjectReader& r) {
    AttentionSample s;
    if (r.has("backend")) s.backend = parse_attention_backend(r.required_string("backend"), r.field("backend"));
    else r.accept("backend");
    s.batch = positive_int(r, "batch", plausible::kDimension);
    s.seq = positive_int(r, "seq", plausible::kDimension);
    s.head_dim = positive_int(r, "head_dim", plausible::kDimension);
    s.dtype = parse_dtype(r.required_string("dtype"), r.field("dtype"));
    s.backward = one_of(r, "pass", {"forward", "backward"}) == "backward";
    s.time_s = positive(r, "time_s", plausible::kSampleTime);
    read_sample_spread(r);
    tables.attention.push_back(s);
  });
  read_rows(document, "kernels", [&](JsonObjectReader& r) {
    KernelSample s;
    s.kernel = kernel_name(r);
    s.bytes = positive_int(r, "bytes", plausible::kSampleBytes);
    s.time_s = positive(r, "time_s", plausible::kSampleTime);
    read_sample_spread(r);
    tables.kernels.push_back(s);
  });
  read_rows(document, "collectives", [&](JsonObjectReader& r) {
    CollectiveSample s;
    s.collective = one_of(r, "collective", kCollectives);
    s.level = one_of(r, "level", kLevels);
    s.ranks = positive_int(r, "ranks", plausible::kRanks);
    s.bytes = positive_int(r, "bytes", plausible::kSampleBytes);
    s.time_s = positive(r, "time_s", plausible::kSampleTime);
    read_sample_spread(r);
    tables.collectives.push_back(s);
  });
  return tables;
}

Profile read_profile(const Json& document) {
  JsonObjectReader reader(document, "");
  const std::string format = reader.required_string("format");
  if (format != kProfileFormat)
    throw InvalidInput("format=\"{}\" is not a Loom profile; expected \"{}\"", format, kProfileFormat);
  const int64_t version = reader.required_int("version");
  if (version != kProfileVersion)
    throw InvalidInput("profile version {} is not supported; expected {}", version, kProfileVersion);
  Profile profile;
  profile.name = reader.required_string("name");
  if (profile.name.empty()) throw InvalidInput("name is empty; expected the profile's name");
  profile.provenance = one_of(reader, "provenance", {"measured", "datasheet", "calibrated"});
  profile.description = reader.optional_string("description", "");
  profile.source = reader.optional_string("source", "");
  profile.device = device_from_json(reader.required_object("device"));
  reader.accept("links");
  if (reader.has("links")) {
    const Json& links = document.at("links");
    if (!links.is_array()) throw InvalidInput("links: expected an array, got {}", json_type_name(links));
    for (size_t i = 0; i < links.size(); ++i)
      profile.links.push_back(link_from_json(links[i], fmt::format("links[{}]", i)));
  }
  for (size_t i = 0; i < profile.links.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (profile.links[i].level == profile.links[j].level)
        throw InvalidInput("links[{}].level=\"{}\" repeats links[{}]; expected one entry per level", i,
                           profile.links[i].level, j);
  if (!profile.link("intra-node"))
    throw InvalidInput("links has no intra-node level; expected one with its bandwidth_bytes_per_s");
  if (reader.has("efficiency")) profile.efficiency = efficiency_from_json(reader.required_object("efficiency"));
  else reader.accept("efficiency");
  if (reader.has("overlap")) profile.overlap = overlap_from_json(reader.required_object("overlap"));
  else reader.accept("overlap");
  if (reader.has("tables")) profile.tables = tables_from_json(reader.required_object("tables"));
  else reader.accept("tables");
  if (reader.has("calibration")) profile.calibration = calibration_from_json(reader.required_object("calibration"));
  else reader.accept("calibration");
  if (profile.calibration && profile.provenance != "calibrated")
    throw InvalidInput("calibration is given but provenance=\"{}\"; expected provenance \"calibrated\" with it",
                       profile.provenance);
  if (!profile.calibration && profile.provenance == "calibrated")
    throw InvalidInput("provenance=\"calibrated\" needs the calibration section (base_profile, fitted_runs, "
                       "parameters) that `loom calibrate` writes");
  reader.finish();
  return profile;
}

}  // namespace

Profile profile_from_json(const Json& document, std::string_view source) {
  try {
    return read_profile(document);
  } catch (const InvalidInput& e) {
    throw InvalidInput("profile {}: {}", source, e.what());
  }
}

Json to_json(const Profile& profile) {
  Json peaks = Json::object();
  for (const auto& [dtype, flops] : profile.device.peak_flops_per_s) peaks[std::string(to_string(dtype))] = flops;
  Json links = Json::array();
  for (const LinkSpec& link : profile.links) {
    links.push_back({{"level", link.level},
                     {"latency_s", link.latency_s},
                     {"bandwidth_bytes_per_s", link.bandwidth_bytes_per_s},
                     {"bus_bandwidth_fraction", link.bus_bandwidth_fraction}});
    if (link.eager_limit_bytes) links.back()["eager_limit_bytes"] = *link.eager_limit_bytes;
    links.back()["justification"] = link.justification;
  }
  const EfficiencyModel& e = profile.efficiency;
  Json out = {{"format", kProfileFormat},
              {"version", kProfileVersion},
              {"name", profile.name},
              {"provenance", profile.provenance},
              {"description", profile.description},
              {"source", profile.source},
              {"device",
               {{"name", profile.device.name},
                {"memory_bytes", profile.device.memory_bytes},
                {"peak_flops_per_s", peaks},
                {"memory_bandwidth_bytes_per_s", profile.device.memory_bandwidth_bytes_per_s}}},
              {"links", links},
              {"efficiency",
               {{"gemm_max_fraction", e.gemm_max_fraction},
                {"gemm_half_saturation_flops", e.gemm_half_saturation_flops},
                {"memory_bandwidth_fraction", e.memory_bandwidth_fraction},
                {"kernel_launch_s", e.kernel_launch_s},
                {"justification", e.justification}}}};
  if (e.flash_forward_fraction) out["efficiency"]["flash_forward_fraction"] = *e.flash_forward_fraction;
  if (e.flash_backward_fraction) out["efficiency"]["flash_backward_fraction"] = *e.flash_backward_fraction;
  const OverlapModel& o = profile.overlap;
  out["overlap"] = {{"compute_slowdown", o.compute_slowdown},
                    {"tp_comm_hidden_fraction", o.tp_comm_hidden_fraction},
                    {"justification", o.justification}};
  Json& device = out["device"];
  if (profile.device.host_cores > 0) {
    device["host_cores"] = profile.device.host_cores;
    device["threads_per_rank"] = profile.device.threads_per_rank;
  }
  if (profile.device.compute_dtype) device["compute_dtype"] = to_string(*profile.device.compute_dtype);
  if (const std::optional<MeasuredLoad>& load = profile.device.measured_load)
    device["measured_load"] = {{"tables_busy_ranks_per_node", load->tables_busy_ranks_per_node},
                               {"probe_busy_ranks_per_node", load->probe_busy_ranks_per_node},
                               {"slowdown", load->slowdown}};
  if (profile.device.runtime_reserve_bytes) device["runtime_reserve_bytes"] = *profile.device.runtime_reserve_bytes;
  Json tables = Json::object();
  auto& gemm = tables["gemm"] = Json::array();
  for (const GemmSample& s : profile.tables.gemm)
    gemm.push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"dtype", to_string(s.dtype)}, {"layout", to_string(s.layout)},
                    {"time_s", s.time_s}});
  auto& attention = tables["attention"] = Json::array();
  for (const AttentionSample& s : profile.tables.attention)
    attention.push_back({{"backend", to_string(s.backend)}, {"batch", s.batch}, {"seq", s.seq}, {"head_dim", s.head_dim}, {"dtype", to_string(s.dtype)},
                         {"pass", s.backward ? "backward" : "forward"}, {"time_s", s.time_s}});
  auto& kernels = tables["kernels"] = Json::array();
  for (const KernelSample& s : profile.tables.kernels)
    kernels.push_back({{"kernel", s.kernel}, {"bytes", s.bytes}, {"time_s", s.time_s}});
  auto& collectives = tables["collectives"] = Json::array();
  for (const CollectiveSample& s : profile.tables.collectives)
    collectives.push_back({{"collective", s.collective}, {"level", s.level}, {"ranks", s.ranks},
                           {"bytes", s.bytes}, {"time_s", s.time_s}});
  // Empty tables are refused on reading, so only non-empty ones are written.
  for (const char* key : {"gemm", "attention", "kernels", "collectives"})
    if (tables[key].empty()) tables.erase(key);
  if (!tables.empty()) out["tables"] = tables;
  if (profile.calibration) out["calibration"] = to_json(*profile.calibration);
  return out;
}

}  // namespace loom::core
