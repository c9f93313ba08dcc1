#include "gui/models/run_process.hpp"

#include <QCoreApplication>
#include <QDir>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QTimer>

#include <limits>

namespace loom::gui {
namespace {

constexpr int kKeptErrorLines = 40;

double number_or_nan(const QJsonValue& value) {
  // A diverged loss is written as null.
  return value.isDouble() ? value.toDouble() : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

QString shell_quoted(const QString& word) {
  static const QRegularExpression plain(QStringLiteral("^[A-Za-z0-9_./=:,+@%-]+$"));
  if (plain.match(word).hasMatch()) return word;
  QString quoted = word;
  quoted.replace(QLatin1String("'"), QLatin1String("'\\''"));
  return "'" + quoted + "'";
}

RunProcess::RunProcess(QObject* parent) : QObject(parent), loom_path_(defaultLoomPath()) {
  connect(&process_, &QProcess::readyReadStandardOutput, this, &RunProcess::readOutput);
  connect(&process_, &QProcess::readyReadStandardError, this, &RunProcess::readErrors);
  connect(&process_, &QProcess::finished, this, &RunProcess::onFinished);
  connect(&process_, &QProcess::errorOccurred, this, &RunProcess::onError);
}

RunProcess::~RunProcess() {
  if (!isRunning()) return;
  // Nobody is left to hear how it ended.
  process_.disconnect(this);
  process_.terminate();
  if (!process_.waitForFinished(cancel_grace_ms_)) {
    process_.kill();
    process_.waitForFinished(2000);
  }
}

QString RunProcess::defaultLoomPath() {
  return QDir(QCoreApplication::applicationDirPath()).filePath(QStringLiteral("loom"));
}

QStringList RunProcess::arguments(const RunRequest& r) {
  QStringList args = {QStringLiteral("run"), r.plan_path, QStringLiteral("--jsonl")};
  if (!r.store_path.isEmpty()) args << QStringLiteral("--db") << r.store_path;
  if (r.steps > 0) args << QStringLiteral("--steps") << QString::number(r.steps);
  if (!r.data_path.isEmpty()) args << QStringLiteral("--data") << r.data_path;
  args << QStringLiteral("--backend") << r.backend << QStringLiteral("--launcher") << r.launcher;
  if (!r.profile.isEmpty()) args << QStringLiteral("--profile") << r.profile;
  if (r.threads > 0) args << QStringLiteral("--threads") << QString::number(r.threads);
  if (!r.checkpoint_dir.isEmpty()) args << QStringLiteral("--checkpoint-dir") << r.checkpoint_dir;
  if (r.resume && !r.checkpoint_dir.isEmpty()) args << QStringLiteral("--resume");
  return args;
}

QString RunProcess::commandLine(const RunRequest& request) const {
  QStringList words = {shell_quoted(loom_path_)};
  for (const QString& a : arguments(request)) words << shell_quoted(a);
  return words.join(' ');
}

void RunProcess::start(const RunRequest& request) {
  if (isRunning()) return;
  run_id_ = 0;
  last_step_ = 0;
  cancel_requested_ = false;
  reported_ = false;
  error_lines_.clear();
  partial_error_line_.clear();
  process_.setProgram(loom_path_);
  process_.setArguments(arguments(request));
  process_.start(QIODevice::ReadOnly);
}

void RunProcess::cancel() {
  if (!isRunning() || cancel_requested_) return;
  cancel_requested_ = true;
  process_.terminate();
  QTimer::singleShot(cancel_grace_ms_, this, [this] {
    if (cancel_requested_ && isRunning()) process_.kill();
  });
}

void RunProcess::handleOutputLine(const QByteArray& line) {
  const QByteArray trimmed = line.trimmed();
  if (trimmed.isEmpty()) return;
  QJsonParseError error;
  const QJsonDocument document = QJsonDocument::fromJson(trimmed, &error);
  if (error.error != QJsonParseError::NoError || !document.isObject()) {
    emit logLine(QString::fromUtf8(trimmed));
    return;
  }
  const QJsonObject json = document.object();
  if (json.value(QStringLiteral("event")).toString() == QLatin1String("run")) {
    run_id_ = json.value(QStringLiteral("run_id")).toInteger();
    emit runStarted(run_id_);
  } else if (json.contains(QStringLiteral("step"))) {
    last_step_ = json.value(QStringLiteral("step")).toInteger();
    emit step(last_step_, number_or_nan(json.value(QStringLiteral("loss"))),
              number_or_nan(json.value(QStringLiteral("step_time_s"))),
              number_or_nan(json.value(QStringLiteral("tokens_per_s"))));
  }
}

void RunProcess::readOutput() {
  while (process_.canReadLine()) handleOutputLine(process_.readLine());
}

void RunProcess::readErrors() {
  partial_error_line_ += process_.readAllStandardError();
  qsizetype end = 0;
  while ((end = partial_error_line_.indexOf('\n')) >= 0) {
    keepErrorLine(QString::fromUtf8(partial_error_line_.left(end)));
    partial_error_line_.remove(0, end + 1);
  }
}

void RunProcess::keepErrorLine(const QString& line) {
  if (line.trimmed().isEmpty()) return;
  error_lines_ << line;
  while (error_lines_.size() > kKeptErrorLines) error_lines_.removeFirst();
  emit logLine(line);
}

void RunProcess::onFinished(int exit_code, QProcess::ExitStatus status) {
  readOutput();
  if (process_.bytesAvailable() > 0) handleOutputLine(process_.readAllStandardOutput());
  readErrors();
  if (!partial_error_line_.isEmpty()) keepErrorLine(QString::fromUtf8(partial_error_line_));
  partial_error_line_.clear();
  if (reported_) return;
  reported_ = true;
  const bool succeeded = status == QProcess::NormalExit && exit_code == 0 && !cancel_requested_;
  const QString message = succeeded ? tr("completed %n step(s)", nullptr, int(last_step_))
                                    : failureMessage(exit_code, status);
  cancel_requested_ = false;
  emit finished(run_id_, succeeded, message);
}

void RunProcess::onError(QProcess::ProcessError error) {
  // Only a failed start ends without finished(); the rest are reported there.
  if (error != QProcess::FailedToStart || reported_) return;
  reported_ = true;
  emit finished(run_id_, false, tr("cannot start %1: %2").arg(loom_path_, process_.errorString()));
}

QString RunProcess::failureMessage(int exit_code, QProcess::ExitStatus status) const {
  if (cancel_requested_) return tr("cancelled by the user");
  // loom's own explanation, when it gave one.
  static const QString prefix = QStringLiteral("loom: error: ");
  for (auto line = error_lines_.crbegin(); line != error_lines_.crend(); ++line)
    if (line->startsWith(prefix)) return line->mid(prefix.size());
  if (status == QProcess::CrashExit) return tr("loom run crashed");
  const QString last = error_lines_.isEmpty() ? QString() : QStringLiteral(": ") + error_lines_.back();
  return tr("loom run exited with status %1%2").arg(exit_code).arg(last);
}

}  // namespace loom::gui
