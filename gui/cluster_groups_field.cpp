#include "gui/cluster_groups_field.hpp"

#include "core/error.hpp"
#include "gui/models/plan_inputs.hpp"

#include <QLabel>
#include <QLineEdit>
#include <QVBoxLayout>

namespace loom::gui {

ClusterGroupsField::ClusterGroupsField(QWidget* parent) : QWidget(parent) {
  edit_ = new QLineEdit;
  edit_->setObjectName(QStringLiteral("cluster-groups"));
  edit_->setPlaceholderText(tr("one kind of device (e.g. 1x8:a100-80gb-dgx, 1x8:h100-80gb-dgx for a mixed cluster)"));
  edit_->setToolTip(tr("A mixed cluster: NODESxDEVICES-PER-NODE:PROFILE per group, in pipeline order (the first "
                       "group holds the first stages). Each group must hold whole pipeline stages, so that no "
                       "tensor- or data-parallel group mixes two kinds of device."));
  problem_ = new QLabel;
  problem_->setWordWrap(true);
  problem_->setStyleSheet("color: #c62828;");
  problem_->hide();
  placement_ = new QLabel;
  placement_->setObjectName(QStringLiteral("cluster-placement"));
  placement_->setWordWrap(true);
  auto* column = new QVBoxLayout(this);
  column->setContentsMargins(0, 0, 0, 0);
  column->addWidget(edit_);
  column->addWidget(problem_);
  column->addWidget(placement_);
  connect(edit_, &QLineEdit::textChanged, this, [this] {
    refresh();
    emit changed();
  });
}

std::vector<core::DeviceGroup> ClusterGroupsField::groups() const {
  try {
    return parse_device_groups(edit_->text().toStdString());
  } catch (const Error&) {
    return {};
  }
}

QString ClusterGroupsField::problem() const {
  try {
    parse_device_groups(edit_->text().toStdString());
    return {};
  } catch (const Error& e) {
    return QString::fromUtf8(e.what());
  }
}

void ClusterGroupsField::setGroups(const std::vector<core::DeviceGroup>& groups) {
  setText(QString::fromStdString(device_groups_text(groups)));
}

QString ClusterGroupsField::text() const { return edit_->text(); }

void ClusterGroupsField::setText(const QString& text) { edit_->setText(text); }

QString ClusterGroupsField::placementText() const {
  const std::vector<core::DeviceGroup> all = groups();
  QStringList parts;
  int64_t first_rank = 0;
  for (const core::DeviceGroup& group : all) {
    parts << tr("ranks %1–%2 on %3").arg(first_rank).arg(first_rank + group.devices() - 1).arg(QString::fromStdString(group.profile));
    first_rank += group.devices();
  }
  if (parts.isEmpty()) return {};
  return tr("Pipeline order: %1. Each plan's stages fill the groups in this order; every stage is timed on "
            "its own group's profile.")
      .arg(parts.join(QStringLiteral(", then ")));
}

void ClusterGroupsField::refresh() { placement_->setText(placementText()); }

}  // namespace loom::gui
