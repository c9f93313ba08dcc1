#pragma once
// safetensors, the format of Hugging Face's checkpoints, used for Loom's checkpoint shards and
// for `--init-from` / `loom checkpoint export`: an 8-byte little-endian header length N, N
// bytes of JSON (tensor name → {"dtype", "shape", "data_offsets": [begin, end)} relative to
// the data area, plus an optional "__metadata__" of string → string), then the raw
// little-endian data. Loom writes the header padded with spaces to a multiple of 8 (so the
// data is 8-byte aligned, as Hugging Face's writer does) and the tensors in name order.
//
// The reader trusts nothing: every length, offset, dtype and shape is checked before any
// byte is used, and each violation is InvalidInput naming the file and the tensor.

#include <cstddef>      // std::byte
#include <cstdint>      // int64_t
#include <map>          // name → tensor, sorted
#include <utility>      // std::pair
#include <span>         // float values
#include <string>       // names, dtypes
#include <string_view>  // dtype names
#include <vector>       // shapes, bytes

namespace loom::exec {

// One tensor as stored: its dtype ("F32", "F64", "BF16", "I32" or "I64"), its shape (empty
// for a scalar) and its bytes, little-endian, row-major.
struct SafeTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;

  int64_t element_count() const;  // product of the shape (1 for a scalar)
};

// Bytes per element of a dtype Loom reads and writes; 0 for any other name.
int64_t safetensors_dtype_bytes(std::string_view dtype);

// An F32 tensor holding `values` (whose count must match the shape).
SafeTensor f32_tensor(std::vector<int64_t> shape, std::span<const float> values);

using SafeTensorMap = std::map<std::string, SafeTensor>;
using SafeTensorMetadata = std::map<std::string, std::string>;

struct SafeTensorsFile {
  std::string path;  // where it was read from, for messages
  SafeTensorMap tensors;
  SafeTensorMetadata metadata;

  bool contains(const std::string& name) const { return tensors.contains(name); }
  // InvalidInput naming the file when the tensor is missing.
  const SafeTensor& tensor(const std::string& name) const;
  // The tensor's values as float: F32 as stored, BF16 widened exactly, F64 rounded to nearest.
  // An integer tensor, or a missing one, is InvalidInput naming the file and the tensor.
  std::vector<float> f32(const std::string& name) const;
};

// Writes atomically (temporary file, fsync, rename). A tensor whose byte count does not match
// its dtype and shape, an unknown dtype, or a name that is empty or "__metadata__" is
// InvalidInput; a failed write is IoError.
void write_safetensors(const std::string& path, const SafeTensorMap& tensors,
                       const SafeTensorMetadata& metadata = {});

// Reads and checks the whole file (see the header comment).
SafeTensorsFile read_safetensors(const std::string& path);

// A safetensors file read tensor by tensor: the header is read and checked as read_safetensors
// checks it when opened, and each read_f32 then reads only the bytes of the elements it asks for
// (resharding a checkpoint reads every old rank's file in pieces, never whole).
class SafeTensorsReader {
 public:
  explicit SafeTensorsReader(const std::string& path);
  SafeTensorsReader(SafeTensorsReader&& other) noexcept;
  SafeTensorsReader& operator=(SafeTensorsReader&&) = delete;
  SafeTensorsReader(const SafeTensorsReader&) = delete;
  ~SafeTensorsReader();

  const std::string& path() const { return path_; }
  const SafeTensorMetadata& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return entries_.contains(name); }
  // The tensor's dtype and shape (its bytes left empty); InvalidInput naming the file when missing.
  const SafeTensor& info(const std::string& name) const;
  // Elements [begin, begin + count) of the tensor in row-major order, as float (F32, BF16 or F64,
  // widened or rounded as SafeTensorsFile::f32). A range beyond the tensor is InvalidInput.
  std::vector<float> read_f32(const std::string& name, int64_t begin, int64_t count) const;

 private:
  std::string path_;
  int fd_ = -1;
  int64_t data_start_ = 0;
  SafeTensorMetadata metadata_;
  std::map<std::string, std::pair<SafeTensor, int64_t>> entries_;  // name → (dtype and shape, byte offset)
};

}  // namespace loom::exec
