#include "core/json_reader.hpp"

#include "core/error.hpp"

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace loom::core {
namespace {

// nlohmann's message starts with "[json.exception.parse_error.101] parse error at line 3,
// column 7: "; keep only the explanation after it, since the location is printed our way
// (other errors, such as a number overflow, start with the bracket only).
// Bytes that are not printable ASCII (a binary file's) are shown as \xNN so the message
// stays one readable line on any terminal.
std::string parse_error_explanation(const std::string& what) {
  std::string explanation = what;
  if (explanation.rfind("[json.exception.", 0) == 0 && explanation.find("] ") != std::string::npos)
    explanation = explanation.substr(explanation.find("] ") + 2);
  if (explanation.rfind("parse error", 0) == 0 && explanation.find(": ") != std::string::npos)
    explanation = explanation.substr(explanation.find(": ") + 2);
  std::string printable;
  for (unsigned char c : explanation) {
    if (c >= 0x20 && c < 0x7f) printable += char(c);
    else printable += fmt::format("\\x{:02x}", c);
  }
  return printable;
}

}  // namespace

Json parse_json_text(std::string_view text, std::string_view source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& error) {
    // error.byte is the 1-based offset of the character that could not be read.
    const std::size_t offset = error.byte == 0 ? 0 : std::min<std::size_t>(error.byte - 1, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw InvalidInput("{}:{}:{}: malformed JSON: {}", source, line, column,
                       parse_error_explanation(error.what()));
  } catch (const Json::exception& error) {
    // A number beyond a double's range ("1e999") is refused after it was read: no position.
    throw InvalidInput("{}: malformed JSON: {}", source, parse_error_explanation(error.what()));
  }
}

std::string read_text_file(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) throw InvalidInput("cannot read '{}': no such file or not readable", path);
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) throw InvalidInput("cannot read '{}': read error", path);
  return contents.str();
}

std::string_view json_type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_float: return "a fractional number";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    default: return "an unsupported value";
  }
}

JsonObjectReader::JsonObjectReader(const Json& object, std::string path)
    : object_(object), path_(std::move(path)) {
  if (!object_.is_object())
    throw InvalidInput("{}: expected a JSON object, got {}", path_.empty() ? "document" : path_,
                       json_type_name(object_));
}

std::string JsonObjectReader::field(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

bool JsonObjectReader::has(std::string_view key) const { return object_.contains(key); }

const Json* JsonObjectReader::find(std::string_view key) {
  known_keys_.emplace(key);
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

void JsonObjectReader::wrong_type(std::string_view key, const Json& value,
                                  std::string_view expected) const {
  throw InvalidInput("{}: expected {}, got {} ({})", field(key), expected, json_type_name(value),
                     value.dump());
}

int64_t JsonObjectReader::required_int(std::string_view key) {
  const Json* value = find(key);
  if (!value) throw InvalidInput("{} is missing; expected an integer", field(key));
  if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(INT64_MAX))
    throw InvalidInput("{}: {} is too large", field(key), value->dump());
  if (!value->is_number_integer()) wrong_type(key, *value, "an integer");
  return value->get<int64_t>();
}

int64_t JsonObjectReader::optional_int(std::string_view key, int64_t fallback) {
  return has(key) ? required_int(key) : (find(key), fallback);
}

std::optional<int64_t> JsonObjectReader::nullable_int(std::string_view key) {
  const Json* value = find(key);
  if (!value || value->is_null()) return std::nullopt;
  return required_int(key);
}

double JsonObjectReader::optional_number(std::string_view key, double fallback) {
  const Json* value = find(key);
  if (!value) return fallback;
  if (!value->is_number()) wrong_type(key, *value, "a number");
  return value->get<double>();
}

std::optional<double> JsonObjectReader::nullable_number(std::string_view key) {
  const Json* value = find(key);
  if (!value || value->is_null()) return std::nullopt;
  return optional_number(key, 0.0);
}

bool JsonObjectReader::optional_bool(std::string_view key, bool fallback) {
  const Json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) wrong_type(key, *value, "true or false");
  return value->get<bool>();
}

std::string JsonObjectReader::required_string(std::string_view key) {
  const Json* value = find(key);
  if (!value) throw InvalidInput("{} is missing; expected a string", field(key));
  if (!value->is_string()) wrong_type(key, *value, "a string");
  return value->get<std::string>();
}

std::string JsonObjectReader::optional_string(std::string_view key, std::string fallback) {
  return has(key) ? required_string(key) : (find(key), std::move(fallback));
}

const Json& JsonObjectReader::required_object(std::string_view key) {
  const Json* value = find(key);
  if (!value) throw InvalidInput("{} is missing; expected an object", field(key));
  if (!value->is_object()) wrong_type(key, *value, "an object");
  return *value;
}

void JsonObjectReader::accept(std::string_view key) { known_keys_.emplace(key); }

void JsonObjectReader::finish() const {
  for (const auto& [key, value] : object_.items()) {
    if (known_keys_.contains(key)) continue;
    std::string expected;
    for (const std::string& known : known_keys_) expected += (expected.empty() ? "" : ", ") + known;
    throw InvalidInput("{} is not a known key; expected one of: {}", field(key), expected);
  }
}

}  // namespace loom::core
