#pragma once
// The plan form's mixed-cluster field: device groups in pipeline order, typed as
// "1x8:a100-80gb-dgx, 1x8:h100-80gb-dgx" (as `loom plan --cluster-groups`), with what they mean
// shown under it: which ranks sit on which kind of device. Empty: one kind of device, given by
// the nodes, devices-per-node and profile fields above it.

#include "core/cluster_spec.hpp"

#include <QWidget>

#include <vector>

class QLabel;
class QLineEdit;

namespace loom::gui {

class ClusterGroupsField : public QWidget {
  Q_OBJECT
 public:
  explicit ClusterGroupsField(QWidget* parent = nullptr);

  // The groups typed; empty when none are, or when the text cannot be read (see problem()).
  std::vector<core::DeviceGroup> groups() const;
  // Why the text cannot be read; empty when it can.
  QString problem() const;
  void setGroups(const std::vector<core::DeviceGroup>& groups);
  QString text() const;
  void setText(const QString& text);
  // "ranks 0–7 on a100-80gb-dgx (stages placed first), ranks 8–15 on h100-80gb-dgx"; empty without groups.
  QString placementText() const;
  // The label under the field that shows a problem (the form hides and shows it with the others).
  QLabel* problemLabel() const { return problem_; }

 signals:
  void changed();

 private:
  void refresh();

  QLineEdit* edit_ = nullptr;
  QLabel* problem_ = nullptr;
  QLabel* placement_ = nullptr;
};

}  // namespace loom::gui
