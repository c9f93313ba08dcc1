#pragma once
// Strict reading of JSON objects: every field is type-checked, every unknown key is an error
// (a typo such as "hiden-size" must not silently become a default), and every message names
// the full path of the field, e.g. "model.hidden-size".

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace loom::core {

// Every JSON document Loom writes keeps its keys in the order they were inserted, so that a
// plan.json reads top-down (format, version, model, training, cluster, parallel).
using Json = nlohmann::ordered_json;

// Parses text as JSON. A syntax error becomes InvalidInput "SOURCE:LINE:COLUMN: malformed JSON: …".
Json parse_json_text(std::string_view text, std::string_view source);

// Reads a whole file ("-" is standard input). A missing or unreadable file is InvalidInput.
std::string read_text_file(const std::string& path);

// Human name of a JSON value's type for messages ("a string", "an array", ...).
std::string_view json_type_name(const Json& value);

class JsonObjectReader {
 public:
  // `path` is the object's place in the document ("model"); empty for the root.
  JsonObjectReader(const Json& object, std::string path);

  bool has(std::string_view key) const;
  int64_t required_int(std::string_view key);
  int64_t optional_int(std::string_view key, int64_t fallback);
  std::optional<int64_t> nullable_int(std::string_view key);  // absent or null → nullopt
  double optional_number(std::string_view key, double fallback);
  std::optional<double> nullable_number(std::string_view key);
  bool optional_bool(std::string_view key, bool fallback);
  std::string required_string(std::string_view key);
  std::string optional_string(std::string_view key, std::string fallback);
  const Json& required_object(std::string_view key);
  // Marks a key as known without reading it (for values another reader handles).
  void accept(std::string_view key);

  // Throws InvalidInput for the first key that was never asked for.
  void finish() const;

  std::string field(std::string_view key) const;  // "model.hidden-size"

 private:
  const Json* find(std::string_view key);
  [[noreturn]] void wrong_type(std::string_view key, const Json& value,
                               std::string_view expected) const;

  const Json& object_;
  std::string path_;
  std::set<std::string, std::less<>> known_keys_;
};

}  // namespace loom::core
