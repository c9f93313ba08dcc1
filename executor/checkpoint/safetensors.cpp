#include "executor/checkpoint/safetensors.hpp"

#include "core/error.hpp"        // loom::InvalidInput
#include "core/input_file.hpp"   // core::RegularFile
#include "core/json_reader.hpp"  // core::Json, parse_json_text, json_type_name, json_excerpt
#include "core/output_file.hpp"  // core::OutputFile

#include <fmt/format.h>  // fmt::format, fmt::join
#include <fmt/ranges.h>  // shapes in messages

#include <algorithm>   // std::sort
#include <bit>         // std::endian, std::bit_cast
#include <cstring>     // std::memcpy
#include <limits>      // saturating byte counts
#include <set>         // duplicate names
#include <span>        // the buffer the file is read into
#include <utility>     // std::exchange

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // pread, close

#include <cerrno>      // errno

namespace loom::exec {

// Tensor bytes are copied to and from floats with memcpy, which is only the file's
// little-endian layout on a little-endian host (every machine Loom targets).
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr int64_t kMaxBytes = std::numeric_limits<int64_t>::max();

// Element count × element size, saturating at kMaxBytes so a hostile shape cannot overflow.
int64_t shape_bytes(const std::vector<int64_t>& shape, int64_t element_bytes) {
  for (int64_t dim : shape)
    if (dim == 0) return 0;
  int64_t bytes = element_bytes;
  for (int64_t dim : shape) bytes = bytes > kMaxBytes / dim ? kMaxBytes : bytes * dim;
  return bytes;
}

struct Entry {
  std::string name;
  int64_t begin, end;
};

// One tensor's header entry, checked against the data area of `data_bytes` bytes.
Entry read_entry(const std::string& path, const std::string& name, const core::Json& json,
                 int64_t data_bytes, SafeTensor& tensor) {
  auto fail = [&](const std::string& what) -> InvalidInput {
    return InvalidInput("'{}': tensor '{}': {}", path, name, what);
  };
  if (!json.is_object())
    throw fail(fmt::format("expected an object, got {}", core::json_type_name(json)));
  for (const auto& [key, value] : json.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail(fmt::format("unknown key '{}'; expected dtype, shape and data_offsets", key));

  if (!json.contains("dtype") || !json["dtype"].is_string())
    throw fail("dtype is missing or not a string");
  tensor.dtype = json["dtype"].get<std::string>();
  const int64_t element_bytes = safetensors_dtype_bytes(tensor.dtype);
  if (element_bytes == 0)
    throw fail(fmt::format("dtype '{}' is not supported; expected F32, F64, BF16, I32 or I64",
                           tensor.dtype));

  if (!json.contains("shape") || !json["shape"].is_array())
    throw fail("shape is missing or not an array");
  for (const core::Json& dim : json["shape"]) {
    if (!dim.is_number_integer() || dim.get<int64_t>() < 0 ||
        (dim.is_number_unsigned() && dim.get<uint64_t>() > uint64_t(kMaxBytes)))
      throw fail(
          fmt::format("shape {} is not a list of non-negative integers", core::json_excerpt(json["shape"])));
    tensor.shape.push_back(dim.get<int64_t>());
  }

  const core::Json* offsets = json.contains("data_offsets") ? &json["data_offsets"] : nullptr;
  if (!offsets || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_integer() || !(*offsets)[1].is_number_integer())
    throw fail("data_offsets must be two integers [begin, end)");
  const int64_t begin = (*offsets)[0].get<int64_t>(), end = (*offsets)[1].get<int64_t>();
  if (begin < 0 || end < begin || (*offsets)[1].get<uint64_t>() > uint64_t(data_bytes))
    throw fail(fmt::format("data_offsets [{}, {}) are not a range within the data area [0, {})",
                           core::json_excerpt((*offsets)[0]), core::json_excerpt((*offsets)[1]), data_bytes));
  const int64_t needed = shape_bytes(tensor.shape, element_bytes);
  if (end - begin != needed)
    throw fail(fmt::format("shape [{}] of {} needs {} bytes but data_offsets [{}, {}) hold {}",
                           fmt::join(tensor.shape, ", "), tensor.dtype,
                           needed == kMaxBytes ? "more than 2^63" : std::to_string(needed), begin,
                           end, end - begin));
  return Entry{name, begin, end};
}

// The tensors must tile the data area exactly, as in Hugging Face's own reader: an overlap
// would let two tensors share bytes, a gap would carry bytes no tensor accounts for.
void check_tiling(const std::string& path, std::vector<Entry> entries, int64_t data_bytes) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  int64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < covered)
      throw InvalidInput("'{}': tensor '{}' (bytes [{}, {})) overlaps tensor '{}' (bytes [{}, {}))",
                         path, entry.name, entry.begin, entry.end, previous->name, previous->begin,
                         previous->end);
    if (entry.begin > covered)
      throw InvalidInput(
          "'{}': bytes [{}, {}) of the data area belong to no tensor (a gap before "
          "tensor '{}')",
          path, covered, entry.begin, entry.name);
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_bytes)
    throw InvalidInput("'{}': bytes [{}, {}) at the end of the data area belong to no tensor", path,
                       covered, data_bytes);
}

// A file naming a tensor twice is ambiguous. parse_json_text refuses any repeated key, but
// this runs first to say so in the format's words. Nothing is kept (the callback discards every
// value, so no depth is built) and a syntax error is left for parse_json_text to report.
void check_no_duplicate_names(const std::string& path, const std::string& header_text) {
  std::set<std::string> seen;
  const core::Json parsed = core::Json::parse(
      header_text,
      [&](int depth, core::Json::parse_event_t event, core::Json& key) {
        if (event == core::Json::parse_event_t::key && depth == 1 &&
            !seen.insert(key.get<std::string>()).second)
          throw InvalidInput("'{}': tensor '{}' appears twice in the header", path,
                             core::text_excerpt(key.get<std::string>()));
        return false;
      },
      /*allow_exceptions=*/false);
  (void)parsed;  // only the callback's checks matter
}

}  // namespace

int64_t SafeTensor::element_count() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

int64_t safetensors_dtype_bytes(std::string_view dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "BF16") return 2;
  return 0;
}

SafeTensor f32_tensor(std::vector<int64_t> shape, std::span<const float> values) {
  SafeTensor tensor{"F32", std::move(shape), {}};
  if (tensor.element_count() != int64_t(values.size()))
    throw InvalidInput("shape [{}] holds {} values, not {}", fmt::join(tensor.shape, ", "),
                       tensor.element_count(), values.size());
  const auto bytes = std::as_bytes(values);
  tensor.bytes.assign(bytes.begin(), bytes.end());
  return tensor;
}

const SafeTensor& SafeTensorsFile::tensor(const std::string& name) const {
  const auto found = tensors.find(name);
  if (found == tensors.end()) throw InvalidInput("'{}' has no tensor '{}'", path, name);
  return found->second;
}

std::vector<float> SafeTensorsFile::f32(const std::string& name) const {
  const SafeTensor& t = tensor(name);
  std::vector<float> values(size_t(t.element_count()));
  for (size_t i = 0; i < values.size(); ++i) {
    if (t.dtype == "F32") {
      std::memcpy(&values[i], t.bytes.data() + 4 * i, 4);
    } else if (t.dtype == "BF16") {
      uint16_t high;  // bf16 is the top half of an f32
      std::memcpy(&high, t.bytes.data() + 2 * i, 2);
      values[i] = std::bit_cast<float>(uint32_t(high) << 16);
    } else if (t.dtype == "F64") {
      double value;
      std::memcpy(&value, t.bytes.data() + 8 * i, 8);
      values[i] = float(value);
    } else {
      throw InvalidInput(
          "'{}': tensor '{}' is {}; expected a floating-point dtype (F32, BF16 or F64)", path, name,
          t.dtype);
    }
  }
  return values;
}

void write_safetensors(const std::string& path, const SafeTensorMap& tensors,
                       const SafeTensorMetadata& metadata) {
  core::Json header = core::Json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const int64_t element_bytes = safetensors_dtype_bytes(tensor.dtype);
    if (name.empty() || name == kMetadataKey)
      throw InvalidInput("cannot write '{}': '{}' is not a valid tensor name", path, name);
    if (element_bytes == 0)
      throw InvalidInput(
          "cannot write '{}': tensor '{}' has dtype '{}'; expected F32, F64, BF16, "
          "I32 or I64",
          path, name, tensor.dtype);
    const int64_t needed = shape_bytes(tensor.shape, element_bytes);
    if (int64_t(tensor.bytes.size()) != needed)
      throw InvalidInput(
          "cannot write '{}': tensor '{}' has {} bytes but shape [{}] of {} needs {}", path, name,
          tensor.bytes.size(), fmt::join(tensor.shape, ", "), tensor.dtype, needed);
    header[name] = {{"dtype", tensor.dtype},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + needed}}};
    offset += needed;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  unsigned char length[8];
  for (int b = 0; b < 8; ++b) length[b] = (unsigned char)(uint64_t(text.size()) >> (8 * b));

  core::OutputFile file(path);
  file.write(std::as_bytes(std::span(length)));
  file.write(text);
  for (const auto& [name, tensor] : tensors) file.write(tensor.bytes);
  file.publish();
}

namespace {

// A checked header: the metadata, and each tensor's dtype and shape with its byte range in the
// data area.
struct Header {
  SafeTensorMetadata metadata;
  std::vector<std::pair<SafeTensor, Entry>> tensors;
};

uint64_t header_length(const std::string& path, const unsigned char* bytes, int64_t file_bytes) {
  if (file_bytes < 8)
    throw InvalidInput(
        "'{}' is {} bytes, too short for the 8-byte header length of a safetensors "
        "file",
        path, file_bytes);
  uint64_t header_bytes = 0;
  for (int b = 7; b >= 0; --b) header_bytes = header_bytes << 8 | bytes[b];
  if (header_bytes > uint64_t(file_bytes - 8))
    throw InvalidInput(
        "'{}': header length {} goes beyond the end of the file ({} bytes, so at "
        "most {} for the header)",
        path, header_bytes, file_bytes, file_bytes - 8);
  return header_bytes;
}

Header parse_header(const std::string& path, const std::string& header_text, int64_t data_bytes) {
  check_no_duplicate_names(path, header_text);
  const core::Json header = core::parse_json_text(header_text, path);
  if (!header.is_object())
    throw InvalidInput("'{}': header is {}; expected a JSON object of tensors", path,
                       core::json_type_name(header));
  Header parsed;
  std::vector<Entry> entries;
  for (const auto& [name, json] : header.items()) {
    if (name == kMetadataKey) {
      if (!json.is_object()) throw InvalidInput("'{}': __metadata__ is not an object", path);
      for (const auto& [key, value] : json.items()) {
        if (!value.is_string())
          throw InvalidInput("'{}': __metadata__ '{}' is {}; expected a string", path, key,
                             core::json_type_name(value));
        parsed.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    SafeTensor tensor;
    entries.push_back(read_entry(path, name, json, data_bytes, tensor));
    parsed.tensors.emplace_back(std::move(tensor), entries.back());
  }
  check_tiling(path, std::move(entries), data_bytes);
  return parsed;
}

float element_f32(const std::string& dtype, const std::byte* at) {
  if (dtype == "F32") {
    float value;
    std::memcpy(&value, at, 4);
    return value;
  }
  if (dtype == "BF16") {
    uint16_t high;  // bf16 is the top half of an f32
    std::memcpy(&high, at, 2);
    return std::bit_cast<float>(uint32_t(high) << 16);
  }
  double value;
  std::memcpy(&value, at, 8);
  return float(value);
}

}  // namespace

SafeTensorsFile read_safetensors(const std::string& path) {
  // Only a regular file is read (a FIFO would block, /dev/zero never end); no size limit, as
  // checkpoints are as large as their models.
  core::RegularFile input(path, "safetensors file");
  std::string contents(static_cast<std::size_t>(input.size_bytes()), '\0');
  contents.resize(input.read_into(std::as_writable_bytes(std::span(contents))));

  const int64_t file_bytes = int64_t(contents.size());
  const uint64_t header_bytes =
      header_length(path, reinterpret_cast<const unsigned char*>(contents.data()), file_bytes);
  const int64_t data_start = 8 + int64_t(header_bytes), data_bytes = file_bytes - data_start;
  Header header = parse_header(path, contents.substr(8, header_bytes), data_bytes);
  SafeTensorsFile file{path, {}, std::move(header.metadata)};
  const auto* data = reinterpret_cast<const std::byte*>(contents.data()) + data_start;
  for (auto& [tensor, entry] : header.tensors) {
    tensor.bytes.assign(data + entry.begin, data + entry.end);
    file.tensors.emplace(entry.name, std::move(tensor));
  }
  return file;
}

namespace {

// Reads exactly `count` bytes at `offset`, or IoError naming the file.
void read_at(int fd, const std::string& path, std::byte* out, int64_t count, int64_t offset) {
  while (count > 0) {
    const ssize_t got = ::pread(fd, out, size_t(count), off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw IoError("cannot read '{}' at byte {}: {}", path, offset,
                    got == 0 ? std::string("the file ended (it shrank since it was opened)") : std::strerror(errno));
    out += got;
    count -= got;
    offset += got;
  }
}

}  // namespace

SafeTensorsReader::SafeTensorsReader(const std::string& path) : path_(path) {
  {
    core::RegularFile check(path, "safetensors file");  // refuses anything but a regular file, with its message
  }
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError("cannot open '{}': {}", path, std::strerror(errno));
  struct stat status {};
  if (::fstat(fd_, &status) != 0) {
    const int error = errno;
    ::close(fd_);
    throw IoError("cannot read '{}': {}", path, std::strerror(error));
  }
  try {
    const int64_t file_bytes = int64_t(status.st_size);
    unsigned char length[8] = {};
    if (file_bytes >= 8) read_at(fd_, path, reinterpret_cast<std::byte*>(length), 8, 0);
    const uint64_t header_bytes = header_length(path, length, file_bytes);
    std::string text(size_t(header_bytes), '\0');
    read_at(fd_, path, reinterpret_cast<std::byte*>(text.data()), int64_t(header_bytes), 8);
    data_start_ = 8 + int64_t(header_bytes);
    Header header = parse_header(path, text, file_bytes - data_start_);
    metadata_ = std::move(header.metadata);
    for (auto& [tensor, entry] : header.tensors)
      entries_.emplace(entry.name, std::make_pair(std::move(tensor), entry.begin));
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

SafeTensorsReader::SafeTensorsReader(SafeTensorsReader&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)), data_start_(other.data_start_),
      metadata_(std::move(other.metadata_)), entries_(std::move(other.entries_)) {}

SafeTensorsReader::~SafeTensorsReader() {
  if (fd_ >= 0) ::close(fd_);
}

const SafeTensor& SafeTensorsReader::info(const std::string& name) const {
  const auto found = entries_.find(name);
  if (found == entries_.end()) throw InvalidInput("'{}' has no tensor '{}'", path_, name);
  return found->second.first;
}

std::vector<float> SafeTensorsReader::read_f32(const std::string& name, int64_t begin, int64_t count) const {
  const SafeTensor& t = info(name);
  if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F64")
    throw InvalidInput("'{}': tensor '{}' is {}; expected a floating-point dtype (F32, BF16 or F64)", path_, name,
                       t.dtype);
  if (begin < 0 || count < 0 || begin + count > t.element_count())
    throw InvalidInput("'{}': tensor '{}' has {} elements; elements [{}, {}) were asked for", path_, name,
                       t.element_count(), begin, begin + count);
  const int64_t element_bytes = safetensors_dtype_bytes(t.dtype);
  std::vector<float> values(static_cast<size_t>(count));
  if (count == 0) return values;
  const int64_t offset = data_start_ + entries_.at(name).second + begin * element_bytes;
  if (t.dtype == "F32") {
    read_at(fd_, path_, reinterpret_cast<std::byte*>(values.data()), count * 4, offset);
    return values;
  }
  std::vector<std::byte> bytes(size_t(count * element_bytes));
  read_at(fd_, path_, bytes.data(), int64_t(bytes.size()), offset);
  for (int64_t i = 0; i < count; ++i) values[size_t(i)] = element_f32(t.dtype, bytes.data() + i * element_bytes);
  return values;
}

}  // namespace loom::exec
