#include "gui/models/search_job.hpp"

#include "core/error.hpp"

#include <QtConcurrent/QtConcurrentRun>

namespace loom::gui {

SearchJob::SearchJob(QObject* parent) : QObject(parent) {
  // Queued connections and QSignalSpy carry the result as a QVariant.
  qRegisterMetaType<std::shared_ptr<const plan::SearchResult>>();
}

SearchJob::~SearchJob() {
  if (cancel_requested_) *cancel_requested_ = true;
  future_.waitForFinished();
}

void SearchJob::report(quint64 generation, const std::function<void()>& emit_it) {
  if (generation != generation_) return;  // a later search, or a cancel, made this one stale
  emit_it();
}

void SearchJob::start(const plan::SearchRequest& request, plan::SearchOptions options) {
  // The previous search stops at its next check (a chunk of plans): wait for it, so that no
  // thread outlives this job.
  if (cancel_requested_) *cancel_requested_ = true;
  future_.waitForFinished();
  const quint64 generation = ++generation_;
  auto cancel_requested = std::make_shared<std::atomic<bool>>(false);
  cancel_requested_ = cancel_requested;
  running_ = true;
  // Progress reaches the GUI thread at most once per percent.
  auto last_percent = std::make_shared<std::atomic<int>>(-1);
  options.progress = [this, generation, last_percent](double fraction) {
    const int percent = int(fraction * 100);
    if (last_percent->exchange(percent) == percent) return;
    QMetaObject::invokeMethod(
        this, [this, generation, fraction] { report(generation, [&] { emit progressChanged(fraction); }); },
        Qt::QueuedConnection);
  };
  options.cancelled = [cancel_requested] { return cancel_requested->load(); };
  future_ = QtConcurrent::run([this, generation, request, options] {
    std::function<void()> outcome;
    try {
      auto result = std::make_shared<const plan::SearchResult>(plan::search(request, options));
      outcome = [this, result] { emit finished(result); };
    } catch (const Cancelled&) {
      outcome = [this] { emit cancelled(); };
    } catch (const std::exception& e) {
      outcome = [this, message = QString::fromStdString(e.what())] { emit failed(message); };
    }
    QMetaObject::invokeMethod(
        this,
        [this, generation, outcome] {
          if (generation != generation_) return;
          running_ = false;
          outcome();
        },
        Qt::QueuedConnection);
  });
}

void SearchJob::cancel() {
  if (!running_) return;
  *cancel_requested_ = true;
  // The cancelled search reports `cancelled` itself once its thread stops.
}

}  // namespace loom::gui
