#pragma once
// The inputs of a command that are files, for core::check_output_target: an output may not be
// one of them. A model or profile named by a built-in name is not a file, even where a file of
// that name happens to exist (a plan written as `gpt2-124m` by a previous command).

#include <filesystem>  // std::filesystem::path
#include <string>      // option values

namespace loom::cli {

// The --model value as a file input, or an empty path for a preset name.
std::filesystem::path model_file_input(const std::string& model);
// The --profile value as a file input, or an empty path for a built-in profile name.
std::filesystem::path profile_file_input(const std::string& profile);

}  // namespace loom::cli
