#pragma once
// What a file that is not a regular one is, in the user's words, for the messages of the input
// reader (core/input_file) and the output writer (core/output_file) alike.

#include <sys/types.h>  // mode_t

#include <string_view>

namespace loom::core {

// "a directory", "a FIFO (named pipe)", "a character device", "a block device", "a socket".
std::string_view file_kind_text(mode_t mode);

}  // namespace loom::core
