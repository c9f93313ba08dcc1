#include "cli/progress_bar.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace loom::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)), terminal_(isatty(fileno(stderr)) != 0), started_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (drawn_) fmt::print(stderr, "\r\033[K");
}

void ProgressBar::update(double fraction) {
  if (!terminal_) return;
  if (std::chrono::steady_clock::now() - started_ < std::chrono::seconds(1)) return;
  const int percent = int(fraction * 100.0);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  fmt::print(stderr, "\r{} [{}{}] {:3d} %", label_, std::string(size_t(filled), '#'), std::string(size_t(kWidth - filled), ' '),
             percent);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace loom::cli
