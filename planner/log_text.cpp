#include "planner/log_text.hpp"

#include "core/error.hpp"       // InvalidInput
#include "core/input_file.hpp"  // read_limited_file, size_text

#include <charconv>    // std::from_chars
#include <filesystem>  // the file name for messages

namespace loom::plan {

LogText split_log_text(std::string content, std::string name) {
  LogText log;
  log.name = std::move(name);
  log.content = std::move(content);
  if (log.content.empty()) throw InvalidInput("{}: the log is empty", log.name);
  const std::string_view all = log.content;
  int64_t number = 0;
  size_t start = 0;
  while (start < all.size()) {
    ++number;
    const size_t end = all.find('\n', start);
    const size_t stop = end == std::string_view::npos ? all.size() : end;
    std::string_view text = all.substr(start, stop - start);
    if (int64_t(text.size()) > kMaxTrainingLogLineBytes)
      throw InvalidInput("{}:{}: the line is {} long; training log lines are limited to {}", log.name, number,
                         core::size_text(int64_t(text.size())), core::size_text(kMaxTrainingLogLineBytes));
    if (text.find('\0') != std::string_view::npos)
      throw InvalidInput("{}:{}: binary data (a NUL byte), not a text training log", log.name, number);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (end == std::string_view::npos) {
      log.unfinished_last_line = LogLine{number, text};
      break;
    }
    log.lines.push_back({number, text});
    start = end + 1;
  }
  return log;
}

LogText read_log_text(const std::string& path) {
  std::string content = core::read_limited_file(path, kMaxTrainingLogBytes, "training logs");
  return split_log_text(std::move(content), std::filesystem::path(path).filename().string());
}

std::string log_position(const LogText& log, int64_t line) { return log.name + ":" + std::to_string(line); }

std::string_view trim(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::optional<double> parse_double(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<int64_t> parse_int(std::string_view text) {
  text = trim(text);
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace loom::plan
