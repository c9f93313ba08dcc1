#pragma once
// Resuming under another plan of the same model: each new rank assembles its own shard of every
// parameter and of Adam's moments from the pieces the old plan's ranks wrote, reading only the
// tensors (and, for ZeRO-1 moments, only the element ranges) that hold them.
//
// What an old rank's shard holds (save_checkpoint): "param/NAME" (its tensor-parallel shard at its
// local shape), "optimizer/m" and "optimizer/v" (its part of the flat per-stage moment buffers:
// all of them, or with ZeRO-1 the data rank's contiguous block). The flat buffers hold a stage's
// parameters in declaration order at their local shapes, so a parameter's moments are the range
// [offset, offset + local size) of its stage's buffer, split over data ranks by ZeRO-1.
//
// A parameter's full tensor is rebuilt from the old tensor ranks of the first old stage that holds
// it (the tied embedding's copies are equal) and of data rank 0 (replicas are equal); the padded
// vocabulary, whose size depends on tp, keeps the rows both plans have and gets zero rows beyond.
// One parameter's full tensor is held at a time, never the whole model.

#include "core/plan.hpp"                        // core::Plan
#include "core/rank_layout.hpp"                 // core::RankLayout
#include "executor/checkpoint/manifest.hpp"     // Checkpoint
#include "executor/checkpoint/safetensors.hpp"  // SafeTensorsReader
#include "executor/model/parameters.hpp"        // Parameter, Sharding
#include "executor/model/stage_layers.hpp"      // stage_layers (a stage's parameters are its layers')

#include <cstdint>  // int64_t
#include <map>      // readers by rank, parameters by name
#include <memory>   // readers
#include <string>   // tensor names
#include <vector>   // values

namespace loom::exec {

// Where the values of an old rank's tensors come from: the checkpoint's files, or memory in tests.
class ShardSource {
 public:
  virtual ~ShardSource() = default;
  virtual int64_t element_count(int64_t rank, const std::string& tensor) = 0;
  // Elements [begin, begin + count) of the tensor in old rank `rank`'s shard.
  virtual std::vector<float> read(int64_t rank, const std::string& tensor, int64_t begin, int64_t count) = 0;
};

// A checkpoint's shard files, each opened (its header read and checked, as read_rank_shard checks
// its metadata) when first needed and then read tensor by tensor.
class CheckpointShardFiles : public ShardSource {
 public:
  explicit CheckpointShardFiles(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}
  int64_t element_count(int64_t rank, const std::string& tensor) override;
  std::vector<float> read(int64_t rank, const std::string& tensor, int64_t begin, int64_t count) override;
  int64_t files_opened() const { return int64_t(readers_.size()); }

 private:
  SafeTensorsReader& reader(int64_t rank);
  const Checkpoint& checkpoint_;
  std::map<int64_t, std::unique_ptr<SafeTensorsReader>> readers_;
};

// The parameters of one pipeline rank under `plan` as the executor declares them, with their
// local shapes for `tensor_size` ranks and their offsets into the flat buffers (no values).
std::vector<Parameter> stage_parameter_layout(const core::Plan& plan, int64_t pipeline_rank);

enum class Moment { first, second };  // Adam's m and v

// Rebuilds full tensors from an old plan's shards.
class CheckpointResharder {
 public:
  CheckpointResharder(const core::Plan& old_plan, ShardSource& source);

  // The full master values of parameter `p` of the new plan, at its full shape.
  std::vector<float> full_values(const Parameter& p);
  // The full Adam moment of `p`, at its full shape.
  std::vector<float> full_moment(const Parameter& p, Moment moment);

  // A new rank's whole state: the local values of each of `parameters` (finalized for tensor rank
  // `tensor_rank` of `tensor_size`), and elements [moment_begin, moment_begin + moment_size) of its
  // flat moment buffers (zero where no parameter lies: the padding).
  struct RankState {
    std::vector<std::vector<float>> values;  // by parameter index
    std::vector<float> m, v;
  };
  RankState rank_state(const std::vector<Parameter>& parameters, int64_t tensor_rank, int64_t tensor_size,
                       int64_t moment_begin, int64_t moment_size);

 private:
  struct Located {
    int64_t stage;
    const Parameter* old;
  };
  const Located& locate(const std::string& name) const;
  std::vector<float> gather(const Parameter& p, const std::string& what);  // "param" or "optimizer/m|v"
  // The old rank's flat-moment elements [begin, begin + count) of stage `stage`, tensor rank `tp`.
  std::vector<float> moment_range(int64_t stage, int64_t tp, const std::string& tensor, int64_t begin, int64_t count);

  core::Plan old_plan_;
  core::RankLayout old_layout_;
  ShardSource& source_;
  bool old_zero_;
  std::vector<std::vector<Parameter>> old_stages_;
  std::map<std::string, Located> by_name_;
};

// A full tensor of `from_shape` at `to_shape`: equal shapes pass through; a vocabulary-row tensor
// keeps the rows both have and gets zero rows beyond; anything else is InvalidInput.
std::vector<float> fit_full_tensor(std::vector<float> full, const std::vector<int64_t>& from_shape,
                                   const std::vector<int64_t>& to_shape, Sharding sharding, const std::string& name);

}  // namespace loom::exec
