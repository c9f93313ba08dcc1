#include "cli/number_arguments.hpp"

#include <fmt/format.h>  // messages

#include <cerrno>    // ERANGE
#include <cmath>     // std::isfinite
#include <cstdint>   // INT64_MIN, INT64_MAX
#include <cstdlib>   // std::strtoll, std::strtod
#include <string_view>

namespace loom::cli {
namespace {

bool looks_like_integer(std::string_view text) {
  if (text.starts_with('-') || text.starts_with('+')) text.remove_prefix(1);
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

bool fits_int64(const std::string& text) {
  errno = 0;
  std::strtoll(text.c_str(), nullptr, 10);
  return errno != ERANGE;
}

}  // namespace

std::optional<std::string> out_of_range_integer_argument(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i], option, value = argument;
    if (argument.starts_with("--") && argument.find('=') != std::string::npos) {
      option = argument.substr(0, argument.find('='));
      value = argument.substr(argument.find('=') + 1);
    } else if (i > 1 && std::string_view(argv[i - 1]).starts_with("-") && !looks_like_integer(argv[i - 1])) {
      option = argv[i - 1];
    }
    if (!looks_like_integer(value) || fits_int64(value)) continue;
    return fmt::format("{}{}{} is out of range; expected an integer from {} to {}", option, option.empty() ? "" : "=",
                       value, INT64_MIN, INT64_MAX);
  }
  return std::nullopt;
}

std::string conversion_error_message(const std::string& what) {
  // CLI11 2.x: "Could not convert: OPTION = VALUE".
  constexpr std::string_view kPrefix = "Could not convert: ";
  const size_t equals = what.find(" = ");
  if (!what.starts_with(kPrefix) || equals == std::string::npos) return what + ": expected a number";
  const std::string option = what.substr(kPrefix.size(), equals - kPrefix.size());
  const std::string value = what.substr(equals + 3);
  char* end = nullptr;
  const double number = std::strtod(value.c_str(), &end);
  const bool is_number = !value.empty() && end == value.c_str() + value.size() && std::isfinite(number);
  if (is_number) return fmt::format("{}={}: expected an integer (write it without a decimal point or exponent)", option, value);
  return fmt::format("{}={}: expected a number", option, value);
}

}  // namespace loom::cli
