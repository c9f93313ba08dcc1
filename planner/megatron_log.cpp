#include "planner/megatron_log.hpp"

#include "core/error.hpp"  // InvalidInput

#include <fmt/format.h>

#include <cctype>
#include <algorithm>
#include <cmath>

namespace loom::plan {
namespace {

constexpr double kBytesPerMegatronMB = 1024.0 * 1024.0;  // report_memory divides by 1024 * 1024

struct IterationMarker {
  int64_t iteration = 0;
  std::optional<int64_t> total;
  size_t fields_start = 0;  // just after the '|' that ends "iteration N/M |"
  bool timestamped = false;
};

size_t skip_spaces(std::string_view text, size_t at) {
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  return at;
}

size_t skip_digits(std::string_view text, size_t at) {
  while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
  return at;
}

// "iteration <spaces> N/<spaces> M |" (or "N/infinity |", as the validation-only loop prints)
// anywhere in the line: launchers prefix lines ("[default0]:", "0: ") and newer Megatron puts a
// timestamp first.
std::optional<IterationMarker> find_iteration_marker(std::string_view text) {
  constexpr std::string_view kWord = "iteration";
  for (size_t found = text.find(kWord); found != std::string_view::npos; found = text.find(kWord, found + 1)) {
    size_t at = found + kWord.size();
    if (at >= text.size() || text[at] != ' ') continue;
    at = skip_spaces(text, at);
    const size_t digits = at;
    at = skip_digits(text, at);
    if (at == digits || at >= text.size() || text[at] != '/') continue;
    IterationMarker marker;
    const auto iteration = parse_int(text.substr(digits, at - digits));
    if (!iteration) continue;
    marker.iteration = *iteration;
    at = skip_spaces(text, at + 1);
    if (text.substr(at, 8) == "infinity") {
      at += 8;
    } else {
      const size_t total_digits = at;
      at = skip_digits(text, at);
      if (at == total_digits) continue;
      marker.total = parse_int(text.substr(total_digits, at - total_digits));
      if (!marker.total) continue;
    }
    at = skip_spaces(text, at);
    if (at >= text.size() || text[at] != '|') continue;
    marker.fields_start = at + 1;
    marker.timestamped = text.substr(0, found).find('[') != std::string_view::npos &&
                         text.substr(0, found).find(':') != std::string_view::npos;
    return marker;
  }
  return std::nullopt;
}

struct Field {
  std::string_view key;
  std::string_view value;
  bool had_colon = true;
};

// "key: value" pieces between '|'; Megatron-LM v1.x wrote some as "key value".
std::vector<Field> split_fields(std::string_view text) {
  std::vector<Field> fields;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t bar = text.find('|', start);
    const std::string_view piece = trim(text.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start));
    if (!piece.empty()) {
      const size_t colon = piece.find(':');
      if (colon != std::string_view::npos) {
        fields.push_back({trim(piece.substr(0, colon)), trim(piece.substr(colon + 1)), true});
      } else {
        const size_t space = piece.find_last_of(' ');
        if (space == std::string_view::npos)
          fields.push_back({piece, {}, false});
        else
          fields.push_back({trim(piece.substr(0, space)), trim(piece.substr(space + 1)), false});
      }
    }
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  return fields;
}

class MegatronParser {
 public:
  explicit MegatronParser(const LogText& text) : text_(text) { log_.file_name = text.name; }

  MegatronLog run() {
    for (const LogLine& line : text_.lines) parse_line(line);
    if (text_.unfinished_last_line) ++log_.ignored_lines;
    if (log_.iterations.empty())
      throw InvalidInput(
          "{}: no Megatron-LM iteration lines ('iteration N/M | … | elapsed time per iteration (ms): … |') in {} "
          "lines; is it a Megatron-LM training log?",
          text_.name, text_.lines.size() + (text_.unfinished_last_line ? 1 : 0));
    if (saw_core_features_)
      log_.variant = "megatron-core";
    else if (saw_v1_fields_)
      log_.variant = "megatron-lm-v1";
    else
      log_.variant = "megatron-lm-v2";
    return std::move(log_);
  }

 private:
  enum class Table { none, minmax, max, all };

  [[noreturn]] void fail(const LogLine& line, const std::string& message) const {
    throw InvalidInput("{}: {}", log_position(text_, line.number), message);
  }

  double number(const LogLine& line, std::string_view key, std::string_view value, bool colon = true) const {
    const auto parsed = parse_double(value);
    if (!parsed)
      fail(line, fmt::format("expected a number after '{}{}', found '{}'", key, colon ? ":" : "", value));
    return *parsed;
  }

  int64_t count(const LogLine& line, std::string_view key, std::string_view value) const {
    const auto parsed = parse_int(value);
    if (!parsed || *parsed < 0)
      fail(line, fmt::format("expected a whole number after '{}:', found '{}'", key, value));
    return *parsed;
  }

  // Timer targets: the table printed after an iteration line belongs to it; tables before the
  // first iteration (setup timers) are read and dropped.
  std::map<std::string, TimerSeconds>& timer_target() {
    return log_.iterations.empty() ? dropped_timers_ : log_.iterations.back().timers;
  }

  void parse_line(const LogLine& line) {
    const std::string_view text = line.text;
    if (table_ != Table::none) {
      if (!text.empty() && (text.front() == ' ' || text.front() == '\t') && parse_table_entry(line)) return;
      table_ = Table::none;
    }
    if (in_arguments_) {
      parse_argument(line);
      return;
    }
    if (text.find("------------------------ arguments ------------------------") != std::string_view::npos) {
      in_arguments_ = true;
      return;
    }
    if (const auto marker = find_iteration_marker(text)) {
      parse_iteration(line, *marker);
      return;
    }
    if (text.find("elapsed time per iteration (ms)") != std::string_view::npos)
      fail(line, "expected 'iteration N/M |' before 'elapsed time per iteration (ms)'");
    if (text.find("memory (MB)") != std::string_view::npos) {
      parse_memory(line);
      return;
    }
    if (text.find("(min, max) time across ranks (ms):") != std::string_view::npos) {
      start_table(Table::minmax, "minmax");
      return;
    }
    if (text.find("max time across ranks (ms):") != std::string_view::npos) {
      start_table(Table::max, "max");
      return;
    }
    if (text.find("times across ranks (ms):") != std::string_view::npos) {
      start_table(Table::all, "all");
      return;
    }
    if (const size_t at = text.find("time (ms) |"); at != std::string_view::npos) {
      parse_one_line_timers(line, text.substr(at + 10));
      return;
    }
    if (text.find("> padded vocab (size: ") != std::string_view::npos) parse_padded_vocab(line);
  }

  void start_table(Table table, const char* format) {
    table_ = table;
    all_timer_name_.clear();
    log_.timer_format = format;
    if (table != Table::none) saw_core_features_ = true;
    timer_target().clear();
  }

  // False when the line is not a timer entry (the table has ended).
  bool parse_table_entry(const LogLine& line) {
    const std::string_view entry = trim(line.text);
    // Iteration and memory lines also start with a space, but hold '|' fields.
    if (entry.find('|') != std::string_view::npos || entry.empty() || entry.front() == '[') return false;
    const size_t colon = entry.rfind(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = entry.substr(0, colon);
    while (!name.empty() && (name.back() == '.' || name.back() == ' ')) name.remove_suffix(1);
    const std::string_view value = trim(entry.substr(colon + 1));
    if (name.empty()) return false;
    switch (table_) {
      case Table::minmax: {
        if (value.size() < 2 || value.front() != '(' || value.back() != ')' || value.find(',') == std::string_view::npos)
          fail(line, fmt::format("expected '(min, max)' times in ms after '{}:', found '{}'", name, value));
        const size_t comma = value.find(',');
        const double min_ms = number(line, name, value.substr(1, comma - 1));
        const double max_ms = number(line, name, value.substr(comma + 1, value.size() - comma - 2));
        put_timer(line, name, min_ms, max_ms);
        return true;
      }
      case Table::max: {
        const double ms = number(line, name, value);
        put_timer(line, name, ms, ms);
        return true;
      }
      case Table::all: {
        if (value.empty()) {
          all_timer_name_ = std::string(name);
          return true;
        }
        if (name.substr(0, 4) != "rank" || all_timer_name_.empty())
          fail(line, fmt::format("expected 'rank N: time' under a timer name, found '{}'", entry));
        const double ms = number(line, name, value);
        auto& timers = timer_target();
        const auto found = timers.find(all_timer_name_);
        if (found == timers.end())
          put_timer(line, all_timer_name_, ms, ms);
        else
          put_timer(line, all_timer_name_, std::min(found->second.min_s * 1e3, ms), std::max(found->second.max_s * 1e3, ms));
        return true;
      }
      case Table::none:
        break;
    }
    return false;
  }

  void put_timer(const LogLine& line, std::string_view name, double min_ms, double max_ms) {
    if (!std::isfinite(min_ms) || !std::isfinite(max_ms) || min_ms < 0 || max_ms < min_ms)
      fail(line, fmt::format("timer '{}': expected times in ms with 0 <= min <= max, found ({}, {})", name, min_ms, max_ms));
    timer_target()[std::string(name)] = TimerSeconds{min_ms / 1e3, max_ms / 1e3};
  }

  void parse_one_line_timers(const LogLine& line, std::string_view rest) {
    log_.timer_format = "one-line";
    auto& timers = timer_target();
    timers.clear();
    for (const Field& field : split_fields(rest)) {
      if (!field.had_colon) fail(line, fmt::format("expected 'timer-name: time' in the timer line, found '{}'", field.key));
      const double ms = number(line, field.key, field.value);
      put_timer(line, field.key, ms, ms);
    }
  }

  void parse_argument(const LogLine& line) {
    const std::string_view text = trim(line.text);
    if (text.find("end of arguments") != std::string_view::npos) {
      in_arguments_ = false;
      return;
    }
    // "name ....... value": other ranks' output interleaved with the block is passed over.
    const size_t space = text.find(' ');
    if (space == std::string_view::npos) return;
    const std::string_view name = text.substr(0, space);
    std::string_view rest = trim(text.substr(space));
    if (rest.empty() || rest.front() != '.') return;
    const size_t after_dots = rest.find_first_not_of('.');
    rest = after_dots == std::string_view::npos ? std::string_view{} : trim(rest.substr(after_dots));
    log_.arguments[std::string(name)] = std::string(rest);
  }

  void parse_iteration(const LogLine& line, const IterationMarker& marker) {
    MegatronIteration it;
    it.line = line.number;
    it.iteration = marker.iteration;
    it.train_iterations = marker.total;
    if (marker.timestamped) saw_core_features_ = true;
    bool elapsed = false;
    for (const Field& field : split_fields(line.text.substr(marker.fields_start))) {
      const std::string_view key = field.key;
      if (!field.had_colon && (key == "learning rate" || key == "lm loss" || key == "loss scale")) saw_v1_fields_ = true;
      if (key == "elapsed time per iteration (ms)") {
        const double ms = number(line, key, field.value, field.had_colon);
        if (!std::isfinite(ms) || ms <= 0 || ms > kMaxLoggedStepMs)
          fail(line, fmt::format("expected a time above 0 and at most 1e9 ms (11 days) after '{}:', found '{}'", key,
                                 field.value));
        it.elapsed_s_per_iteration = ms / 1e3;
        elapsed = true;
      } else if (key == "throughput per GPU (TFLOP/s/GPU)") {
        it.throughput_tflops_per_gpu = number(line, key, field.value, field.had_colon);
        saw_core_features_ = true;
      } else if (key == "learning rate") {
        it.learning_rate = number(line, key, field.value, field.had_colon);
      } else if (key == "global batch size") {
        it.global_batch_size = count(line, key, field.value);
      } else if (key == "consumed samples") {
        it.consumed_samples = count(line, key, field.value);
      } else if (key == "lm loss" || (key == "loss" && !it.lm_loss)) {
        it.lm_loss = number(line, key, field.value, field.had_colon);
      } else if (key == "loss scale") {
        it.loss_scale = number(line, key, field.value, field.had_colon);
      } else if (key == "grad norm") {
        it.grad_norm = number(line, key, field.value, field.had_colon);
      } else if (key == "number of skipped iterations") {
        it.skipped_iterations = count(line, key, field.value);
      } else if (key == "number of nan iterations") {
        it.nan_iterations = count(line, key, field.value);
      }
      // Other fields (consumed tokens, params norm, num zeros, other losses, energy…) are not
      // measurements Loom compares.
    }
    if (!elapsed) fail(line, "expected 'elapsed time per iteration (ms): …' in the iteration line");
    if (it.train_iterations && it.iteration > *it.train_iterations)
      fail(line, fmt::format("iteration {} is past the run's {} iterations", it.iteration, *it.train_iterations));
    if (!log_.iterations.empty()) {
      const MegatronIteration& previous = log_.iterations.back();
      if (it.iteration <= previous.iteration)
        fail(line, fmt::format("iteration {} comes after iteration {} (line {}): the log holds more than one run "
                               "(a restart?); cut it to one",
                               it.iteration, previous.iteration, previous.line));
    }
    log_.iterations.push_back(std::move(it));
  }

  void parse_memory(const LogLine& line) {
    const std::string_view text = line.text;
    MegatronMemoryReport report;
    report.line = line.number;
    const size_t marker = text.find("memory (MB)");
    const std::string_view head = text.substr(0, marker);
    if (const size_t rank_at = head.find("[Rank "); rank_at != std::string_view::npos) {
      const size_t close = head.find(']', rank_at);
      const auto rank = close == std::string_view::npos ? std::nullopt : parse_int(head.substr(rank_at + 6, close - rank_at - 6));
      if (!rank || *rank < 0) fail(line, "expected a rank number in '[Rank N]' before 'memory (MB)'");
      report.rank = *rank;
    }  // Megatron-LM v1.x reported rank 0's memory only, without "[Rank N]".
    if (const size_t after = head.find("after "); after != std::string_view::npos) {
      const size_t digits_end = skip_digits(head, after + 6);
      report.after_iterations = parse_int(head.substr(after + 6, digits_end - after - 6));
    }
    std::optional<double> allocated, max_allocated;
    for (const Field& field : split_fields(text.substr(marker + 11))) {
      const std::string_view key = field.key;
      auto bytes = [&]() -> int64_t {
        const double mib = number(line, key, field.value);
        if (!std::isfinite(mib) || mib < 0 || mib > 1e12)
          fail(line, fmt::format("expected a memory size in MB after '{}:', found '{}'", key, field.value));
        return std::llround(mib * kBytesPerMegatronMB);
      };
      if (key == "allocated") {
        report.allocated_bytes = bytes();
        allocated = 1;
      } else if (key == "max allocated") {
        report.max_allocated_bytes = bytes();
        max_allocated = 1;
      } else if (key == "reserved" || key == "cached") {
        report.reserved_bytes = bytes();
      } else if (key == "max reserved" || key == "max cached") {
        report.max_reserved_bytes = bytes();
      }
    }
    if (!allocated || !max_allocated)
      fail(line, "expected 'allocated: …' and 'max allocated: …' in the memory report");
    log_.memory.push_back(report);
  }

  void parse_padded_vocab(const LogLine& line) {
    // " > padded vocab (size: 50257) with 175 dummy tokens (new size: 50432)"
    const std::string_view text = line.text;
    const size_t size_at = text.find("(size: ") + 7;
    const size_t size_end = text.find(')', size_at);
    const size_t new_at = text.find("(new size: ");
    const size_t new_end = new_at == std::string_view::npos ? new_at : text.find(')', new_at);
    const auto original = size_end == std::string_view::npos ? std::nullopt : parse_int(text.substr(size_at, size_end - size_at));
    const auto padded = new_end == std::string_view::npos ? std::nullopt : parse_int(text.substr(new_at + 11, new_end - new_at - 11));
    if (!original || !padded || *original <= 0 || *padded < *original)
      fail(line, "expected '> padded vocab (size: N) with K dummy tokens (new size: P)'");
    log_.tokenizer_vocab_size = *original;
    log_.padded_vocab_size = *padded;
  }

  const LogText& text_;
  MegatronLog log_;
  Table table_ = Table::none;
  std::string all_timer_name_;
  std::map<std::string, TimerSeconds> dropped_timers_;
  bool in_arguments_ = false;
  bool saw_core_features_ = false;
  bool saw_v1_fields_ = false;
};

}  // namespace

MegatronLog parse_megatron_log(const LogText& log) { return MegatronParser(log).run(); }

MegatronLog read_megatron_log(const std::string& path) { return parse_megatron_log(read_log_text(path)); }

}  // namespace loom::plan
