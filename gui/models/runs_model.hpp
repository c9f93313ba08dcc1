#pragma once
// The Runs table: every run in a store, with who measured it (Loom, or an imported Megatron-LM or
// llm.c log), its plan, status, steps, last loss and steady step time. reload() reads the store
// again, keeping rows in place so that a selection survives the refreshes made while a run
// writes. Display text carries units; SortRole carries raw numbers.

// Qt before Loom: moc (Qt 6.4) fails to parse <concepts> (from core/store.hpp) when that is the
// first standard header it meets.
#include <QAbstractTableModel>
#include <QString>

#include "core/store.hpp"

#include <cstdint>
#include <map>
#include <vector>

namespace loom::gui {

class RunsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { id, source, plan, status, started, steps, last_loss, step_time, column_count };
  enum Role { SortRole = Qt::UserRole, RunIdRole };

  struct Row {
    int64_t id = 0;
    QString source;  // "loom", "megatron", "llmc" (core::RunRow::source)
    QString plan;  // "loom-tiny  tp 1 · pp 2 · dp 1"
    core::RunStatus status = core::RunStatus::running;
    QString reason;      // why it failed
    QString started_at;  // ISO-8601 UTC, as stored
    int64_t steps = 0;
    double last_loss = 0;           // NaN without steps
    double steady_step_time_s = 0;  // after the warm-up; 0 without steps
    bool operator==(const Row&) const = default;
  };

  explicit RunsModel(QObject* parent = nullptr);

  // Reads the runs of the store at `store_path` (no file yet: no runs). Opens the store for this
  // call only, on the calling thread. Throws loom::Error when the file is not a readable store.
  void reload(const QString& store_path);
  void clear();

  const Row& row(int index) const { return rows_.at(size_t(index)); }
  // The row of the run, or -1.
  int rowOfRun(int64_t run_id) const;
  // Whether some run is still being written.
  bool anyRunning() const;

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

 private:
  std::vector<Row> rows_;
  QString store_path_;
  // Finished runs never change: their rows are read once per store.
  std::map<int64_t, Row> finished_;
};

// The plan's model and split, as the Runs view labels a run.
QString plan_label(const core::PlanRow& plan);
// Who measured a run, as the Runs view names it: "Loom", "Megatron-LM", "llm.c" (else as stored).
QString source_label(const QString& source);

}  // namespace loom::gui
