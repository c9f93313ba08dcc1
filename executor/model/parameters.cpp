#include "executor/model/parameters.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <numeric>

namespace loom::exec {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t hash_name(const std::string& name) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return h;
}

bool takes_normal_initialisation(ParameterKind kind) {
  return kind == ParameterKind::weight || kind == ParameterKind::tied_embedding_copy;
}

int64_t product(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
}

}  // namespace

std::vector<float> normal_values(uint64_t seed, const std::string& name, int64_t count, float stddev) {
  // Box-Muller over a splitmix64 stream: the same numbers on every platform and standard library.
  std::vector<float> out(static_cast<size_t>(count));
  uint64_t state = splitmix64(seed ^ hash_name(name));
  auto uniform = [&] {
    state = splitmix64(state);
    return (double(state >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
  };
  for (int64_t i = 0; i < count; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 2.0 * M_PI * uniform();
    out[size_t(i)] = float(radius * std::cos(angle) * stddev);
    if (i + 1 < count) out[size_t(i + 1)] = float(radius * std::sin(angle) * stddev);
  }
  return out;
}

bool takes_weight_decay(ParameterKind kind) {
  return kind == ParameterKind::weight || kind == ParameterKind::tied_embedding_copy;
}

size_t ParameterStore::declare(std::string name, std::vector<int64_t> full_shape, Sharding sharding,
                               ParameterKind kind, float init_std) {
  assert((init_std > 0) == takes_normal_initialisation(kind) && "init_std is for weights, and only for them");
  Parameter p;
  p.name = name;
  p.full_shape = std::move(full_shape);
  p.sharding = sharding;
  p.kind = kind;
  p.init_std = init_std;
  index_[name] = parameters_.size();
  parameters_.push_back(std::move(p));
  return parameters_.size() - 1;
}

std::vector<float> ParameterStore::shard(const std::vector<float>& full, const Parameter& p, int64_t r, int64_t t) {
  const std::vector<int64_t>& s = p.full_shape;
  if (p.sharding == Sharding::replicated || t == 1) return full;
  const int64_t cols = s.back();
  const int64_t rows = int64_t(full.size()) / cols;
  std::vector<float> out;
  out.reserve(full.size() / size_t(t));
  switch (p.sharding) {
    case Sharding::vocab_rows:
    case Sharding::rows: {
      const int64_t per = rows / t;
      out.assign(full.begin() + r * per * cols, full.begin() + (r + 1) * per * cols);
      break;
    }
    case Sharding::columns: {
      const int64_t per = cols / t;
      for (int64_t i = 0; i < rows; ++i)
        out.insert(out.end(), full.begin() + i * cols + r * per, full.begin() + i * cols + (r + 1) * per);
      break;
    }
    case Sharding::qkv_columns: {
      const int64_t block = cols / 3, per = block / t;
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t q = 0; q < 3; ++q) {
          const int64_t begin = i * cols + q * block + r * per;
          out.insert(out.end(), full.begin() + begin, full.begin() + begin + per);
        }
      break;
    }
    case Sharding::replicated: break;
  }
  return out;
}

std::vector<float> ParameterStore::unshard(const std::vector<float>& gathered, const Parameter& p, int64_t t) {
  if (p.sharding == Sharding::replicated || t == 1 || p.sharding == Sharding::vocab_rows ||
      p.sharding == Sharding::rows)
    return std::vector<float>(gathered.begin(), gathered.begin() + int64_t(gathered.size()) /
                                                                    (p.sharding == Sharding::replicated ? t : 1));
  const int64_t cols = p.full_shape.back();
  const int64_t rows = int64_t(gathered.size()) / cols;
  const int64_t local = int64_t(gathered.size()) / t;  // elements per rank
  std::vector<float> full(gathered.size());
  if (p.sharding == Sharding::columns) {
    const int64_t per = cols / t;
    for (int64_t r = 0; r < t; ++r)
      for (int64_t i = 0; i < rows; ++i)
        std::copy_n(gathered.begin() + r * local + i * per, per, full.begin() + i * cols + r * per);
  } else {  // qkv_columns: each rank's row is [q | k | v] of its heads
    const int64_t block = cols / 3, per = block / t;
    for (int64_t r = 0; r < t; ++r)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t q = 0; q < 3; ++q)
          std::copy_n(gathered.begin() + r * local + i * 3 * per + q * per, per,
                      full.begin() + i * cols + q * block + r * per);
  }
  return full;
}

void ParameterStore::finalize(int64_t tensor_rank, int64_t tensor_size, uint64_t seed, int64_t pad_to,
                              Kernels& kernels, ElementType compute_type) {
  int64_t total = 0;
  for (Parameter& p : parameters_) {
    p.local_shape = p.full_shape;
    if (p.sharding != Sharding::replicated) {
      const size_t axis = (p.sharding == Sharding::vocab_rows || p.sharding == Sharding::rows) ? 0 : p.full_shape.size() - 1;
      if (p.local_shape[axis] % tensor_size != 0)
        throw Error("parameter {} of shape [{}] cannot be split {} ways", p.name, fmt::join(p.full_shape, ", "),
                    tensor_size);
      p.local_shape[axis] /= tensor_size;
    }
    p.counts_in_norm = p.kind != ParameterKind::tied_embedding_copy &&
                       !(p.sharding == Sharding::replicated && tensor_rank != 0);
    p.offset = total;
    total += product(p.local_shape);
  }
  kernels_ = &kernels;
  compute_type_ = compute_type;
  padded_size_ = (total + pad_to - 1) / pad_to * pad_to;
  const Device device = kernels.device();
  // Initialised on the host (a function of seed and name only): in place on the CPU, otherwise
  // in a host buffer copied to the device once (so the CPU's high-water mark, which loom compare
  // sets beside the memory model, holds no second copy of the weights).
  values_ = device == Device::cpu ? Tensor::zeros({padded_size_}, ElementType::f32, device)
                                  : Tensor({padded_size_}, ElementType::f32, device);
  Tensor host_values = device == Device::cpu ? values_ : Tensor::zeros({padded_size_}, ElementType::f32, Device::cpu);
  norm_runs_.clear();
  for (Parameter& p : parameters_) {
    const int64_t n = product(p.local_shape);
    if (p.counts_in_norm && n > 0) {
      if (!norm_runs_.empty() && norm_runs_.back().second == p.offset)
        norm_runs_.back().second += n;
      else
        norm_runs_.emplace_back(p.offset, p.offset + n);
    }
    float* value = host_values.data<float>() + p.offset;
    if (p.kind == ParameterKind::norm_gain) {
      std::fill_n(value, n, 1.0f);
    } else if (takes_normal_initialisation(p.kind)) {
      const std::vector<float> full = normal_values(seed, p.name, product(p.full_shape), p.init_std);
      const std::vector<float> mine = shard(full, p, tensor_rank, tensor_size);
      std::memcpy(value, mine.data(), mine.size() * sizeof(float));
    }  // biases stay zero
  }
  if (device != Device::cpu) kernels.copy(host_values, values_);
  grads_ = Tensor::zeros({padded_size_}, ElementType::f32, device);
  working_ = compute_type == ElementType::f32 ? Tensor() : Tensor({padded_size_}, compute_type, device);
  for (Parameter& p : parameters_) {
    const int64_t n = product(p.local_shape);
    p.master = values_.rows(p.offset, p.offset + n).reshaped(p.local_shape);
    p.value = working_.defined() ? working_.rows(p.offset, p.offset + n).reshaped(p.local_shape) : p.master;
    p.grad = grads_.rows(p.offset, p.offset + n).reshaped(p.local_shape);
  }
  refresh_working_copy();
}

void ParameterStore::refresh_working_copy(int64_t begin, int64_t end) {
  if (!working_.defined() || begin >= end) return;
  Tensor to = working_.rows(begin, end);
  kernels_->cast(values_.rows(begin, end), to);
}

std::vector<float> ParameterStore::read_values(const Parameter& p) const {
  Tensor host({p.master.numel()}, ElementType::f32, Device::cpu);
  kernels_->copy(p.master.reshaped({p.master.numel()}), host);
  return std::vector<float>(host.data<float>(), host.data<float>() + host.numel());
}

void ParameterStore::write_values(Parameter& p, const std::vector<float>& values) {
  if (int64_t(values.size()) != p.master.numel())
    throw InvalidInput("{}: {} values where {} were expected", p.name, values.size(), p.master.numel());
  Tensor host({p.master.numel()}, ElementType::f32, Device::cpu);
  std::memcpy(host.data<float>(), values.data(), values.size() * sizeof(float));
  Tensor master = p.master.reshaped({p.master.numel()});
  kernels_->copy(host, master);
  refresh_working_copy(p.offset, p.offset + p.master.numel());
}

Tensor ParameterStore::joined(const Tensor& flat, const std::vector<Parameter*>& parts) const {
  if (parts.empty()) throw Error("ParameterStore::joined: no parameters");
  int64_t rows = 0, end = parts.front()->offset;
  const int64_t cols = parts.front()->local_shape.back();
  for (const Parameter* p : parts) {
    if (p->local_shape.size() != 2 || p->local_shape.back() != cols || p->offset != end)
      throw Error("ParameterStore::joined: {} is not a matrix of width {} right after the previous part", p->name,
                  cols);
    rows += p->local_shape.front();
    end += p->local_shape.front() * cols;
  }
  return flat.rows(parts.front()->offset, end).reshaped({rows, cols});
}

Tensor ParameterStore::joined_values(const std::vector<Parameter*>& parts) const {
  return joined(working_.defined() ? working_ : values_, parts);
}

Tensor ParameterStore::joined_grads(const std::vector<Parameter*>& parts) const {
  return joined(grads_, parts);
}

Parameter& ParameterStore::operator[](const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("no parameter named {} on this rank", name);
  return parameters_[it->second];
}

const Parameter& ParameterStore::operator[](const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("no parameter named {} on this rank", name);
  return parameters_[it->second];
}

}  // namespace loom::exec
