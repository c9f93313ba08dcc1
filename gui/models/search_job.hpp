#pragma once
// The planner's search, off the GUI thread: progress and the result come back through queued
// calls, a new search or cancel() makes the running one stale (its result is dropped), and the
// job waits for its thread before it goes away.

#include "planner/search.hpp"

#include <QFuture>
#include <QObject>

#include <atomic>
#include <memory>

namespace loom::gui {

class SearchJob : public QObject {
  Q_OBJECT
 public:
  explicit SearchJob(QObject* parent = nullptr);
  ~SearchJob() override;

  // Starts searching; a search still running is cancelled and its result never reported.
  void start(const plan::SearchRequest& request, plan::SearchOptions options);
  // Stops the running search; `cancelled` is emitted once it has stopped.
  void cancel();
  bool isRunning() const { return running_; }

 signals:
  void progressChanged(double fraction);
  void finished(std::shared_ptr<const plan::SearchResult> result);
  void failed(const QString& message);
  void cancelled();

 private:
  // Called on the GUI thread; drops what belongs to an earlier search.
  void report(quint64 generation, const std::function<void()>& emit_it);

  quint64 generation_ = 0;
  bool running_ = false;
  std::shared_ptr<std::atomic<bool>> cancel_requested_;
  QFuture<void> future_;
};

}  // namespace loom::gui
