#include "gui/plan_switches_editor.hpp"

#include "gui/models/plan_switches.hpp"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLocale>
#include <QSpinBox>

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace loom::gui {
namespace {

// What each control does, in Megatron-LM's words; a disabled one adds why it is.
const char* const kAttentionTip = QT_TRANSLATE_NOOP(
    "loom::gui::PlanSwitchesEditor",
    "Megatron-LM: --attention-backend. flash: one fused, tiled kernel that keeps only each row's "
    "log-sum-exp; unfused: the b·a·s² scores are written, soft-maxed and read back");
const char* const kGradReduceTip = QT_TRANSLATE_NOOP(
    "loom::gui::PlanSwitchesEditor",
    "Megatron-LM: --overlap-grad-reduce. Each gradient bucket's data-parallel reduction starts as "
    "soon as the backward has completed it, beside the rest of the backward");
const char* const kParamGatherTip = QT_TRANSLATE_NOOP(
    "loom::gui::PlanSwitchesEditor",
    "Megatron-LM: --overlap-param-gather. The distributed optimizer's all-gather of updated "
    "parameters runs bucket by bucket beside the next step's forward");
const char* const kTpCommTip = QT_TRANSLATE_NOOP(
    "loom::gui::PlanSwitchesEditor",
    "Megatron-LM: --tp-comm-overlap. Tensor-parallel all-gathers and reduce-scatters run in "
    "chunks beside the GEMMs that consume or produce them");
const char* const kBucketTip = QT_TRANSLATE_NOOP(
    "loom::gui::PlanSwitchesEditor",
    "Megatron-LM: --ddp-bucket-size, parameters per gradient bucket (the smallest value: "
    "Megatron's default, max(40,000,000, 1,000,000 × data-parallel size))");

QString tip(const char* text, const std::optional<std::string>& unavailable) {
  QString out = PlanSwitchesEditor::tr(text);
  if (unavailable)
    out += PlanSwitchesEditor::tr("\n\nUnavailable: %1").arg(QString::fromStdString(*unavailable));
  return out;
}

}  // namespace

PlanSwitchesEditor::PlanSwitchesEditor(QWidget* parent) : QWidget(parent) {
  attention_ = new QComboBox;
  attention_->setObjectName(QStringLiteral("attention-backend"));
  for (core::AttentionBackend backend :
       {core::AttentionBackend::flash, core::AttentionBackend::unfused})
    attention_->addItem(attention_backend_text(backend), int(backend));
  grad_reduce_ = new QCheckBox(switch_name(OverlapSwitch::overlap_grad_reduce));
  grad_reduce_->setObjectName(switch_name(OverlapSwitch::overlap_grad_reduce));
  param_gather_ = new QCheckBox(switch_name(OverlapSwitch::overlap_param_gather));
  param_gather_->setObjectName(switch_name(OverlapSwitch::overlap_param_gather));
  tp_comm_ = new QCheckBox(switch_name(OverlapSwitch::tp_comm_overlap));
  tp_comm_->setObjectName(switch_name(OverlapSwitch::tp_comm_overlap));
  bucket_size_ = new QSpinBox;
  bucket_size_->setObjectName(switch_name(OverlapSwitch::ddp_bucket_size));
  // Megatron's argument is an int; a plan file's larger size shows as the maximum and stays in
  // the plan until the box is edited.
  bucket_size_->setRange(0, std::numeric_limits<int>::max());
  bucket_size_->setSingleStep(1'000'000);
  bucket_size_->setGroupSeparatorShown(true);
  bucket_size_->setSuffix(tr(" parameters"));
  // Typing a number re-simulates once, when it is entered, not at every digit.
  bucket_size_->setKeyboardTracking(false);
  bucket_size_->setMinimumWidth(
      bucket_size_->fontMetrics().horizontalAdvance("default: 2,000,000,000 parameters") + 40);

  auto* heading = new QLabel(tr("<b>Try:</b>"));
  heading->setToolTip(
      tr("Changing these re-simulates this plan; the exports and Execute use the changed plan"));
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(heading);
  layout->addWidget(new QLabel(tr("attention")));
  layout->addWidget(attention_);
  layout->addSpacing(12);
  layout->addWidget(grad_reduce_);
  layout->addWidget(param_gather_);
  layout->addWidget(tp_comm_);
  layout->addSpacing(12);
  layout->addWidget(new QLabel(tr("bucket size")));
  layout->addWidget(bucket_size_);
  layout->addStretch(1);

  auto edited = [this] {
    if (!filling_ && plan_) readControls();
  };
  connect(attention_, &QComboBox::currentIndexChanged, this, edited);
  for (QCheckBox* box : {grad_reduce_, param_gather_, tp_comm_})
    connect(box, &QCheckBox::toggled, this, edited);
  connect(bucket_size_, &QSpinBox::valueChanged, this, edited);
  clear();
}

void PlanSwitchesEditor::setPlan(const core::Plan& plan) {
  plan_ = plan;
  showPlan();
}

void PlanSwitchesEditor::clear() {
  plan_.reset();
  for (QWidget* control : std::initializer_list<QWidget*>{attention_, grad_reduce_, param_gather_,
                                                          tp_comm_, bucket_size_})
    control->setEnabled(false);
}

int PlanSwitchesEditor::shownBucketSize(const core::ParallelPlan& parallel) const {
  return int(std::min<int64_t>(parallel.ddp_bucket_size.value_or(0), bucket_size_->maximum()));
}

void PlanSwitchesEditor::readControls() {
  core::Plan edited = *plan_;
  core::ParallelPlan& p = edited.parallel;
  p.attention_backend = core::AttentionBackend(attention_->currentData().toInt());
  p.overlap_grad_reduce = grad_reduce_->isChecked();
  p.overlap_param_gather = param_gather_->isChecked();
  p.tp_comm_overlap = tp_comm_->isChecked();
  // An untouched box keeps the plan's size, even one above what the box can show.
  const int bucket = bucket_size_->value();
  if (bucket != shownBucketSize(plan_->parallel))
    p.ddp_bucket_size = bucket == 0 ? std::nullopt : std::optional<int64_t>(bucket);
  plan_ = without_unmet_overlaps(edited);
  showPlan();
  emit planEdited(*plan_);
}

void PlanSwitchesEditor::showPlan() {
  const core::Plan& plan = *plan_;
  const core::ParallelPlan& p = plan.parallel;
  filling_ = true;
  attention_->setCurrentIndex(attention_->findData(int(p.attention_backend)));
  attention_->setEnabled(true);
  attention_->setToolTip(tr(kAttentionTip));
  grad_reduce_->setChecked(p.overlap_grad_reduce);
  param_gather_->setChecked(p.overlap_param_gather);
  tp_comm_->setChecked(p.tp_comm_overlap);
  core::ParallelPlan without_size = p;
  without_size.ddp_bucket_size.reset();
  bucket_size_->setSpecialValueText(
      tr("default: %1 parameters")
          .arg(QLocale(QLocale::English)
                   .toString(qlonglong(without_size.grad_bucket_parameters()))));
  bucket_size_->setValue(shownBucketSize(p));
  struct Control {
    QWidget* widget;
    OverlapSwitch which;
    const char* tip;
  };
  for (const Control& c :
       {Control{grad_reduce_, OverlapSwitch::overlap_grad_reduce, kGradReduceTip},
        Control{param_gather_, OverlapSwitch::overlap_param_gather, kParamGatherTip},
        Control{tp_comm_, OverlapSwitch::tp_comm_overlap, kTpCommTip},
        Control{bucket_size_, OverlapSwitch::ddp_bucket_size, kBucketTip}}) {
    const std::optional<std::string> unavailable = why_switch_unavailable(plan, c.which);
    c.widget->setEnabled(!unavailable);
    c.widget->setToolTip(tip(c.tip, unavailable));
  }
  filling_ = false;
}

}  // namespace loom::gui
