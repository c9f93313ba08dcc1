#pragma once
// What every GUI test binary shares: a main() that makes the QApplication (offscreen unless the
// environment says otherwise, with settings in a fresh directory), waiting on the event loop,
// and grabbing a widget to build/screenshots/ for reviewers.

#include "../loom_tiny_plan.hpp"
#include "core/plan.hpp"

#include <QString>
#include <QWidget>

#include <chrono>
#include <functional>

namespace loom::gui::test {

// Processes events until `done` holds or `timeout` passes; returns whether it held.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Renders `widget` (shown and laid out at `size`) to LOOM_SCREENSHOTS_DIR/<name>.png; returns the path.
QString save_screenshot(QWidget& widget, const QString& name, QSize size = QSize(1400, 900));

// build/bin, where loom, loom-exec and loom-gui are.
QString binary_dir();

// A directory that lives as long as the test binary.
QString scratch_dir();

// The run tests' plan (tests/loom_tiny_plan.hpp): small enough to train here in about a second.
using loom::testing::loom_tiny_two_stage_plan;

}  // namespace loom::gui::test
