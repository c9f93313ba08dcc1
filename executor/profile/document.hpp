#pragma once
// The profile document: measured tables, the device and link figures derived from them, and
// where they came from ("provenance": "measured", DESIGN.md §5).

#include "core/json_reader.hpp"
#include "executor/profile/host.hpp"
#include "executor/profile/measured.hpp"

#include <optional>
#include <string>

namespace loom::exec::profile {

struct RunSettings {
  std::string name;
  bool quick = false;
  int threads = 1;
  int ranks = 2;
  // The GPU measured (the CUDA backend, one per rank); absent: the CPU was.
  std::optional<GpuInfo> gpu;
  // The CPU's load probe (tables timed with one rank busy); absent: not measured.
  std::optional<core::MeasuredLoad> load;
};

// A "loom-profile" v1 document that reads back through core::profile_from_json; each table row
// carries its spread.
core::Json profile_document(const Measured& measured, const HostInfo& host, const RunSettings& run);

}  // namespace loom::exec::profile
