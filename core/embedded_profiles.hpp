#pragma once
// The JSON files of profiles/, compiled in by CMake (see core/CMakeLists.txt) so that `loom`
// works from any directory.

#include <span>
#include <string_view>

namespace loom::core {

struct EmbeddedFile {
  std::string_view name;
  std::string_view contents;
};

std::span<const EmbeddedFile> embedded_profile_files();

}  // namespace loom::core
