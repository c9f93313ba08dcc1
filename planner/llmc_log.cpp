#include "planner/llmc_log.hpp"

#include "core/error.hpp"  // InvalidInput

#include <fmt/format.h>

#include <cctype>
#include <cmath>

namespace loom::plan {
namespace {

constexpr std::string_view kExpectedStepLine =
    "expected an llm.c step line ('step N/M | loss L (Zz)| norm G (Zz)| lr R | T ms | … tok/s', "
    "'step N/M: train loss L (T ms, K tok/s)' or 'step N: train loss L (took T ms)')";

class LlmcParser {
 public:
  explicit LlmcParser(const LogText& text) : text_(text) { log_.file_name = text.name; }

  LlmcLog run() {
    for (const LogLine& line : text_.lines) parse_line(line);
    if (text_.unfinished_last_line) ++log_.ignored_lines;
    if (log_.steps.empty())
      throw InvalidInput("{}: no llm.c step lines ('step N/M | loss … | … ms | …') in {} lines; is it llm.c's output?",
                         text_.name, text_.lines.size() + (text_.unfinished_last_line ? 1 : 0));
    return std::move(log_);
  }

 private:
  [[noreturn]] void fail(const LogLine& line, const std::string& message) const {
    throw InvalidInput("{}: {}", log_position(text_, line.number), message);
  }

  double number(const LogLine& line, std::string_view after, std::string_view value) const {
    const auto parsed = parse_double(value);
    if (!parsed) fail(line, fmt::format("expected a number after '{}', found '{}'", after, trim(value)));
    return *parsed;
  }

  double milliseconds(const LogLine& line, std::string_view after, std::string_view value) const {
    const double ms = number(line, after, value);
    if (!std::isfinite(ms) || ms <= 0 || ms > kMaxLoggedStepMs)
      fail(line, fmt::format("expected a step time above 0 and at most 1e9 ms (11 days), found '{}'", trim(value)));
    return ms / 1e3;
  }

  void parse_line(const LogLine& line) {
    const std::string_view text = trim(line.text);
    if (text.starts_with("skipping update due to")) {
      skip_next_ = true;
      return;
    }
    if (text.starts_with("| ")) {
      parse_parameter(text);
      return;
    }
    if (!text.starts_with("step ")) return;
    LlmcStep step;
    step.line = line.number;
    size_t at = 5;
    while (at < text.size() && text[at] == ' ') ++at;
    const size_t digits = at;
    while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
    const auto number_printed = parse_int(text.substr(digits, at - digits));
    if (!number_printed) fail(line, std::string(kExpectedStepLine));
    step.step = *number_printed;
    if (at < text.size() && text[at] == '/') {
      const size_t total = ++at;
      while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
      step.total_steps = parse_int(text.substr(total, at - total));
      if (!step.total_steps) fail(line, std::string(kExpectedStepLine));
    }
    const std::string_view rest = trim(text.substr(at));
    if (rest.starts_with("|") && step.total_steps) {
      parse_bar_fields(line, rest, step);
    } else if (rest.starts_with(": train loss ")) {
      parse_train_loss(line, rest.substr(13), step);
    } else {
      fail(line, std::string(kExpectedStepLine));
    }
    if (!step.total_steps) ++step.step;  // train_gpt2.c counts from 0
    step.update_skipped = std::exchange(skip_next_, false);
    if (!log_.steps.empty() && step.step <= log_.steps.back().step)
      fail(line, fmt::format("step {} comes after step {} (line {}): the log holds more than one run; cut it to one",
                             step.step, log_.steps.back().step, log_.steps.back().line));
    if (step.total_steps && step.step > *step.total_steps)
      fail(line, fmt::format("step {} is past the run's {} steps", step.step, *step.total_steps));
    log_.steps.push_back(step);
  }

  // "| loss 3.28 (+0.00z)| norm 1.02 (+0.00z)| lr 6.00e-04 | 91.23 ms | 43.6% bf16 MFU | 179500 tok/s"
  void parse_bar_fields(const LogLine& line, std::string_view rest, LlmcStep& step) {
    bool loss = false, time = false, mfu = false;
    size_t start = 1;
    while (start < rest.size()) {
      size_t bar = rest.find('|', start);
      if (bar == std::string_view::npos) bar = rest.size();
      std::string_view field = trim(rest.substr(start, bar - start));
      start = bar + 1;
      if (field.empty()) continue;
      // "(+0.12z)" after the loss and the norm: the outlier detector's z-score, not a measurement.
      if (const size_t paren = field.find(" ("); paren != std::string_view::npos) field = field.substr(0, paren);
      if (field.starts_with("loss ")) {
        step.loss = number(line, "loss", field.substr(5));
        loss = true;
      } else if (field.starts_with("norm ")) {
        step.grad_norm = number(line, "norm", field.substr(5));
      } else if (field.starts_with("lr ")) {
        step.learning_rate = number(line, "lr", field.substr(3));
      } else if (field.ends_with(" ms")) {
        step.step_time_s = milliseconds(line, "|", field.substr(0, field.size() - 3));
        time = true;
      } else if (field.ends_with("% bf16 MFU") || field.ends_with("% MFU")) {
        step.mfu_percent = number(line, "|", field.substr(0, field.find('%')));
        mfu = true;
      } else if (field.ends_with(" tok/s")) {
        step.tokens_per_s = number(line, "|", field.substr(0, field.size() - 6));
      } else {
        fail(line, fmt::format("unexpected field '{}' in an llm.c step line", field));
      }
    }
    if (!loss || !time) fail(line, "expected 'loss L' and 'T ms' in the llm.c step line");
    set_variant(mfu ? "llmc-cu-mfu" : "llmc-cu-zscore");
  }

  // "3.28 (91.23 ms, 179500 tok/s)" or "3.28 (took 91.23 ms)"
  void parse_train_loss(const LogLine& line, std::string_view rest, LlmcStep& step) {
    const size_t open = rest.find(" (");
    if (open == std::string_view::npos || !rest.ends_with(")")) fail(line, std::string(kExpectedStepLine));
    step.loss = number(line, "train loss", rest.substr(0, open));
    std::string_view inside = rest.substr(open + 2, rest.size() - open - 3);
    if (inside.starts_with("took ")) {
      if (step.total_steps || !inside.ends_with(" ms")) fail(line, std::string(kExpectedStepLine));
      step.step_time_s = milliseconds(line, "took", inside.substr(5, inside.size() - 8));
      set_variant("llmc-c");
      return;
    }
    const size_t comma = inside.find(',');
    if (!step.total_steps || comma == std::string_view::npos) fail(line, std::string(kExpectedStepLine));
    const std::string_view time = trim(inside.substr(0, comma)), rate = trim(inside.substr(comma + 1));
    if (!time.ends_with(" ms") || !rate.ends_with(" tok/s")) fail(line, std::string(kExpectedStepLine));
    step.step_time_s = milliseconds(line, "(", time.substr(0, time.size() - 3));
    step.tokens_per_s = number(line, "ms,", rate.substr(0, rate.size() - 6));
    set_variant("llmc-cu-early");
  }

  void set_variant(std::string_view variant) {
    if (log_.variant.empty()) log_.variant = variant;
  }

  void parse_parameter(std::string_view text) {
    const size_t middle = text.find('|', 1);
    if (middle == std::string_view::npos) return;
    const size_t end = text.find('|', middle + 1);
    if (end == std::string_view::npos) return;
    const std::string_view key = trim(text.substr(1, middle - 1)), value = trim(text.substr(middle + 1, end - middle - 1));
    if (!key.empty() && key != "Parameter") log_.parameters[std::string(key)] = std::string(value);
  }

  const LogText& text_;
  LlmcLog log_;
  bool skip_next_ = false;
};

}  // namespace

LlmcLog parse_llmc_log(const LogText& log) { return LlmcParser(log).run(); }

LlmcLog read_llmc_log(const std::string& path) { return parse_llmc_log(read_log_text(path)); }

}  // namespace loom::plan
