#pragma once
// Strict reading of JSON objects: every field is type-checked, every unknown key is an error
// (a typo such as "hiden-size" must not silently become a default), and every message names
// the full path of the field, e.g. "model.hidden-size".

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <string_view>

namespace loom::core {

// Every JSON document Loom writes keeps its keys in the order they were inserted, so that a
// plan.json reads top-down (format, version, model, training, cluster, parallel).
using Json = nlohmann::ordered_json;

// Arrays and objects nest at most this deep in any JSON document Loom reads (Loom's own nest 4
// deep). Deeper ones are refused while parsing: every later walk of the tree (dump() among them)
// recurses once per level, and a document nested 100,000 deep would overflow the stack.
inline constexpr int kMaxJsonDepth = 64;

// Parses text as JSON, refusing with InvalidInput what the JSON grammar allows but no Loom
// document may hold, each in one line that names SOURCE:
//   a syntax error            "SOURCE:LINE:COLUMN: malformed JSON: …";
//   nesting beyond the limit  "SOURCE: JSON nested deeper than 64 levels at line L, column C";
//   a key twice in an object  "SOURCE: duplicate key 'model.hidden-size' at line L, column C"
//                             (nlohmann would silently keep the last);
//   an integer beyond 64 bits "SOURCE: model.num-layers: 99999999999999999999 is too large; …"
//                             (nlohmann would silently round it to a double);
//   text beyond kMaxJsonInputBytes (core/input_file.hpp).
Json parse_json_text(std::string_view text, std::string_view source);

// Reads a whole JSON document's file ("-" is standard input) through core/input_file.hpp: only a
// regular file, and at most kMaxJsonInputBytes. Every problem is InvalidInput naming it.
std::string read_text_file(const std::string& path);

// Human name of a JSON value's type for messages ("a string", "an array", ...).
std::string_view json_type_name(const Json& value);

// A value quoted in a message: compact JSON of at most about 60 characters, cut with "…" (a
// 5 MB array must not make a 5 MB error line). Containers are walked only as far as printed.
std::string json_excerpt(const Json& value);
// Text from the input quoted in a message (a key, a name): at most about 60 characters, cut
// with "…", control characters shown as \xNN so that the message stays one line.
std::string text_excerpt(std::string_view text);

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
  // An array of integers; absent or null → empty. More than max_size entries is refused.
  std::vector<int64_t> optional_int_array(std::string_view key, size_t max_size);
  // An array (of anything); absent or null → nullptr.
  const Json* optional_array(std::string_view key, size_t max_size);
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
