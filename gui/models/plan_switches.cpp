#include "gui/models/plan_switches.hpp"

#include "core/error.hpp"

#include <QLocale>
#include <QStringList>

#include <algorithm>
#include <vector>

namespace loom::gui {
namespace {

// The rules of core/plan.cpp that stop each switch from being on.
std::vector<core::PlanRule> rules_of(OverlapSwitch which) {
  switch (which) {
    case OverlapSwitch::overlap_grad_reduce:
      return {};
    case OverlapSwitch::overlap_param_gather:
      return {core::PlanRule::overlap_param_gather_needs_distributed_optimizer,
              core::PlanRule::overlap_param_gather_needs_overlap_grad_reduce};
    case OverlapSwitch::tp_comm_overlap:
      return {core::PlanRule::tp_comm_overlap_needs_sequence_parallel};
    case OverlapSwitch::ddp_bucket_size:
      return {core::PlanRule::bucket_size_needs_overlap_grad_reduce};
  }
  return {};
}

void turn_on(core::ParallelPlan& parallel, OverlapSwitch which) {
  switch (which) {
    case OverlapSwitch::overlap_grad_reduce:
      parallel.overlap_grad_reduce = true;
      break;
    case OverlapSwitch::overlap_param_gather:
      parallel.overlap_param_gather = true;
      break;
    case OverlapSwitch::tp_comm_overlap:
      parallel.tp_comm_overlap = true;
      break;
    case OverlapSwitch::ddp_bucket_size:
      // Any valid size asks the same question; the default one is valid for every plan.
      parallel.ddp_bucket_size = parallel.grad_bucket_parameters();
      break;
  }
}

}  // namespace

QString attention_backend_text(core::AttentionBackend backend) {
  const std::string_view text = core::to_string(backend);
  return QString::fromUtf8(text.data(), qsizetype(text.size()));
}

QString layer_split_text(const core::Plan& plan, const QString& separator) {
  if (plan.even_layer_split()) return QStringLiteral("even");
  QStringList layers;
  for (const int64_t count : plan.virtual_stage_layers()) layers << QString::number(count);
  return layers.join(separator);
}

QString overlaps_text(const core::ParallelPlan& parallel) {
  QStringList parts;
  if (parallel.overlap_grad_reduce) parts << QStringLiteral("grad");
  if (parallel.overlap_param_gather) parts << QStringLiteral("param");
  if (parallel.tp_comm_overlap) parts << QStringLiteral("tp");
  return parts.isEmpty() ? QStringLiteral("none") : parts.join('+');
}

QString overlaps_description(const core::ParallelPlan& parallel) {
  QStringList names;
  if (parallel.overlap_grad_reduce) names << switch_name(OverlapSwitch::overlap_grad_reduce);
  if (parallel.overlap_param_gather) names << switch_name(OverlapSwitch::overlap_param_gather);
  if (parallel.tp_comm_overlap) names << switch_name(OverlapSwitch::tp_comm_overlap);
  QString text = names.isEmpty() ? QStringLiteral("no overlap") : names.join(QStringLiteral(", "));
  if (parallel.ddp_bucket_size)
    text += QStringLiteral("; ddp-bucket-size %1")
                .arg(QLocale(QLocale::English).toString(qlonglong(*parallel.ddp_bucket_size)));
  return text;
}

QString switch_name(OverlapSwitch which) {
  switch (which) {
    case OverlapSwitch::overlap_grad_reduce:
      return QStringLiteral("overlap-grad-reduce");
    case OverlapSwitch::overlap_param_gather:
      return QStringLiteral("overlap-param-gather");
    case OverlapSwitch::tp_comm_overlap:
      return QStringLiteral("tp-comm-overlap");
    case OverlapSwitch::ddp_bucket_size:
      return QStringLiteral("ddp-bucket-size");
  }
  return {};
}

std::optional<std::string> why_switch_unavailable(const core::Plan& plan, OverlapSwitch which) {
  core::Plan probe = plan;
  turn_on(probe.parallel, which);
  const std::optional<core::PlanRule> broken = probe.violated_rule();
  const std::vector<core::PlanRule> rules = rules_of(which);
  if (!broken || std::find(rules.begin(), rules.end(), *broken) == rules.end()) return std::nullopt;
  // The message is built only here, by the core's one statement of the rule.
  try {
    probe.validate();
  } catch (const Error& e) {
    return std::string(e.what());
  }
  return std::string(core::describe(*broken));
}

core::Plan without_unmet_overlaps(core::Plan plan) {
  // Each pass clears the switch whose rule comes first; at most one pass per switch.
  for (int pass = 0; pass < 4; ++pass) {
    const std::optional<core::PlanRule> broken = plan.violated_rule();
    if (!broken) break;
    switch (*broken) {
      case core::PlanRule::tp_comm_overlap_needs_sequence_parallel:
        plan.parallel.tp_comm_overlap = false;
        continue;
      case core::PlanRule::overlap_param_gather_needs_distributed_optimizer:
      case core::PlanRule::overlap_param_gather_needs_overlap_grad_reduce:
        plan.parallel.overlap_param_gather = false;
        continue;
      case core::PlanRule::bucket_size_needs_overlap_grad_reduce:
        plan.parallel.ddp_bucket_size.reset();
        continue;
      default:
        return plan;
    }
  }
  return plan;
}

}  // namespace loom::gui
