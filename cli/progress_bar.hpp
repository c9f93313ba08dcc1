#pragma once
// A one-line progress bar on standard error, shown only on a terminal and only once the work
// has taken longer than a second (quick searches and piped output stay clean).

#include <chrono>
#include <string>

namespace loom::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();  // clears the line if anything was drawn
  void update(double fraction);

 private:
  std::string label_;
  bool terminal_;
  bool drawn_ = false;
  int last_percent_ = -1;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace loom::cli
