#pragma once
// How the CLI prints numbers to people: thousands separators, and units on every quantity.

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cli {

std::string with_thousands(int64_t value);          // 124439808 → "124,439,808"
std::string human_count(double value);               // 1.24e8 → "124.4M", 1.75e11 → "175.0B"
std::string human_bytes(double bytes);               // binary units: "80.0 GiB"
std::string human_si(double value, const std::string& unit);  // "5.12 PFLOP", "312.0 TFLOP/s"

// A plain text table: a header row, then rows; columns padded to their widest cell.
// Columns listed in `right_aligned` are aligned right (numbers).
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header, std::vector<size_t> right_aligned = {});
  void add_row(std::vector<std::string> row);
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<size_t> right_aligned_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace loom::cli
