#pragma once
// A plan's attention backend and Megatron-Core's communication overlaps as the views show and
// edit them: short text for a table cell, full names for a tooltip, and which overlap can be
// turned on under the core's own rules (core/plan.cpp), with the core's words for why not.

#include "core/plan.hpp"

#include <QString>

#include <optional>
#include <string>

namespace loom::gui {

// The plan settings that hide communication behind compute.
enum class OverlapSwitch {
  overlap_grad_reduce,
  overlap_param_gather,
  tp_comm_overlap,
  ddp_bucket_size
};

// "flash" or "unfused", as plan.json spells it.
QString attention_backend_text(core::AttentionBackend backend);

// The layers of each virtual stage, "7,9,9,7" (as `loom plan`'s table shows them), joined by
// `separator`; "even" when every virtual stage holds the same number.
QString layer_split_text(const core::Plan& plan, const QString& separator = QStringLiteral(","));

// The overlaps a plan turns on, short, for a table cell: "grad+param+tp", "grad", "tp"; "none"
// when it hides no communication.
QString overlaps_text(const core::ParallelPlan& parallel);

// The same by their Megatron-LM argument names, with the bucket size when the plan sets one:
// "overlap-grad-reduce, overlap-param-gather; ddp-bucket-size 20,000,000"; "no overlap" when none.
QString overlaps_description(const core::ParallelPlan& parallel);

// Megatron-LM's argument name of the switch ("tp-comm-overlap").
QString switch_name(OverlapSwitch which);

// Why `which` cannot be on in `plan`: the message of the rule turning it on would break (the
// bucket size: setting one), as Plan::validate() words it; none when it can be on. `plan` is
// assumed to be valid as it is (the views only edit plans that simulated).
std::optional<std::string> why_switch_unavailable(const core::Plan& plan, OverlapSwitch which);

// `plan` without the overlaps whose rule it breaks: turning overlap-grad-reduce off also turns
// off overlap-param-gather and drops the bucket size, which need it, as Megatron-LM would refuse
// them. Rules outside the overlaps are left for Plan::validate() to report.
core::Plan without_unmet_overlaps(core::Plan plan);

}  // namespace loom::gui
