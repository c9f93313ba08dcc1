#pragma once
// Numbers on the command line, said back as the user wrote them. CLI11 reads an integer beyond
// 64 bits ("99999999999999999999") as 9223372036854775807 without a word, and answers "2.0" for
// an integer option with "Could not convert". Both are refused here in Loom's words.

#include <optional>  // no problem found
#include <string>    // messages

namespace loom::cli {

// The first argument that looks like an integer but does not fit 64 bits, as a message naming
// its option ("--devices=99999999999999999999 is out of range; …"); nothing when all fit.
std::optional<std::string> out_of_range_integer_argument(int argc, const char* const* argv);

// CLI11's "Could not convert: --global-batch-size = 2.0" as "--global-batch-size=2.0: expected an
// integer (…)" where the value is a number of another kind, else "…: expected a number".
std::string conversion_error_message(const std::string& what);

}  // namespace loom::cli
