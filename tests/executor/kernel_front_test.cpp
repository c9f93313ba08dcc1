// The checking front of Kernels (kernel_front.cpp): every backend's calls are refused the same
// way, naming the kernel and the argument, before any backend code runs.

#include "core/error.hpp"
#include "executor/bfloat16.hpp"
#include "executor/kernels/backend.hpp"
#include "executor/kernels/kernels.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace loom::exec {
namespace {

using ::testing::HasSubstr;

class KernelFrontTest : public ::testing::Test {
 protected:
  std::unique_ptr<Kernels> kernels = make_cpu_kernels(1);
  static Tensor f32(std::vector<int64_t> shape) { return Tensor::zeros(std::move(shape), ElementType::f32, Device::cpu); }
  static Tensor bf16(std::vector<int64_t> shape) {
    return Tensor::zeros(std::move(shape), ElementType::bf16, Device::cpu);
  }

  template <typename Call>
  static std::string error_of(Call&& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
};

TEST_F(KernelFrontTest, TheCpuComputesInF32Only) {
  EXPECT_TRUE(kernels->computes_in(ElementType::f32));
  EXPECT_FALSE(kernels->computes_in(ElementType::bf16));
  Tensor a = bf16({2, 3}), b = bf16({3, 4}), c = f32({2, 4});
  EXPECT_THAT(error_of([&] { kernels->matmul(a, false, b, false, c); }),
              HasSubstr("matmul: a holds bf16, which the CPU does not compute in"));
}

TEST_F(KernelFrontTest, ParameterGradientsMustBeF32) {
  Tensor dy = f32({4, 3}), dbias = bf16({3});
  EXPECT_THAT(error_of([&] { kernels->bias_backward(dy, dbias); }),
              HasSubstr("bias_backward: dbias holds bf16, expected f32"));
  Tensor x = f32({4, 3}), gamma = f32({3}), mean = f32({4}), rstd = bf16({4}), y = f32({4, 3});
  EXPECT_THAT(error_of([&] { kernels->layernorm_forward(x, gamma, gamma, 1e-5f, y, mean, rstd); }),
              HasSubstr("layernorm_forward: rstd holds bf16, expected f32"));
}

TEST_F(KernelFrontTest, ShapesAreCheckedForEveryKernel) {
  Tensor a = f32({2, 3}), b = f32({4, 5}), c = f32({2, 5});
  EXPECT_THAT(error_of([&] { kernels->matmul(a, false, b, false, c); }),
              HasSubstr("op(a) [2, 3] · op(b) [4, 5] does not fit c [2, 5]"));
  Tensor master = f32({8}), grad = f32({8}), m = f32({8}), v = f32({7});
  EXPECT_THAT(error_of([&] { kernels->adamw(master, grad, m, v, AdamWSettings{}); }),
              HasSubstr("adamw: a gradient or moment has shape [7]"));
  Tensor x = f32({8}), weights = f32({9});
  EXPECT_THAT(error_of([&] { kernels->sum_of_squares(x, &weights); }), HasSubstr("sum_of_squares: weights"));
}

TEST_F(KernelFrontTest, LlamasKernelsAreCheckedToo) {
  Tensor x = f32({4, 6}), gamma = f32({6}), y = f32({4, 6}), rstd = f32({4}), dgamma = bf16({6}), dx = f32({4, 6});
  EXPECT_THAT(error_of([&] { kernels->rmsnorm_backward(y, x, gamma, rstd, dx, dgamma); }),
              HasSubstr("rmsnorm_backward: dgamma holds bf16, expected f32"));
  Tensor short_rstd = f32({3});
  EXPECT_THAT(error_of([&] { kernels->rmsnorm_forward(x, gamma, 1e-5f, y, short_rstd); }),
              HasSubstr("rmsnorm_forward: rstd has shape [3]"));
  Tensor gate_up = f32({4, 6}), wrong_out = f32({4, 4});
  EXPECT_THAT(error_of([&] { kernels->swiglu_forward(gate_up, wrong_out); }),
              HasSubstr("swiglu_forward: y has shape [4, 4], expected a last axis of 3"));
  EXPECT_THAT(error_of([&] { kernels->swiglu_forward(gate_up, gate_up); }), HasSubstr("swiglu_forward: y"));
  Tensor qkv = f32({1, 2, (4 + 2 * 2) * 3});  // head_dim 3 cannot be turned in pairs
  EXPECT_THAT(error_of([&] { kernels->rotary_forward(qkv, 4, 2, 10000.0f); }),
              HasSubstr("rotary_forward: head_dim 3 must be even"));
  Tensor grouped = f32({1, 2, (4 + 2 * 2) * 2}), full = f32({1, 2, 3 * 4 * 2});
  EXPECT_THAT(error_of([&] { kernels->expand_query_groups(grouped, 4, 3, full); }),
              HasSubstr("expand_query_groups: 4 query heads cannot share 3 key/value groups evenly"));
  EXPECT_THAT(error_of([&] { kernels->rotary_backward(grouped, 4, 2, 1.0f); }),
              HasSubstr("rotary_backward: head_dim 2 must be even and base 1 above 1"));
}

TEST_F(KernelFrontTest, AdamwWritesTheWorkingCopyRounded) {
  Tensor master = f32({3}), grad = f32({3}), m = f32({3}), v = f32({3}), working = bf16({3});
  for (int i = 0; i < 3; ++i) {
    master.data<float>()[i] = 1.0f + 0.001f * float(i);
    grad.data<float>()[i] = 0.5f - float(i);
  }
  kernels->adamw(master, grad, m, v, AdamWSettings{1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1}, &working);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(working.data<uint16_t>()[i], float_to_bf16_bits(master.data<float>()[i])) << i;
  Tensor f32_copy = f32({3});
  EXPECT_THAT(error_of([&] { kernels->adamw(master, grad, m, v, AdamWSettings{}, &f32_copy); }),
              HasSubstr("adamw: working_copy holds f32, expected bf16"));
}

TEST_F(KernelFrontTest, CastRoundsToNearestEvenAndBack) {
  Tensor from = f32({4}), to = bf16({4}), back = f32({4});
  const float values[4] = {1.0f, 1.0f + 1.0f / 256.0f, -3.140625f, std::numeric_limits<float>::infinity()};
  std::copy(values, values + 4, from.data<float>());
  kernels->cast(from, to);
  kernels->cast(to, back);
  EXPECT_EQ(back.data<float>()[0], 1.0f);
  EXPECT_EQ(back.data<float>()[1], 1.0f);  // a tie: rounds to the even mantissa
  EXPECT_EQ(back.data<float>()[2], -3.140625f);
  EXPECT_TRUE(std::isinf(back.data<float>()[3]));
  Tensor wrong = Tensor::zeros({4}, ElementType::i32, Device::cpu);
  EXPECT_THAT(error_of([&] { kernels->cast(from, wrong); }), HasSubstr("cast: a tensor holds i32"));
}

TEST_F(KernelFrontTest, CopyRefusesAnotherElementType) {
  Tensor from = f32({4}), to = bf16({4});
  EXPECT_THAT(error_of([&] { kernels->copy(from, to); }), HasSubstr("copy: to holds bf16, expected f32"));
}

TEST(Backend, ParsesItsTwoNamesAndRefusesOthers) {
  EXPECT_EQ(parse_backend("cpu"), Backend::cpu);
  EXPECT_EQ(parse_backend("cuda"), Backend::cuda);
  EXPECT_THROW(parse_backend("gpu"), InvalidInput);
  std::string reason;
  if (!cuda_device_usable(&reason)) {
    EXPECT_FALSE(reason.empty());
    EXPECT_THROW(make_kernels(Backend::cuda, 1, 0), InvalidInput);
  }
}

}  // namespace
}  // namespace loom::exec
