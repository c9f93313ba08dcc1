// `loom calibrate --db DB --profile BASE --runs 3,5,8 --out MY-CLUSTER.json`: fits the base
// profile's free parameters to measured runs (sim::calibrate) and writes the calibrated profile;
// `--holdout K` leaves K runs out and reports the error on them before and after, the figure to
// trust. This file reads the options and formats the result.

#include "cli/command.hpp"
#include "cli/format.hpp"
#include "cli/output_targets.hpp"
#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/store.hpp"
#include "simulator/calibration.hpp"
#include "simulator/run_comparison.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <iostream>
#include <set>

namespace loom::cli {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

std::vector<int64_t> parse_run_ids(const std::string& text) {
  if (text.empty()) throw InvalidInput("--runs is empty; expected run ids separated by commas (see `loom runs`)");
  std::vector<int64_t> ids;
  std::set<int64_t> seen;
  for (const std::string& part : split_commas(text)) {
    int64_t id = 0;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), id);
    if (part.empty() || error != std::errc() || end != part.data() + part.size() || id <= 0)
      throw InvalidInput("--runs={}: '{}' is not a run id; expected positive integers separated by commas",
                         core::text_excerpt(text), core::text_excerpt(part));
    if (!seen.insert(id).second) throw InvalidInput("--runs={} names run {} twice; expected each run once", text, id);
    ids.push_back(id);
  }
  return ids;
}

std::vector<std::string> parse_parameters(const std::string& text) {
  if (text.empty()) return {};
  std::vector<std::string> names = split_commas(text);
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (name.empty())
      throw InvalidInput("--parameters={} has an empty name; expected names separated by commas",
                         core::text_excerpt(text));
    if (!seen.insert(name).second)
      throw InvalidInput("--parameters names {} twice; expected each parameter once", core::text_excerpt(name));
  }
  return names;
}

std::string seconds(double s) {
  if (s >= 1) return fmt::format("{:.3f} s", s);
  if (s >= 1e-3) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.2f} µs", s * 1e6);
}

// `digits` significant digits: 4 for values, 2 for their uncertainties.
std::string quantity(double value, const std::string& unit, int digits = 4) {
  if (unit == "bytes") return human_bytes(value);
  if (unit == "s") return seconds(value);
  if (unit == "FLOP") return value == 0 ? "0 FLOP" : human_si(value, "FLOP");
  return fmt::format("{:.{}g}{}", value, digits, unit == "×" ? "×" : "");
}

std::string with_error(double predicted, double measured, const std::string& text) {
  return fmt::format("{} ({:+.1f} %)", text, sim::error_percent(predicted, measured));
}

core::Json or_null(const std::optional<double>& v) { return v ? core::Json(*v) : core::Json(nullptr); }

}  // namespace

Command add_calibrate_command(CLI::App& parent) {
  struct Options {
    std::string db = "loom.db";
    std::string profile;
    std::string runs;
    std::string parameters;
    int64_t holdout = 0;
    std::string out;
    std::string name;
    std::string format = "table";
  };
  auto o = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand(
      "calibrate", "Fit a profile's efficiency parameters to measured runs, with the error on held-out runs");
  app->add_option("--db", o->db, "SQLite store holding the runs")->capture_default_str();
  app->add_option("--profile", o->profile, "Base profile: a built-in name or a profile JSON file")->required();
  app->add_option("--runs", o->runs, "Completed runs to fit, by id, separated by commas (see `loom runs`)")->required();
  app->add_option("--parameters", o->parameters,
                  "Fit only these parameters, separated by commas; each must be determined by the runs "
                  "[default: every parameter the runs determine]");
  app->add_option("--holdout", o->holdout,
                  "Leave K runs out of the fit (spread over --runs) and report the step-time error on them")
      ->capture_default_str();
  app->add_option("--out", o->out, "Calibrated profile JSON to write")->required();
  app->add_option("--name", o->name, "Name of the calibrated profile [default: the --out file's name]");
  add_format_option(*app, o->format);
  app->footer(
      "Example:\n  loom calibrate --db loom.db --profile h100-80gb-dgx --runs 3,5,8,9 --holdout 1 --out my-cluster.json\n"
      "  loom simulate plan.json --profile my-cluster.json");
  return {app, [o] {
            const std::vector<int64_t> ids = parse_run_ids(o->runs);
            sim::CalibrationOptions options;
            options.parameters = parse_parameters(o->parameters);
            options.holdout = o->holdout;
            if (o->holdout < 0)
              throw InvalidInput("--holdout={}: expected a count of runs to leave out, 0 or more", o->holdout);
            if (o->holdout > 0 && o->holdout > int64_t(ids.size()) - 2)
              throw InvalidInput("--holdout={} with {} run{} leaves fewer than 2 to fit; expected 0 to {}", o->holdout,
                                 ids.size(), ids.size() == 1 ? "" : "s", std::max<int64_t>(0, int64_t(ids.size()) - 2));
            if (o->out == core::kStandardOutputName && o->format == "table")
              throw InvalidInput("--out=- with the table on standard output would mix them; write the profile to a "
                                 "file, or use --format json");
            const std::vector<std::filesystem::path> inputs = {o->db, profile_file_input(o->profile)};
            // The base profile first: a --profile that is no profile (a directory, say) is the error to
            // report, not the output's place beside it.
            const core::Profile base = core::resolve_profile(o->profile);
            core::check_output_target(o->out, inputs);
            core::Store store = core::Store::open(o->db, core::Store::OpenMode::existing);
            const std::vector<sim::MeasuredRun> runs = sim::measured_runs(store, ids);
            sim::CalibrationResult result = sim::calibrate(base, runs, options);

            core::Profile& profile = result.profile;
            profile.name = !o->name.empty() ? o->name
                           : o->out == core::kStandardOutputName
                               ? profile.name
                               : std::filesystem::path(o->out).stem().string();
            if (profile.name.empty()) profile.name = base.name + "-calibrated";
            profile.calibration->store = o->db;
            if (o->out != core::kStandardOutputName)
              core::write_output_file(o->out, core::to_json(profile).dump(2) + "\n", inputs);
            // The store keeps the profile beside the runs it was fitted to (the GUI offers it as a base).
            const int64_t stored_profile_id =
                store.insert_profile(core::ProfileRow{0, profile.name, "calibrated", std::nullopt, "", core::to_json(profile).dump()});

            if (o->format == "json") {
              core::Json parameters = core::Json::array(), json_runs = core::Json::array();
              for (const sim::ParameterFit& p : result.parameters)
                parameters.push_back({{"name", p.name}, {"unit", p.unit}, {"before", p.before}, {"after", p.after},
                                      {"uncertainty", or_null(p.uncertainty)}, {"determined", p.determined},
                                      {"at_bound", p.at_bound}, {"reason", p.reason}});
              for (const sim::RunFit& r : result.runs)
                json_runs.push_back({{"run", r.run_id},
                                     {"label", r.label},
                                     {"held_out", r.held_out},
                                     {"measured_step_time_s", r.measured_step_s},
                                     {"predicted_step_time_before_s", r.predicted_before_s},
                                     {"predicted_step_time_after_s", r.predicted_after_s},
                                     {"memory_level", r.device_level_memory ? "device" : "tensors"},
                                     {"measured_peak_memory_bytes", or_null(r.measured_memory_bytes)},
                                     {"predicted_peak_memory_before_bytes", or_null(r.predicted_memory_before_bytes)},
                                     {"predicted_peak_memory_after_bytes", or_null(r.predicted_memory_after_bytes)}});
              core::Json out = {{"format", "loom-calibration"},
                                {"version", 1},
                                {"base_profile", base.name},
                                {"profile", profile.name},
                                {"parameters", parameters},
                                {"runs", json_runs},
                                {"fit_step_error_before_percent", result.fit_step_error_before_percent},
                                {"fit_step_error_after_percent", result.fit_step_error_after_percent},
                                {"holdout_step_error_before_percent", or_null(result.holdout_step_error_before_percent)},
                                {"holdout_step_error_after_percent", or_null(result.holdout_step_error_after_percent)}};
              if (o->out == core::kStandardOutputName) out["calibrated_profile"] = core::to_json(profile);
              else out["out"] = o->out;
              out["stored_profile_id"] = stored_profile_id;
              std::cout << out.dump(2) << "\n";
              return;
            }

            std::string fitted_ids, held_ids;
            for (const sim::RunFit& r : result.runs)
              (r.held_out ? held_ids : fitted_ids) += fmt::format("{}{}", (r.held_out ? held_ids : fitted_ids).empty() ? "" : ", ", r.run_id);
            fmt::print("Calibrated {} ({}) to runs {} of {}{}\n\n", base.name, base.provenance, fitted_ids, o->db,
                       held_ids.empty() ? "" : fmt::format(", holding out runs {}", held_ids));
            TextTable table({"parameter", "before", "after", "unit / why not fitted"}, {1, 2});
            for (const sim::ParameterFit& p : result.parameters) {
              const std::string unit = p.unit == "×" || p.unit == "s" || p.unit == "bytes" || p.unit == "FLOP" ? "" : p.unit;
              if (!p.determined) {
                table.add_row({p.name, quantity(p.before, p.unit), "not determined", p.reason});
                continue;
              }
              std::string after = quantity(p.after, p.unit);
              if (p.uncertainty) after += " ± " + quantity(*p.uncertainty, p.unit, 2);
              std::string note = unit;
              if (!p.reason.empty()) note += (note.empty() ? "" : "; ") + p.reason;
              table.add_row({p.name, quantity(p.before, p.unit), after, note});
            }
            fmt::print("{}\n", table.render());
            const bool memory = std::any_of(result.runs.begin(), result.runs.end(),
                                            [](const sim::RunFit& r) { return r.measured_memory_bytes.has_value(); });
            std::vector<std::string> header = {"run", "", "measured step", "predicted before", "predicted after"};
            if (memory) header.insert(header.end(), {"measured peak", "before", "after"});
            TextTable runs_table(header, {2, 3, 4, 5, 6, 7});
            for (const sim::RunFit& r : result.runs) {
              std::vector<std::string> row = {r.label, r.held_out ? "held out" : "fitted", seconds(r.measured_step_s),
                                              with_error(r.predicted_before_s, r.measured_step_s, seconds(r.predicted_before_s)),
                                              with_error(r.predicted_after_s, r.measured_step_s, seconds(r.predicted_after_s))};
              if (memory) {
                if (r.measured_memory_bytes) {
                  const double m = *r.measured_memory_bytes;
                  row.push_back(human_bytes(m) + (r.device_level_memory ? "" : " (tensors)"));
                  row.push_back(with_error(*r.predicted_memory_before_bytes, m, human_bytes(*r.predicted_memory_before_bytes)));
                  row.push_back(with_error(*r.predicted_memory_after_bytes, m, human_bytes(*r.predicted_memory_after_bytes)));
                } else {
                  row.insert(row.end(), {"not measured", "-", "-"});
                }
              }
              runs_table.add_row(row);
            }
            fmt::print("{}\n", runs_table.render());
            fmt::print("Step-time error on the {} fitted runs (mean |error|): {:.1f} % before, {:.1f} % after\n",
                       result.runs.size() - (held_ids.empty() ? 0 : size_t(o->holdout)), result.fit_step_error_before_percent,
                       result.fit_step_error_after_percent);
            if (result.holdout_step_error_before_percent)
              fmt::print("Step-time error on the {} held-out run{}: {:.1f} % before, {:.1f} % after (the figure to trust)\n",
                         o->holdout, o->holdout == 1 ? "" : "s", *result.holdout_step_error_before_percent, *result.holdout_step_error_after_percent);
            else
              fmt::print("No run held out: the error after is on the runs fitted, an optimistic figure (--holdout K "
                         "measures it on runs left out)\n");
            if (o->out != core::kStandardOutputName)
              fmt::print("Wrote {} (profile {}, provenance calibrated; stored as profile {} in {}); use it with --profile {}\n",
                         o->out, profile.name, stored_profile_id, o->db, o->out);
          }};
}

}  // namespace loom::cli
