#pragma once
// `loom run` as a child process, for the Execute view: the GUI never links MPI or CUDA, so a run
// is the very command a user would type (shown before it starts). Its JSON lines become signals;
// a cancel sends SIGTERM (loom run stops every rank and marks the run cancelled), then kills it
// if it has not ended after a grace period.

#include <QByteArray>
#include <QObject>
#include <QProcess>
#include <QString>
#include <QStringList>

namespace loom::gui {

// What `loom run` is asked to do.
struct RunRequest {
  QString plan_path;
  int steps = 0;             // 0: the plan's train-iters
  QString data_path;         // empty: the built-in corpus
  QString backend = "cpu";   // the only one `loom run` accepts until the executor has CUDA
  QString launcher = "mpirun";  // mpirun, srun or none
  QString store_path;        // the SQLite store the run is recorded in
  // The profile whose prediction the run is stored against (a built-in name or a profile file);
  // empty: the plan's own.
  QString profile;
  int threads = 0;           // per rank; 0: loom run's launch rule (a measured CPU profile's threads)
  QString checkpoint_dir;    // --checkpoint-dir: where the run writes (and, resuming, reads) checkpoints
  bool resume = false;       // --resume: continue from the newest complete checkpoint in checkpoint_dir
};

class RunProcess : public QObject {
  Q_OBJECT
 public:
  explicit RunProcess(QObject* parent = nullptr);
  // Stops a run still going the way cancel() does, waiting for it: never leaves ranks behind.
  ~RunProcess() override;

  // `loom` next to this application (build/bin/loom beside loom-gui).
  static QString defaultLoomPath();
  void setLoomPath(const QString& path) { loom_path_ = path; }
  const QString& loomPath() const { return loom_path_; }
  // How long a cancelled `loom run` may take to stop its ranks before it is killed.
  void setCancelGraceMs(int ms) { cancel_grace_ms_ = ms; }

  static QStringList arguments(const RunRequest& request);
  // The command as a shell would take it, quoted where needed.
  QString commandLine(const RunRequest& request) const;

  void start(const RunRequest& request);
  void cancel();
  bool isRunning() const { return process_.state() != QProcess::NotRunning; }
  // The store's id of the run, once `loom run` has said it; 0 before.
  qint64 runId() const { return run_id_; }
  // The last lines `loom run` wrote to its standard error (its messages and the ranks').
  const QStringList& lastErrorLines() const { return error_lines_; }

  // One line of `loom run --jsonl`'s standard output. Public so that tests can feed lines.
  void handleOutputLine(const QByteArray& line);

 signals:
  void runStarted(qint64 run_id);
  void step(qint64 step, double loss, double step_time_s, double tokens_per_s);
  // Standard error, and anything on standard output that is not a JSON line, as it comes.
  void logLine(const QString& line);
  // `message` says how it ended ("completed", "cancelled by the user", loom's error message).
  void finished(qint64 run_id, bool succeeded, const QString& message);

 private:
  void readOutput();
  void readErrors();
  void keepErrorLine(const QString& line);
  void onFinished(int exit_code, QProcess::ExitStatus status);
  void onError(QProcess::ProcessError error);
  QString failureMessage(int exit_code, QProcess::ExitStatus status) const;

  QProcess process_;
  QString loom_path_;
  QByteArray partial_error_line_;
  QStringList error_lines_;
  qint64 run_id_ = 0;
  qint64 last_step_ = 0;
  int cancel_grace_ms_ = 15000;  // loom run itself kills a launcher that ignores it after 10 s
  bool cancel_requested_ = false;
  bool reported_ = false;
};

// `word` quoted for a POSIX shell when it needs to be.
QString shell_quoted(const QString& word);

}  // namespace loom::gui
