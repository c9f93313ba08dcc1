#pragma once
// Reading a training log written by another framework (Megatron-LM, llm.c) line by line, with the
// limits and the messages every log parser shares: "train.log:57: expected a number after
// 'elapsed time per iteration (ms):', found 'abc'".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::plan {

// The longest step a log may report: 11 days (core/profile.hpp's largest sample time). A longer
// one is a garbled number, which would otherwise reach the store and every mean made from it.
inline constexpr double kMaxLoggedStepMs = 1e9;

// Logs are read whole; a training log of a long run at log-interval 1 is tens of MiB, so 1 GiB
// refuses only what is not a log (or a log that should be cut first).
inline constexpr int64_t kMaxTrainingLogBytes = int64_t(1) << 30;
// Megatron's longest lines (the iteration line with every optional field) are under 1 KiB.
inline constexpr int64_t kMaxTrainingLogLineBytes = int64_t(1) << 20;

struct LogLine {
  int64_t number = 0;  // 1-based
  std::string_view text;
};

struct LogText {
  std::string name;     // the file name, for messages
  std::string content;  // the whole file
  std::vector<LogLine> lines;  // views into content, without their line endings
  // The last line when the file ends without a newline: a log cut while it was written (a run
  // killed mid-print). It is left out of `lines` and counted as ignored by the parsers.
  std::optional<LogLine> unfinished_last_line;
};

// Reads `path` through core::read_limited_file (regular files only, at most
// kMaxTrainingLogBytes). InvalidInput for an empty file, binary data (a NUL byte), or a line over
// kMaxTrainingLogLineBytes, each naming the file and line.
LogText read_log_text(const std::string& path);
// The same checks over text already in memory (tests); `name` stands for the file in messages.
LogText split_log_text(std::string content, std::string name);

// "name:line: message", for InvalidInput.
std::string log_position(const LogText& log, int64_t line);

std::string_view trim(std::string_view text);
// The whole of `text` (trimmed) as a number; nullopt when it is not one. Accepts nan and inf.
std::optional<double> parse_double(std::string_view text);
std::optional<int64_t> parse_int(std::string_view text);

}  // namespace loom::plan
