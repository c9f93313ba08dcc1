#pragma once
// Declarative bad-input cases: in a fixture directory every NAME.expected holds the text the
// refusal of NAME.<input> must contain. Adding a case is adding two files.

#include "core/error.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace loom::testing {

// The message of the `Expected` error that `run` throws, or a note that it threw none.
template <typename Expected = InvalidInput, typename F>
std::string refusal(F run) {
  try {
    run();
  } catch (const Expected& error) {
    return error.what();
  }
  return "(no such error thrown)";
}

// The case names (stems of the .expected files), sorted.
inline std::vector<std::string> fixture_case_names(const std::filesystem::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory))
    if (entry.is_regular_file() && entry.path().extension() == ".expected") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The first line of NAME.expected, without its line ending.
inline std::string fixture_expected_text(const std::filesystem::path& directory, const std::string& name) {
  std::ifstream file(directory / (name + ".expected"));
  std::string text;
  std::getline(file, text);
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n')) text.pop_back();
  return text;
}

}  // namespace loom::testing
