#include "core/checkpoint_layout.hpp"

#include "core/output_file.hpp"  // is_temporary_file_name

#include <algorithm>  // std::sort
#include <cctype>     // std::isdigit

namespace loom::core {

namespace fs = std::filesystem;

std::optional<int64_t> parse_checkpoint_step_name(const std::string& name) {
  if (!name.starts_with(kCheckpointStepPrefix) || name.size() == kCheckpointStepPrefix.size() ||
      name.size() > kCheckpointStepPrefix.size() + 18)  // 18 digits always fit int64
    return std::nullopt;
  int64_t step = 0;
  for (char c : name.substr(kCheckpointStepPrefix.size())) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

std::vector<std::pair<int64_t, fs::path>> checkpoint_step_directories(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::optional<int64_t> step = parse_checkpoint_step_name(name);
    if (step && entry.is_directory() && !is_temporary_file_name(name)) steps.emplace_back(*step, entry.path());
  }
  std::sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return steps;
}

bool is_foreign_checkpoint_manifest(const Json& json) {
  if (!json.is_object()) return false;
  const auto format = json.find("format");
  const auto version = json.find("version");
  return (format != json.end() && *format != Json(std::string(kCheckpointFormat))) ||
         (version != json.end() && *version != Json(kCheckpointVersion));
}

}  // namespace loom::core
