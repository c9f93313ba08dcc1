#pragma once
// A row of controls over a plan's attention backend and communication overlaps
// (overlap-grad-reduce, overlap-param-gather, tp-comm-overlap, ddp-bucket-size). A switch whose
// rule is not met is disabled, and its tooltip gives the core's reason ("tp-comm-overlap=true
// needs sequence-parallel=true …"); turning off a switch others need turns those off too. Every
// edit writes into the plan and is announced, so the Plan detail view re-simulates it.

#include "core/plan.hpp"

#include <QWidget>

#include <optional>

class QCheckBox;
class QComboBox;
class QSpinBox;

namespace loom::gui {

class PlanSwitchesEditor : public QWidget {
  Q_OBJECT
 public:
  explicit PlanSwitchesEditor(QWidget* parent = nullptr);

  // Shows `plan`'s switches (a valid plan: one that simulated) and enables the controls.
  void setPlan(const core::Plan& plan);
  // No plan: every control disabled.
  void clear();
  // The plan with the switches as edited; null before setPlan().
  const core::Plan* plan() const { return plan_ ? &*plan_ : nullptr; }

  // The controls, for tests: set them as a user would.
  QComboBox* attentionBackendBox() const { return attention_; }
  QCheckBox* overlapGradReduceBox() const { return grad_reduce_; }
  QCheckBox* overlapParamGatherBox() const { return param_gather_; }
  QCheckBox* tpCommOverlapBox() const { return tp_comm_; }
  // 0 stands for Megatron's default size, max(40M, 1M × dp) parameters.
  QSpinBox* bucketSizeBox() const { return bucket_size_; }

 signals:
  // The user changed a switch; `plan` is the plan with it.
  void planEdited(const core::Plan& plan);

 private:
  void readControls();
  void showPlan();
  // What the bucket box shows for `parallel`: its size (at most the box's maximum), 0 for none.
  int shownBucketSize(const core::ParallelPlan& parallel) const;

  QComboBox* attention_ = nullptr;
  QCheckBox* grad_reduce_ = nullptr;
  QCheckBox* param_gather_ = nullptr;
  QCheckBox* tp_comm_ = nullptr;
  QSpinBox* bucket_size_ = nullptr;
  std::optional<core::Plan> plan_;
  bool filling_ = false;  // controls being set by code, not by the user
};

}  // namespace loom::gui
