#include "core/json_reader.hpp"

#include "core/error.hpp"       // loom::InvalidInput
#include "core/input_file.hpp"  // read_limited_file, kMaxJsonInputBytes

#include <algorithm>      // std::min
#include <cmath>          // std::isfinite, std::floor
#include <cstdint>        // INT64_MAX
#include <iterator>       // std::input_iterator_tag
#include <unordered_set>  // the keys of each open object
#include <vector>         // the open containers

namespace loom::core {
namespace {

// Characters of an excerpt in a message before it is cut.
constexpr std::size_t kExcerptBytes = 60;

// Cuts `text` to at most `bytes` bytes without splitting a UTF-8 sequence.
std::size_t utf8_cut(std::string_view text, std::size_t bytes) {
  if (bytes >= text.size()) return text.size();
  while (bytes > 0 && (static_cast<unsigned char>(text[bytes]) & 0xC0) == 0x80) --bytes;
  return bytes;
}

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

struct JsonTextPosition {
  std::size_t line = 1, column = 1;
};

// Line and column (1-based) of the byte at `offset`.
JsonTextPosition json_text_position(std::string_view text, std::size_t offset) {
  JsonTextPosition at;
  for (std::size_t i = 0; i < std::min(offset, text.size()); ++i) {
    if (text[i] == '\n') {
      ++at.line;
      at.column = 1;
    } else {
      ++at.column;
    }
  }
  return at;
}

// The characters of the text as nlohmann's lexer reads them, one at a time, remembering the
// last one read: the SAX events below carry no position, and a refusal should say where.
class JsonReadCursor {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  JsonReadCursor(const char* at, const char** last_read) : at_(at), last_read_(last_read) {}
  reference operator*() const {
    *last_read_ = at_;
    return *at_;
  }
  JsonReadCursor& operator++() {
    ++at_;
    return *this;
  }
  JsonReadCursor operator++(int) {
    JsonReadCursor before = *this;
    ++at_;
    return before;
  }
  bool operator==(const JsonReadCursor& other) const { return at_ == other.at_; }

 private:
  const char* at_;
  const char** last_read_;
};

// Builds the document as nlohmann's own parser does, refusing on the way what that parser
// accepts silently (see parse_json_text in the header).
class StrictJsonBuilder {
 public:
  StrictJsonBuilder(std::string_view text, std::string_view source, const char* const& last_read)
      : text_(text), source_(source), last_read_(last_read) {}

  bool null() { return add(Json(nullptr)); }
  bool boolean(bool value) { return add(Json(value)); }
  bool number_integer(Json::number_integer_t value) { return add(Json(value)); }
  bool number_unsigned(Json::number_unsigned_t value) { return add(Json(value)); }
  bool number_float(Json::number_float_t value, const Json::string_t& written) {
    // An integer beyond 64 bits reaches here as a rounded double: 99999999999999999999 would be
    // quoted back as 1e+20, or clamped where an integer is expected. Refuse it as written.
    if (written.find_first_of(".eE") == std::string::npos)
      throw InvalidInput("{}: {}: {} is too {}; expected an integer {} {}", source_, next_path(), text_excerpt(written),
                         written.starts_with('-') ? "small" : "large",
                         written.starts_with('-') ? "from" : "up to",
                         written.starts_with('-') ? INT64_MIN : INT64_MAX);
    return add(Json(value));
  }
  bool string(Json::string_t& value) { return add(Json(std::move(value))); }
  bool binary(Json::binary_t& value) { return add(Json::binary(value)); }  // never in JSON text

  bool start_object(std::size_t) { return open(Json::object()); }
  bool key(Json::string_t& key) {
    Frame& frame = frames_.back();
    frame.key = key;
    if (!frame.keys.insert(key).second) {
      const JsonTextPosition at = here();
      throw InvalidInput("{}: duplicate key '{}' at line {}, column {}; each key may appear once in an object",
                         source_, next_path(), at.line, at.column);
    }
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_array() { return close(); }

  bool parse_error(std::size_t position, const std::string&, const Json::exception& error) {
    // `position` counts the characters read, the one that could not be read included.
    const JsonTextPosition at = json_text_position(text_, position == 0 ? 0 : position - 1);
    throw InvalidInput("{}:{}:{}: malformed JSON: {}", source_, at.line, at.column,
                       parse_error_explanation(error.what()));
  }

  Json take() { return std::move(root_); }

 private:
  struct Frame {
    Json* container;
    std::string key;                       // the key whose value comes next (objects)
    std::unordered_set<std::string> keys;  // every key so far (objects)
  };

  JsonTextPosition here() const {
    return json_text_position(text_, last_read_ ? std::size_t(last_read_ - text_.data()) : 0);
  }

  // "links[1].latency_s": where the value that comes next goes, as JsonObjectReader names fields.
  std::string next_path() const {
    std::string path;
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      const Frame& frame = frames_[i];
      if (frame.container->is_object()) {
        if (!path.empty()) path += '.';
        path += text_excerpt(frame.key);
      } else {
        const std::size_t open_child = i + 1 < frames_.size() ? 1 : 0;  // an open array's child is its last
        path += fmt::format("[{}]", frame.container->size() - open_child);
      }
    }
    return path.empty() ? "document" : path;
  }

  Json* insert(Json value) {
    if (frames_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Frame& frame = frames_.back();
    if (frame.container->is_array()) {
      Json::array_t& array = frame.container->get_ref<Json::array_t&>();
      array.push_back(std::move(value));
      return &array.back();
    }
    // key() refused a repeated key, so append without ordered_map's search for an equal one,
    // which would make reading an object of n keys take n² steps.
    auto& items = static_cast<Json::object_t::Container&>(frame.container->get_ref<Json::object_t&>());
    items.emplace_back(frame.key, std::move(value));
    return &items.back().second;
  }
  bool add(Json value) {
    insert(std::move(value));
    return true;
  }
  bool open(Json container) {
    if (frames_.size() >= std::size_t(kMaxJsonDepth)) {
      const JsonTextPosition at = here();
      throw InvalidInput("{}: JSON nested deeper than {} levels at line {}, column {}", source_, kMaxJsonDepth,
                         at.line, at.column);
    }
    // The pointer stays valid: a container is not added to while a child of it is open.
    frames_.push_back(Frame{insert(std::move(container)), {}, {}});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }

  std::string_view text_;
  std::string_view source_;
  const char* const& last_read_;
  Json root_;
  std::vector<Frame> frames_;
};

// Appends compact JSON for `value` to `out`; returns false as soon as `out` passes `limit`
// bytes, which ends the walk of a large container early.
bool append_json_excerpt(std::string& out, const Json& value, std::size_t limit, int depth) {
  if (out.size() > limit) return false;
  if (depth > kMaxJsonDepth) {
    out += "…";
    return false;
  }
  if (value.is_array()) {
    out += '[';
    bool first = true;
    for (const Json& element : value) {
      if (!first) out += ',';
      first = false;
      if (!append_json_excerpt(out, element, limit, depth + 1)) return false;
    }
    out += ']';
  } else if (value.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, element] : value.items()) {
      if (!first) out += ',';
      first = false;
      if (!append_json_excerpt(out, Json(key.substr(0, utf8_cut(key, limit + 1))), limit, depth + 1)) return false;
      out += ':';
      if (!append_json_excerpt(out, element, limit, depth + 1)) return false;
    }
    out += '}';
  } else if (value.is_string()) {
    // Only the start of a long string is escaped; the rest could not be shown anyway.
    const std::string& text = value.get_ref<const std::string&>();
    const std::size_t kept = utf8_cut(text, limit + 1);
    out += Json(text.substr(0, kept)).dump(-1, ' ', false, Json::error_handler_t::replace);
    if (kept < text.size()) out += "…";
  } else {
    out += value.dump();
  }
  return out.size() <= limit;
}

}  // namespace

Json parse_json_text(std::string_view text, std::string_view source) {
  if (int64_t(text.size()) > kMaxJsonInputBytes)
    throw InvalidInput("{}: JSON text of {} is longer than the {} allowed", source, size_text(int64_t(text.size())),
                       size_text(kMaxJsonInputBytes));
  const char* last_read = nullptr;
  StrictJsonBuilder builder(text, source, last_read);
  try {
    Json::sax_parse(JsonReadCursor(text.data(), &last_read), JsonReadCursor(text.data() + text.size(), &last_read),
                    &builder);
  } catch (const Json::exception& error) {
    // The parser reports its errors through StrictJsonBuilder::parse_error; anything else
    // nlohmann throws is still bad input, without a position.
    throw InvalidInput("{}: malformed JSON: {}", source, parse_error_explanation(error.what()));
  }
  return builder.take();
}

std::string read_text_file(const std::string& path) { return read_limited_file(path, kMaxJsonInputBytes, "JSON inputs"); }

std::string json_excerpt(const Json& value) {
  std::string out;
  if (append_json_excerpt(out, value, kExcerptBytes, 0)) return out;
  out.resize(utf8_cut(out, kExcerptBytes));
  return out + "…";
}

std::string text_excerpt(std::string_view text) {
  std::string out;
  const std::size_t kept = utf8_cut(text, kExcerptBytes);
  for (unsigned char c : text.substr(0, kept)) {
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
  }
  return kept < text.size() ? out + "…" : out;
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
  // A container is named with its size: "an array of 1250000 elements ([0,0,0,…])".
  std::string got(json_type_name(value));
  if (value.is_array() || value.is_object())
    got += fmt::format(" of {} {}", value.size(),
                       value.is_array() ? (value.size() == 1 ? "element" : "elements")
                                        : (value.size() == 1 ? "key" : "keys"));
  throw InvalidInput("{}: expected {}, got {} ({})", field(key), expected, got, json_excerpt(value));
}

int64_t JsonObjectReader::required_int(std::string_view key) {
  const Json* value = find(key);
  if (!value) throw InvalidInput("{} is missing; expected an integer", field(key));
  if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(INT64_MAX))
    throw InvalidInput("{}: {} is too large; expected an integer up to {}", field(key), json_excerpt(*value),
                       INT64_MAX);
  if (value->is_number_float()) {
    // A whole number written as 2.0 or 2e3: say what to write instead of calling it fractional.
    // The format is strict (plan files are written by Loom), so it is not taken as 2.
    const double number = value->get<double>();
    if (std::isfinite(number) && number == std::floor(number)) {
      if (number >= 0x1p63 || number < -0x1p63)
        throw InvalidInput("{}: {} is too {}; expected an integer {} {}", field(key), json_excerpt(*value),
                           number > 0 ? "large" : "small", number > 0 ? "up to" : "from",
                           number > 0 ? INT64_MAX : INT64_MIN);
      throw InvalidInput("{}: expected an integer, got {} (write it without a decimal point or exponent)",
                         field(key), json_excerpt(*value));
    }
  }
  if (!value->is_number_integer()) wrong_type(key, *value, "an integer");
  return value->get<int64_t>();
}

const Json* JsonObjectReader::optional_array(std::string_view key, size_t max_size) {
  const Json* value = find(key);
  if (!value || value->is_null()) return nullptr;
  if (!value->is_array()) wrong_type(key, *value, "an array");
  if (value->size() > max_size)
    throw InvalidInput("{} has {} entries; at most {} are supported", field(key), value->size(), max_size);
  return value;
}

std::vector<int64_t> JsonObjectReader::optional_int_array(std::string_view key, size_t max_size) {
  const Json* array = optional_array(key, max_size);
  std::vector<int64_t> values;
  if (!array) return values;
  for (size_t i = 0; i < array->size(); ++i) {
    // Each entry read as a field of its own, so that its error names it: "parallel.x[3]".
    const std::string name = fmt::format("{}[{}]", field(key), i);
    Json entry = Json::object();
    entry[name] = (*array)[i];
    JsonObjectReader reader(entry, "");
    values.push_back(reader.required_int(name));
  }
  return values;
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
  // JSON text cannot hold NaN or infinity (the parser refuses 1e999), but a document built in
  // code can; no field of any Loom document means either.
  const double number = value->get<double>();
  if (!std::isfinite(number)) throw InvalidInput("{}={} must be a finite number", field(key), number);
  return number;
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
    throw InvalidInput("{} is not a known key; expected one of: {}", field(text_excerpt(key)), expected);
  }
}

}  // namespace loom::core
