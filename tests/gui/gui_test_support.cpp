#include "gui_test_support.hpp"

#include <gtest/gtest.h>

#include <QApplication>
#include <QDir>
#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QThread>

#include <memory>

namespace loom::gui::test {
namespace {
QTemporaryDir* scratch = nullptr;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  QElapsedTimer timer;
  timer.start();
  while (!done()) {
    if (timer.elapsed() > timeout.count()) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 50);
    QThread::msleep(5);
  }
  return true;
}

QString save_screenshot(QWidget& widget, const QString& name, QSize size) {
  widget.resize(size);
  widget.show();
  QCoreApplication::processEvents();
  const QString dir = QString::fromUtf8(LOOM_SCREENSHOTS_DIR);
  QDir().mkpath(dir);
  const QString path = dir + "/" + name + ".png";
  EXPECT_TRUE(widget.grab().save(path)) << "cannot write " << path.toStdString();
  return path;
}

QString binary_dir() { return QString::fromUtf8(LOOM_BIN_DIR); }

QString scratch_dir() { return scratch->path(); }


}  // namespace loom::gui::test

int main(int argc, char** argv) {
  // Tests draw offscreen unless told otherwise, and never read or write the user's settings.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  auto settings_home = std::make_unique<QTemporaryDir>();
  qputenv("XDG_CONFIG_HOME", settings_home->path().toUtf8());
  QApplication app(argc, argv);
  QCoreApplication::setOrganizationName("loom-tests");
  QCoreApplication::setApplicationName("loom-gui-tests");
  loom::gui::test::scratch = new QTemporaryDir();
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  delete loom::gui::test::scratch;
  return status;
}
