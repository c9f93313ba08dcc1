// loom-gui: the desktop app. `loom-gui [PLAN.json] [--db loom.db]`.

#include "core/error.hpp"
#include "gui/main_window.hpp"

#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>
#include <QWindow>

#include <cstdio>   // std::fprintf
#include <cstdlib>  // std::getenv, std::_Exit

namespace {

int fail(const QString& message, int status) {
  std::fprintf(stderr, "loom-gui: error: %s\n", qPrintable(message));
  return status;
}

constexpr const char* kDisplayAdvice =
    "set DISPLAY (or WAYLAND_DISPLAY) to a running display, run it under xvfb-run, or set QT_QPA_PLATFORM=offscreen";

// Where no platform Qt knows could take a window: no display variable and no platform chosen.
bool no_display_at_all() {
  auto set = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0';
  };
  return !set("DISPLAY") && !set("WAYLAND_DISPLAY") && !set("QT_QPA_PLATFORM");
}

// While the application starts, Qt's platform plugin reports a display it cannot reach in several
// lines and then aborts (status 134). Those lines are held back, and the abort becomes one line
// and status 1, like every other failure of Loom's.
void startup_message_handler(QtMsgType type, const QMessageLogContext&, const QString&) {
  if (type != QtFatalMsg) return;
  // Qt's own words suggest reinstalling the application; what is wrong is the display.
  auto variable = [](const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : "(unset)";
  };
  std::fprintf(stderr, "loom-gui: error: cannot open a window: Qt's platform plugin could not start (DISPLAY=%s, "
               "QT_QPA_PLATFORM=%s); %s\n",
               variable("DISPLAY"), variable("QT_QPA_PLATFORM"), kDisplayAdvice);
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  // The arguments are checked before Qt looks for a display, so that a bad one is reported as
  // such even where no window could open.
  QStringList arguments;
  for (int i = 0; i < argc; ++i) arguments << QString::fromLocal8Bit(argv[i]);
  QCommandLineParser parser;
  parser.setApplicationDescription("Loom's desktop app: plan, inspect, execute and compare parallel training.");
  const QCommandLineOption help({"h", "help"}, "Show this help and exit.");
  const QCommandLineOption version("version", "Show the version and exit.");
  parser.addOption(help);
  parser.addOption(version);
  parser.addPositionalArgument("plan", "A plan JSON file to open in the Plan detail view.", "[plan.json]");
  const QCommandLineOption db({"d", "db"}, "The SQLite store runs are recorded in [default: the last one used, else ./loom.db].", "path");
  const QCommandLineOption quit_after("quit-after",
                                      "Quit this many milliseconds after the window is on screen (a start-up check).", "ms");
  parser.addOption(db);
  parser.addOption(quit_after);
  if (!parser.parse(arguments)) return fail(parser.errorText(), 2);
  if (parser.isSet(help)) {
    std::fputs(qPrintable(parser.helpText().replace("<executable_name>", "loom-gui")), stdout);
    return 0;
  }
  if (parser.isSet(version)) {
    std::puts("loom-gui 0.1.0");
    return 0;
  }
  if (parser.positionalArguments().size() > 1)
    return fail(QString("expected at most one plan file, got %1 arguments").arg(parser.positionalArguments().size()), 2);
  int quit_after_ms = -1;
  if (parser.isSet(quit_after)) {
    bool number = false;
    quit_after_ms = parser.value(quit_after).toInt(&number);
    if (!number || quit_after_ms < 0)
      return fail(QString("--quit-after=%1 must be a non-negative number of milliseconds").arg(parser.value(quit_after)), 2);
  }

  if (no_display_at_all()) return fail(QString("no display to open a window on; %1").arg(kDisplayAdvice), 1);
  const QtMessageHandler default_handler = qInstallMessageHandler(startup_message_handler);
  QApplication app(argc, argv);
  qInstallMessageHandler(default_handler);
  QApplication::setOrganizationName("loom");
  QApplication::setApplicationName("loom-gui");
  QApplication::setApplicationVersion("0.1.0");
  loom::gui::MainWindow window(parser.value(db));
  if (!parser.positionalArguments().isEmpty()) {
    try {
      window.openPlanFile(parser.positionalArguments().front());
    } catch (const loom::Error& e) {
      return fail(QString::fromStdString(e.what()), e.exit_code());
    }
  }
  window.show();
  if (quit_after_ms >= 0) {
    // The check passes only if the window really reached the screen.
    QTimer::singleShot(quit_after_ms, &app, [&window] {
      const bool exposed = window.windowHandle() && window.windowHandle()->isExposed();
      if (!exposed) std::fprintf(stderr, "loom-gui: error: the window never became visible\n");
      QApplication::exit(exposed ? 0 : 1);
    });
  }
  return QApplication::exec();
}
