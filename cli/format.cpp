#include "cli/format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace loom::cli {

std::string with_thousands(int64_t value) {
  const bool negative = value < 0;
  std::string digits = std::to_string(negative ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

std::string human_count(double value) {
  static constexpr std::array<std::pair<double, const char*>, 4> scales{
      {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}}};
  for (const auto& [scale, suffix] : scales)
    if (std::abs(value) >= scale) return fmt::format("{:.1f}{}", value / scale, suffix);
  return fmt::format("{:.0f}", value);
}

std::string human_bytes(double bytes) {
  static constexpr std::array<const char*, 6> units{"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (std::abs(bytes) >= 1024.0 && unit + 1 < units.size()) {
    bytes /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

std::string human_si(double value, const std::string& unit) {
  static constexpr std::array<std::pair<double, const char*>, 7> prefixes{
      {{1e21, "Z"}, {1e18, "E"}, {1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}}};
  for (const auto& [scale, prefix] : prefixes)
    if (std::abs(value) >= scale) return fmt::format("{:.2f} {}{}", value / scale, prefix, unit);
  return fmt::format("{:.2f} {}", value, unit);
}

TextTable::TextTable(std::vector<std::string> header, std::vector<size_t> right_aligned)
    : header_(std::move(header)), right_aligned_(std::move(right_aligned)) {}

void TextTable::add_row(std::vector<std::string> row) {
  row.resize(header_.size());
  rows_.push_back(std::move(row));
}

std::string TextTable::render() const {
  std::vector<size_t> widths(header_.size());
  auto widen = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  };
  widen(header_);
  for (const auto& row : rows_) widen(row);
  auto render_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const bool right = std::find(right_aligned_.begin(), right_aligned_.end(), c) != right_aligned_.end();
      const std::string cell = right ? fmt::format("{:>{}}", row[c], widths[c])
                                     : fmt::format("{:<{}}", row[c], widths[c]);
      line += (c == 0 ? "" : "  ") + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out = render_row(header_);
  for (const auto& row : rows_) out += render_row(row);
  return out;
}

}  // namespace loom::cli
