#include "simulator/calibration.hpp"

#include "core/error.hpp"
#include "core/plan_json.hpp"
#include "simulator/cost_model.hpp"
#include "simulator/memory_model.hpp"
#include "simulator/prediction.hpp"
#include "simulator/run_comparison.hpp"

#include <Eigen/Dense>  // least squares: normal equations, pseudo-inverse
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

namespace loom::sim {
namespace {

// A parameter moves the runs' residuals by less than this per unit of its coordinate (per 100 %
// of a log-coordinate parameter: an elasticity) → the runs do not determine it. 0.02: doubling
// the parameter would move some run's step time by about 1.4 %, the noise of a measured step.
constexpr double kMinSensitivity = 0.02;
// The part of a parameter's Jacobian column outside the span of those chosen before it, as a
// fraction of its length: below this the runs cannot tell it from them (the fit would trade one
// for the other along a valley, with uncertainties larger than the values).
constexpr double kMinIndependence = 0.15;
// A fitted parameter whose 1σ in the fit's coordinate exceeds this (a factor of e^0.5 ≈ 1.65 for
// a log-coordinate parameter, half its typical size for a linear one) is not determined by the
// runs after all: its columns were independent enough, but the noise moves it as much as the
// signal. It is dropped and the rest refitted, so that the profile does not carry a guess.
constexpr double kMaxCoordinateUncertainty = 0.5;
// Finite-difference step in the coordinate (0.1 % of a log-coordinate parameter).
constexpr double kDifferenceStep = 1e-3;

enum class Block { step_time, memory };
enum class Coordinate { log, linear };

// One free parameter of a profile: where it lives, its unit and bounds, and the coordinate the
// fit works in (log for positive quantities, so that steps are relative; linear where 0 is valid).
struct FreeParameter {
  std::string name, unit;
  double lower = 0, upper = 0;
  Coordinate coordinate = Coordinate::log;
  double typical = 1;  // the linear coordinate's unit
  Block block = Block::step_time;
  std::function<double(const core::Profile&)> get;
  std::function<void(core::Profile&, double)> set;
  // Why the selected runs do not see it, where a plain reason exists (else empty).
  std::function<std::string(const std::vector<const MeasuredRun*>&)> why_unseen;

  double to_z(double x) const {
    x = std::clamp(x, lower, upper);
    return coordinate == Coordinate::log ? std::log(x) : x / typical;
  }
  double from_z(double z) const {
    const double x = coordinate == Coordinate::log ? std::exp(z) : z * typical;
    return std::clamp(x, lower, upper);
  }
  double z_lower() const { return to_z(lower); }
  double z_upper() const { return to_z(upper); }
};

core::TableTimeScales& scales_of(core::Profile& profile) {
  if (!profile.calibration) profile.calibration.emplace();
  return profile.calibration->table_time_scales;
}
core::TableTimeScales scales_of(const core::Profile& profile) {
  return profile.calibration ? profile.calibration->table_time_scales : core::TableTimeScales{};
}

bool any_run(const std::vector<const MeasuredRun*>& runs, const std::function<bool(const core::Plan&)>& test) {
  return std::any_of(runs.begin(), runs.end(), [&](const MeasuredRun* run) { return test(run->plan); });
}
bool spans_nodes(const core::Plan& plan) { return plan.cluster.nodes > 1; }
bool communicates_within_node(const core::Plan& plan) {
  return plan.cluster.devices_per_node > 1 && plan.cluster.world_size() > 1;
}
bool overlaps_communication(const core::Plan& plan) {
  const core::ParallelPlan& p = plan.parallel;
  return (p.overlap_grad_reduce && p.data_parallel > 1) || (p.tp_comm_overlap && p.tensor_parallel > 1);
}

std::vector<FreeParameter> free_parameters(const core::Profile& base) {
  std::vector<FreeParameter> out;
  using Runs = std::vector<const MeasuredRun*>;
  auto table_scale = [&](std::string name, std::string table, auto member) {
    FreeParameter p;
    p.name = fmt::format("table_time_scales.{}", name);
    p.unit = "×";
    p.lower = core::plausible::kTableTimeScale.min;
    p.upper = core::plausible::kTableTimeScale.max;
    p.get = [member](const core::Profile& profile) { return scales_of(profile).*member; };
    p.set = [member](core::Profile& profile, double value) { scales_of(profile).*member = value; };
    p.why_unseen = [table](const Runs&) { return fmt::format("no selected run uses the profile's {} table", table); };
    out.push_back(p);
  };
  // Measured tables first: where a profile has them, they time what they cover.
  if (!base.tables.gemm.empty()) table_scale("gemm", "GEMM", &core::TableTimeScales::gemm);
  if (!base.tables.attention.empty()) table_scale("attention", "attention", &core::TableTimeScales::attention);
  if (!base.tables.kernels.empty()) table_scale("kernels", "memory-bound kernel", &core::TableTimeScales::kernels);
  std::set<std::string> collective_levels;
  for (const core::CollectiveSample& s : base.tables.collectives) collective_levels.insert(s.level);
  for (const std::string& level : collective_levels) {
    FreeParameter p;
    p.name = fmt::format("table_time_scales.collectives.{}", level);
    p.unit = "×";
    p.lower = core::plausible::kTableTimeScale.min;
    p.upper = core::plausible::kTableTimeScale.max;
    p.get = [level](const core::Profile& profile) { return scales_of(profile).collectives(level); };
    p.set = [level](core::Profile& profile, double value) { scales_of(profile).collectives_by_level[level] = value; };
    p.why_unseen = [level](const Runs& runs) {
      const bool used = any_run(runs, level == "inter-node" ? spans_nodes : communicates_within_node);
      return used ? fmt::format("the selected runs' {} collectives hardly change their step times", level)
                  : fmt::format("no selected run communicates over the {} link", level);
    };
    out.push_back(p);
  }

  const bool gemm_table = !base.tables.gemm.empty();
  const bool kernel_table = !base.tables.kernels.empty();
  auto fraction = [&](std::string name, std::string unit, auto get, auto set, auto why) {
    FreeParameter p;
    p.name = std::move(name);
    p.unit = std::move(unit);
    p.lower = 0.05;  // below 5 % of a datasheet peak the profile is for other hardware
    p.upper = 1.0;   // never above the datasheet peak
    p.get = get;
    p.set = set;
    p.why_unseen = why;
    out.push_back(p);
  };
  fraction(
      "efficiency.gemm_max_fraction", "of peak FLOP/s",
      [](const core::Profile& p) { return p.efficiency.gemm_max_fraction; },
      [](core::Profile& p, double v) { p.efficiency.gemm_max_fraction = v; },
      [gemm_table](const Runs&) {
        return gemm_table ? std::string("the profile's GEMM table covers every GEMM, so efficiency.gemm_max_fraction "
                                        "is never used")
                          : std::string();
      });
  {
    FreeParameter p;
    p.name = "efficiency.gemm_half_saturation_flops";
    p.unit = "FLOP";
    p.lower = 1e6;
    p.upper = core::plausible::kHalfSaturationFlops.max;
    p.get = [](const core::Profile& profile) { return profile.efficiency.gemm_half_saturation_flops; };
    p.set = [](core::Profile& profile, double v) { profile.efficiency.gemm_half_saturation_flops = v; };
    p.why_unseen = [gemm_table](const Runs&) {
      return gemm_table ? std::string("the profile's GEMM table covers every GEMM, so "
                                      "efficiency.gemm_half_saturation_flops is never used")
                        : std::string("the selected runs' GEMMs are all far above the half-saturation size");
    };
    out.push_back(p);
  }
  fraction(
      "efficiency.memory_bandwidth_fraction", "of peak bytes/s",
      [](const core::Profile& p) { return p.efficiency.memory_bandwidth_fraction; },
      [](core::Profile& p, double v) { p.efficiency.memory_bandwidth_fraction = v; },
      [kernel_table](const Runs&) {
        return kernel_table ? std::string("the profile's kernel table covers the memory-bound kernels, so "
                                          "efficiency.memory_bandwidth_fraction is never used")
                            : std::string();
      });
  for (const bool backward : {false, true}) {
    const bool flash_table = std::any_of(base.tables.attention.begin(), base.tables.attention.end(), [&](const auto& s) {
      return s.backend == core::AttentionBackend::flash && s.backward == backward;
    });
    auto member = backward ? &core::EfficiencyModel::flash_backward_fraction : &core::EfficiencyModel::flash_forward_fraction;
    fraction(
        backward ? "efficiency.flash_backward_fraction" : "efficiency.flash_forward_fraction", "of peak FLOP/s",
        [member](const core::Profile& p) { return (p.efficiency.*member).value_or(p.efficiency.gemm_max_fraction); },
        [member](core::Profile& p, double v) { p.efficiency.*member = v; },
        [flash_table](const Runs& runs) {
          if (!any_run(runs, [](const core::Plan& plan) {
                return plan.parallel.attention_backend == core::AttentionBackend::flash;
              }))
            return std::string("no selected run uses attention-backend=flash");
          return flash_table ? std::string("the profile's flash-attention table covers it") : std::string();
        });
  }

  for (const core::LinkSpec& link : base.links) {
    const std::string level = link.level;
    const bool tabled = collective_levels.count(level) > 0;
    auto why = [level, tabled](const Runs& runs) {
      if (level == "inter-node" && !any_run(runs, spans_nodes))
        return std::string("no selected run spans more than one node (the inter-node link is never used)");
      if (level == "intra-node" && !any_run(runs, communicates_within_node))
        return std::string("no selected run has tp, pp or dp > 1 within a node (the intra-node link is never used)");
      if (tabled)
        return fmt::format("the profile's measured {} collectives cover the selected runs' communication", level);
      return std::string();
    };
    fraction(
        fmt::format("links.{}.bus_bandwidth_fraction", level), "of link bytes/s",
        [level](const core::Profile& p) { return p.link(level)->bus_bandwidth_fraction; },
        [level](core::Profile& p, double v) {
          for (core::LinkSpec& l : p.links)
            if (l.level == level) l.bus_bandwidth_fraction = v;
        },
        why);
    FreeParameter latency;
    latency.name = fmt::format("links.{}.latency_s", level);
    latency.unit = "s";
    latency.lower = 1e-8;
    latency.upper = 0.1;
    latency.get = [level](const core::Profile& p) { return p.link(level)->latency_s; };
    latency.set = [level](core::Profile& p, double v) {
      for (core::LinkSpec& l : p.links)
        if (l.level == level) l.latency_s = v;
    };
    latency.why_unseen = why;
    out.push_back(latency);
  }

  {
    FreeParameter p;
    p.name = "overlap.compute_slowdown";
    p.unit = "×";
    p.lower = 1.0;
    p.upper = 3.0;
    p.get = [](const core::Profile& profile) { return profile.overlap.compute_slowdown; };
    p.set = [](core::Profile& profile, double v) { profile.overlap.compute_slowdown = v; };
    p.why_unseen = [](const Runs& runs) {
      return any_run(runs, overlaps_communication)
                 ? std::string()
                 : std::string("no selected run overlaps communication with compute (overlap-grad-reduce with dp > 1, "
                               "or tp-comm-overlap with tp > 1)");
    };
    out.push_back(p);
  }
  {
    FreeParameter p;
    p.name = "overlap.tp_comm_hidden_fraction";
    p.unit = "of the collective";
    p.lower = 0.0;
    p.upper = 1.0;
    p.coordinate = Coordinate::linear;
    p.get = [](const core::Profile& profile) { return profile.overlap.tp_comm_hidden_fraction; };
    p.set = [](core::Profile& profile, double v) { profile.overlap.tp_comm_hidden_fraction = v; };
    p.why_unseen = [](const Runs& runs) {
      return any_run(runs, [](const core::Plan& plan) {
               return plan.parallel.tp_comm_overlap && plan.parallel.tensor_parallel > 1;
             })
                 ? std::string()
                 : std::string("no selected run uses tp-comm-overlap with tp > 1");
    };
    out.push_back(p);
  }
  {
    FreeParameter p;
    p.name = "device.runtime_reserve_bytes";
    p.unit = "bytes";
    p.lower = 0;
    p.upper = double(base.device.memory_bytes);
    p.coordinate = Coordinate::linear;
    p.typical = double(int64_t(1) << 30);
    p.block = Block::memory;
    p.get = [](const core::Profile& profile) { return double(profile.device.runtime_reserve_or_default()); };
    p.set = [](core::Profile& profile, double v) { profile.device.runtime_reserve_bytes = int64_t(std::llround(v)); };
    p.why_unseen = [](const Runs& runs) {
      const bool device_level = std::any_of(runs.begin(), runs.end(), [](const MeasuredRun* run) {
        return run->peak_device_bytes.has_value();
      });
      return device_level ? std::string()
                          : std::string("no selected run measured a device-level memory peak (the allocator's "
                                        "reserved bytes, Megatron's max reserved); tensor-only peaks leave the "
                                        "reserve out");
    };
    out.push_back(p);
  }
  return out;
}

// The plan's step time on `profile`; a plan the profile cannot simulate names the run.
double predicted_step_s(const MeasuredRun& run, const core::Profile& profile) {
  SimulationOptions options;
  options.record_timeline = false;
  try {
    return simulate(run.plan, profile, options).step_time_s;
  } catch (const InvalidInput& e) {
    throw InvalidInput("{}: {}", run.label, e.what());
  }
}

struct PredictedMemory {
  double device_bytes = 0;  // max over stages, runtime reserve included
  double tensor_bytes = 0;  // max over stages, tensors only
};
PredictedMemory predicted_memory(const MeasuredRun& run, const core::Profile& profile) {
  try {
    PredictedMemory out;
    for (const StageMemory& stage : memory_per_stage(as_simulated(run.plan, profile), memory_options(profile))) {
      out.device_bytes = std::max(out.device_bytes, double(stage.total_bytes()));
      out.tensor_bytes = std::max(out.tensor_bytes, double(stage.total_bytes() - stage.other_bytes));
    }
    return out;
  } catch (const InvalidInput& e) {
    throw InvalidInput("{}: {}", run.label, e.what());
  }
}

using Residuals = std::function<Eigen::VectorXd(const core::Profile&)>;

// The problem of one block: its parameters (the chosen ones, in order) over a base profile.
struct BlockProblem {
  const core::Profile* base = nullptr;
  std::vector<const FreeParameter*> parameters;
  Residuals residuals;

  core::Profile profile_at(const Eigen::VectorXd& z) const {
    core::Profile profile = *base;
    for (size_t j = 0; j < parameters.size(); ++j) parameters[j]->set(profile, parameters[j]->from_z(z[Eigen::Index(j)]));
    return profile;
  }
  Eigen::VectorXd clamp(Eigen::VectorXd z) const {
    for (size_t j = 0; j < parameters.size(); ++j)
      z[Eigen::Index(j)] = std::clamp(z[Eigen::Index(j)], parameters[j]->z_lower(), parameters[j]->z_upper());
    return z;
  }
  // Forward differences, backward at an upper bound.
  Eigen::MatrixXd jacobian(const Eigen::VectorXd& z, const Eigen::VectorXd& r) const {
    Eigen::MatrixXd J(r.size(), Eigen::Index(parameters.size()));
    for (size_t j = 0; j < parameters.size(); ++j) {
      const Eigen::Index c = Eigen::Index(j);
      Eigen::VectorXd moved = z;
      const bool backward = z[c] + kDifferenceStep > parameters[j]->z_upper();
      moved[c] += backward ? -kDifferenceStep : kDifferenceStep;
      J.col(c) = (residuals(profile_at(moved)) - r) / (moved[c] - z[c]);
    }
    return J;
  }
};

struct FitOutcome {
  Eigen::VectorXd z;
  Eigen::VectorXd residuals;
  Eigen::MatrixXd jacobian;
};

// Levenberg–Marquardt with Marquardt's diagonal scaling, steps projected onto the bounds.
FitOutcome levenberg_marquardt(const BlockProblem& problem, Eigen::VectorXd z) {
  Eigen::VectorXd r = problem.residuals(problem.profile_at(z));
  double rss = r.squaredNorm();
  double lambda = 1e-3;
  for (int iteration = 0; iteration < 60; ++iteration) {
    const Eigen::MatrixXd J = problem.jacobian(z, r);
    const Eigen::MatrixXd A = J.transpose() * J;
    const Eigen::VectorXd g = J.transpose() * r;
    bool improved = false;
    double step = 0, previous = rss;
    while (lambda < 1e12) {
      Eigen::MatrixXd damped = A;
      damped.diagonal() += lambda * (A.diagonal().array() + 1e-12).matrix();
      const Eigen::VectorXd candidate = problem.clamp(z + damped.ldlt().solve(-g));
      step = (candidate - z).cwiseAbs().maxCoeff();
      if (step < 1e-12) break;
      const Eigen::VectorXd r_candidate = problem.residuals(problem.profile_at(candidate));
      if (r_candidate.squaredNorm() < rss) {
        z = candidate;
        r = r_candidate;
        rss = r.squaredNorm();
        lambda = std::max(lambda / 10, 1e-9);
        improved = true;
        break;
      }
      lambda *= 10;
    }
    if (!improved || step < 1e-7 || previous - rss < 1e-14 * (1 + previous)) break;
  }
  return {z, r, problem.jacobian(z, r)};
}

std::string format_value(double value, const std::string& unit) {
  return unit == "bytes" ? fmt::format("{:.3g} GiB", value / double(int64_t(1) << 30)) : fmt::format("{:.4g}", value);
}

// Chooses, in order, the candidates the residuals determine; fills each ParameterFit's
// `determined` and, for the others, its reason. Returns the chosen ones.
std::vector<const FreeParameter*> choose_parameters(const core::Profile& base,
                                                    const std::vector<const FreeParameter*>& candidates,
                                                    const Residuals& residuals, const std::vector<const MeasuredRun*>& runs,
                                                    std::map<std::string, ParameterFit>& fits) {
  std::vector<const FreeParameter*> chosen;
  if (candidates.empty()) return chosen;
  BlockProblem all{&base, candidates, residuals};
  Eigen::VectorXd z0(Eigen::Index(candidates.size()));
  for (size_t j = 0; j < candidates.size(); ++j) z0[Eigen::Index(j)] = candidates[j]->to_z(candidates[j]->get(base));
  const Eigen::VectorXd r0 = residuals(all.profile_at(z0));
  const Eigen::Index n = r0.size();
  if (n == 0) {
    for (const FreeParameter* p : candidates) {
      std::string why = p->why_unseen(runs);
      fits[p->name].reason = why.empty() ? "no selected run measured what it changes" : why;
    }
    return chosen;
  }
  const Eigen::MatrixXd J = all.jacobian(z0, r0);
  Eigen::MatrixXd basis(n, 0);  // orthonormal columns spanning the chosen parameters' columns
  for (size_t j = 0; j < candidates.size(); ++j) {
    const FreeParameter& p = *candidates[j];
    ParameterFit& fit = fits[p.name];
    const Eigen::VectorXd column = J.col(Eigen::Index(j));
    const double sensitivity = column.cwiseAbs().maxCoeff();
    if (!(sensitivity >= kMinSensitivity)) {
      std::string why = p.why_unseen(runs);
      fit.reason = !why.empty() ? why
                   : p.coordinate == Coordinate::log
                       ? fmt::format("the selected runs hardly depend on it (a 10 % change moves them by {:.2f} % at most)",
                                     100 * 0.1 * sensitivity)
                       : fmt::format("the selected runs hardly depend on it (a change of {} moves them by {:.2f} % at most)",
                                     format_value(0.1 * p.typical, p.unit), 100 * 0.1 * sensitivity);
      continue;
    }
    if (Eigen::Index(chosen.size()) >= n) {
      fit.reason = fmt::format("as many parameters as {} already ({} chosen before it); more runs would determine more",
                               n == 1 ? "there is one run" : fmt::format("there are {} runs", n), chosen.size());
      continue;
    }
    Eigen::VectorXd orthogonal = column;
    for (int pass = 0; pass < 2; ++pass) orthogonal -= basis * (basis.transpose() * orthogonal);
    const double independence = orthogonal.norm() / column.norm();
    if (independence < kMinIndependence) {
      // Name the chosen parameters it is most alike.
      std::string alike;
      for (size_t k = 0; k < chosen.size(); ++k) {
        const Eigen::VectorXd other = J.col(Eigen::Index(std::find(candidates.begin(), candidates.end(), chosen[k]) -
                                                         candidates.begin()));
        if (std::abs(other.dot(column)) / (other.norm() * column.norm()) > 0.5)
          alike += (alike.empty() ? "" : ", ") + chosen[k]->name;
      }
      if (alike.empty())
        for (const FreeParameter* c : chosen) alike += (alike.empty() ? "" : ", ") + c->name;
      fit.reason = fmt::format("the selected runs cannot tell it from {} (all but {:.0f} % of its effect is theirs)",
                               alike, 100 * independence);
      continue;
    }
    basis.conservativeResize(Eigen::NoChange, basis.cols() + 1);
    basis.col(basis.cols() - 1) = orthogonal.normalized();
    chosen.push_back(&p);
    fit.determined = true;
  }
  return chosen;
}

// Fits the chosen parameters and records after, uncertainty and bound in `fits`. Returns the
// index (in `chosen`) of the parameter least determined beyond kMaxCoordinateUncertainty, if any.
std::optional<size_t> fit_block(const core::Profile& base, const std::vector<const FreeParameter*>& chosen, const Residuals& residuals,
               std::map<std::string, ParameterFit>& fits) {
  if (chosen.empty()) return std::nullopt;
  std::optional<size_t> worst;
  double worst_sigma = kMaxCoordinateUncertainty;
  BlockProblem problem{&base, chosen, residuals};
  Eigen::VectorXd z0(Eigen::Index(chosen.size()));
  for (size_t j = 0; j < chosen.size(); ++j) z0[Eigen::Index(j)] = chosen[j]->to_z(chosen[j]->get(base));
  const FitOutcome outcome = levenberg_marquardt(problem, z0);
  const Eigen::Index n = outcome.residuals.size(), p = Eigen::Index(chosen.size());
  Eigen::MatrixXd covariance;
  if (n > p) {
    const double s2 = outcome.residuals.squaredNorm() / double(n - p);
    covariance = s2 * (outcome.jacobian.transpose() * outcome.jacobian).completeOrthogonalDecomposition().pseudoInverse();
  }
  for (size_t j = 0; j < chosen.size(); ++j) {
    const FreeParameter& parameter = *chosen[j];
    ParameterFit& fit = fits[parameter.name];
    const double z = outcome.z[Eigen::Index(j)];
    fit.after = parameter.from_z(z);
    fit.at_bound = z <= parameter.z_lower() + 1e-9 || z >= parameter.z_upper() - 1e-9;
    if (n > p) {
      // The delta method: dx/dz is x in the log coordinate, the unit in the linear one.
      const double sigma_z = std::sqrt(std::max(0.0, covariance(Eigen::Index(j), Eigen::Index(j))));
      if (sigma_z > worst_sigma) {
        worst_sigma = sigma_z;
        worst = j;
      }
      fit.uncertainty = sigma_z * (parameter.coordinate == Coordinate::log ? fit.after : parameter.typical);
    } else {
      fit.reason = fmt::format("no uncertainty: {} residual{} for {} parameter{}, none left to estimate the noise", n,
                               n == 1 ? "" : "s", p, p == 1 ? "" : "s");
    }
    if (fit.at_bound)
      fit.reason += (fit.reason.empty() ? "" : "; ") +
                    fmt::format("ended on its bound {}", format_value(fit.after, parameter.unit));
  }
  return worst;
}

double mean_absolute_percent(const std::vector<RunFit>& runs, bool held_out, bool after) {
  double total = 0;
  int64_t count = 0;
  for (const RunFit& run : runs) {
    if (run.held_out != held_out) continue;
    const double predicted = after ? run.predicted_after_s : run.predicted_before_s;
    total += std::abs(error_percent(predicted, run.measured_step_s));
    ++count;
  }
  return count > 0 ? total / double(count) : 0.0;
}

std::string describe(const core::Plan& plan, const std::string& plan_name) {
  const core::ParallelPlan& p = plan.parallel;
  return fmt::format("{}{}tp{} pp{} dp{}", plan_name, plan_name.empty() ? "" : ": ", p.tensor_parallel,
                     p.pipeline_parallel, p.data_parallel);
}

}  // namespace

std::vector<MeasuredRun> measured_runs(core::Store& store, const std::vector<int64_t>& run_ids) {
  std::vector<MeasuredRun> out;
  for (const int64_t id : run_ids) {
    const core::RunRow run = store.run(id);
    if (run.status != core::RunStatus::completed)
      throw InvalidInput("run {} is {}; calibrate with completed runs only (see `loom runs`)", id,
                         core::to_string(run.status));
    const std::vector<core::StepRow> steps = store.steps(id);
    if (steps.empty()) throw InvalidInput("run {} has no steps recorded; it cannot say how long a step takes", id);
    const core::PlanRow plan_row = store.plan(run.plan_id);
    MeasuredRun m;
    m.run_id = id;
    m.plan = core::plan_from_json(core::Json::parse(plan_row.plan_json));
    m.step_time_s = steady_step_time_s(steps);
    if (!(m.step_time_s > 0 && std::isfinite(m.step_time_s)))
      throw InvalidInput("run {}'s steady step time is {} s; expected a positive time", id, m.step_time_s);
    m.plan_name = plan_row.name;
    m.label = fmt::format("run {} ({})", id, describe(m.plan, plan_row.name));
    const core::Json run_json = core::Json::parse(run.run_json.empty() ? "{}" : run.run_json);
    if (run_json.is_object() && run_json.contains("source") && run_json["source"].is_string())
      m.source = run_json["source"].get<std::string>();
    for (const core::RankStatRow& rank : store.rank_stats(id)) {
      if (rank.peak_memory_bytes)
        m.peak_tensor_bytes = std::max(m.peak_tensor_bytes.value_or(0.0), double(*rank.peak_memory_bytes));
      const core::Json stats = core::Json::parse(rank.stats_json.empty() ? "{}" : rank.stats_json);
      if (stats.is_object() && stats.contains("max_reserved_bytes") && stats["max_reserved_bytes"].is_number())
        m.peak_device_bytes = std::max(m.peak_device_bytes.value_or(0.0), stats["max_reserved_bytes"].get<double>());
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> calibration_parameter_names(const core::Profile& profile) {
  std::vector<std::string> names;
  for (const FreeParameter& p : free_parameters(profile)) names.push_back(p.name);
  return names;
}

std::vector<size_t> held_out_indices(size_t runs, int64_t holdout) {
  std::vector<size_t> out;
  for (int64_t j = 0; j < holdout; ++j) out.push_back(size_t((2 * j + 1) * int64_t(runs) / (2 * holdout)));
  return out;
}

CalibrationResult calibrate(const core::Profile& base, const std::vector<MeasuredRun>& runs,
                            const CalibrationOptions& options) {
  if (runs.empty()) throw InvalidInput("no runs to calibrate with; expected at least one measured run");
  std::set<int64_t> ids;
  for (const MeasuredRun& run : runs) {
    if (run.run_id != 0 && !ids.insert(run.run_id).second)
      throw InvalidInput("run {} is given twice; expected each run once", run.run_id);
    if (!(run.step_time_s > 0 && std::isfinite(run.step_time_s)))
      throw InvalidInput("{}: measured step time {} s; expected a positive time", run.label, run.step_time_s);
  }
  if (options.holdout < 0 || (options.holdout > 0 && options.holdout > int64_t(runs.size()) - 2))
    throw InvalidInput("holdout {} of {} runs leaves fewer than 2 to fit; expected 0 to {}", options.holdout,
                       runs.size(), std::max<int64_t>(0, int64_t(runs.size()) - 2));

  const std::vector<FreeParameter> catalogue = free_parameters(base);
  std::vector<const FreeParameter*> candidates;
  if (options.parameters.empty()) {
    for (const FreeParameter& p : catalogue) candidates.push_back(&p);
  } else {
    std::set<std::string> named(options.parameters.begin(), options.parameters.end());
    for (const std::string& name : named)
      if (std::none_of(catalogue.begin(), catalogue.end(), [&](const FreeParameter& p) { return p.name == name; })) {
        std::string known;
        for (const FreeParameter& p : catalogue) known += (known.empty() ? "" : ", ") + p.name;
        throw InvalidInput("'{}' is not a free parameter of profile '{}'; expected one of: {}", name, base.name, known);
      }
    for (const FreeParameter& p : catalogue)
      if (named.count(p.name)) candidates.push_back(&p);
  }

  CalibrationResult result;
  const std::vector<size_t> held = held_out_indices(runs.size(), options.holdout);
  std::vector<const MeasuredRun*> fitted;
  for (size_t i = 0; i < runs.size(); ++i)
    if (std::find(held.begin(), held.end(), i) == held.end()) fitted.push_back(&runs[i]);

  const Residuals step_residuals = [&](const core::Profile& profile) {
    Eigen::VectorXd r(Eigen::Index(fitted.size()));
    for (size_t i = 0; i < fitted.size(); ++i)
      r[Eigen::Index(i)] = std::log(predicted_step_s(*fitted[i], profile)) - std::log(fitted[i]->step_time_s);
    return r;
  };
  std::vector<const MeasuredRun*> with_device_memory;
  for (const MeasuredRun* run : fitted)
    if (run->peak_device_bytes && *run->peak_device_bytes > 0) with_device_memory.push_back(run);
  const Residuals memory_residuals = [&](const core::Profile& profile) {
    Eigen::VectorXd r(Eigen::Index(with_device_memory.size()));
    for (size_t i = 0; i < with_device_memory.size(); ++i) {
      const double measured = *with_device_memory[i]->peak_device_bytes;
      r[Eigen::Index(i)] = (predicted_memory(*with_device_memory[i], profile).device_bytes - measured) / measured;
    }
    return r;
  };

  std::map<std::string, ParameterFit> fits;
  for (const FreeParameter& p : catalogue) {
    ParameterFit& fit = fits[p.name];
    fit.name = p.name;
    fit.unit = p.unit;
    fit.before = fit.after = p.get(base);
  }
  for (const Block block : {Block::step_time, Block::memory}) {
    std::vector<const FreeParameter*> in_block;
    for (const FreeParameter* p : candidates)
      if (p->block == block) in_block.push_back(p);
    const Residuals& residuals = block == Block::step_time ? step_residuals : memory_residuals;
    std::vector<const FreeParameter*> chosen = choose_parameters(base, in_block, residuals, fitted, fits);
    // Drop the least determined parameter while one is too uncertain, then refit the rest. A
    // parameter the user named is kept (and reported with its uncertainty).
    while (const std::optional<size_t> worst = fit_block(base, chosen, residuals, fits)) {
      const FreeParameter* dropped = chosen[*worst];
      if (!options.parameters.empty()) break;
      ParameterFit& fit = fits[dropped->name];
      const std::string spread =
          fit.uncertainty ? format_value(*fit.uncertainty, dropped->unit) : std::string("unknown");
      fit.reason = fmt::format("the selected runs leave it too uncertain to fit (±{} beside the others)", spread);
      fit.determined = false;
      fit.after = fit.before;
      fit.uncertainty.reset();
      fit.at_bound = false;
      chosen.erase(chosen.begin() + std::ptrdiff_t(*worst));
      for (const FreeParameter* p : chosen) {  // refitted from the base, their reasons anew
        fits[p->name].reason.clear();
        fits[p->name].after = fits[p->name].before;
      }
    }
  }
  for (const FreeParameter* p : candidates) {
    const ParameterFit& fit = fits[p->name];
    if (!options.parameters.empty() && !fit.determined)
      throw InvalidInput("the selected runs cannot determine {}: {}", p->name, fit.reason);
  }
  if (std::none_of(candidates.begin(), candidates.end(), [&](const FreeParameter* p) { return fits[p->name].determined; })) {
    std::string reasons;
    for (const FreeParameter* p : candidates) reasons += fmt::format("\n  {}: {}", p->name, fits[p->name].reason);
    throw InvalidInput("the selected runs determine none of profile '{}''s free parameters:{}", base.name, reasons);
  }
  for (const FreeParameter& p : catalogue) {
    if (std::find(candidates.begin(), candidates.end(), &p) == candidates.end()) {
      fits[p.name].reason = "not asked for (--parameters)";
    }
  }

  // The calibrated profile: the base, its tables untouched, with the determined parameters set.
  core::Profile profile = base;
  for (const FreeParameter& p : catalogue)
    if (fits[p.name].determined) p.set(profile, fits[p.name].after);
  const core::TableTimeScales scales = scales_of(profile);
  profile.name = fmt::format("{}-calibrated", base.name);
  profile.provenance = "calibrated";
  std::string run_list;
  for (const MeasuredRun* run : fitted) run_list += (run_list.empty() ? "" : ", ") + std::to_string(run->run_id);
  profile.description = fmt::format("{} calibrated to measured runs {}{}", base.name, run_list,
                                    base.description.empty() ? std::string() : fmt::format(". Base: {}", base.description));
  core::Calibration calibration;
  calibration.base_profile = base.name;
  for (const MeasuredRun* run : fitted) calibration.fitted_runs.push_back({run->run_id, run->plan_name, run->source});
  calibration.date = core::utc_now_iso8601();
  for (const FreeParameter& p : catalogue) {
    const ParameterFit& fit = fits[p.name];
    result.parameters.push_back(fit);
    calibration.parameters.push_back({fit.name, fit.unit, fit.before, fit.after, fit.uncertainty, fit.determined,
                                      fit.reason});
  }
  calibration.table_time_scales = scales;
  profile.calibration = calibration;
  result.profile = profile;

  for (size_t i = 0; i < runs.size(); ++i) {
    const MeasuredRun& run = runs[i];
    RunFit fit;
    fit.run_id = run.run_id;
    fit.label = run.label;
    fit.held_out = std::find(held.begin(), held.end(), i) != held.end();
    fit.measured_step_s = run.step_time_s;
    fit.predicted_before_s = predicted_step_s(run, base);
    fit.predicted_after_s = predicted_step_s(run, result.profile);
    const PredictedMemory before = predicted_memory(run, base), after = predicted_memory(run, result.profile);
    if (run.peak_device_bytes) {
      fit.device_level_memory = true;
      fit.measured_memory_bytes = run.peak_device_bytes;
      fit.predicted_memory_before_bytes = before.device_bytes;
      fit.predicted_memory_after_bytes = after.device_bytes;
    } else if (run.peak_tensor_bytes) {
      fit.measured_memory_bytes = run.peak_tensor_bytes;
      fit.predicted_memory_before_bytes = before.tensor_bytes;
      fit.predicted_memory_after_bytes = after.tensor_bytes;
    }
    result.runs.push_back(fit);
  }
  result.fit_step_error_before_percent = mean_absolute_percent(result.runs, false, false);
  result.fit_step_error_after_percent = mean_absolute_percent(result.runs, false, true);
  if (!held.empty()) {
    result.holdout_step_error_before_percent = mean_absolute_percent(result.runs, true, false);
    result.holdout_step_error_after_percent = mean_absolute_percent(result.runs, true, true);
  }
  return result;
}

}  // namespace loom::sim
