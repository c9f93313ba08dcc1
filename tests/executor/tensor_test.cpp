// Tensor and Storage: shapes and views, copies, and the per-device memory accounting that the
// executor reports as peak memory.

#include "executor/tensor.hpp"

#include "core/error.hpp"
#include "executor/device_allocator.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace loom::exec {
namespace {

TEST(Tensor, ShapeNumelAndBytes) {
  Tensor t({4, 32, 64}, ElementType::f32, Device::cpu);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.rank(), 3u);
  EXPECT_EQ(t.dim(1), 32);
  EXPECT_EQ(t.numel(), 4 * 32 * 64);
  EXPECT_EQ(t.bytes(), size_t(4 * 32 * 64 * 4));
  EXPECT_EQ(t.shape_string(), "[4, 32, 64]");
  EXPECT_EQ(Tensor({3}, ElementType::f64, Device::cpu).bytes(), 24u);
  EXPECT_EQ(Tensor({3}, ElementType::bf16, Device::cpu).bytes(), 6u);
  EXPECT_EQ(to_string(ElementType::i32), "i32");
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(Tensor().numel(), 0);
}

TEST(Tensor, CpuStorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t({n}, ElementType::f32, Device::cpu);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data<float>()) % 64, 0u) << n;
  }
}

TEST(Tensor, ZerosAndFillZero) {
  Tensor z = Tensor::zeros({5, 7}, ElementType::f32, Device::cpu);
  for (int64_t i = 0; i < z.numel(); ++i) EXPECT_EQ(z.data<float>()[i], 0.0f);
  Tensor t({6}, ElementType::i32, Device::cpu);
  for (int i = 0; i < 6; ++i) t.data<int32_t>()[i] = i + 1;
  t.rows(2, 4).fill_zero();  // only the view's elements
  EXPECT_EQ(t.data<int32_t>()[1], 2);
  EXPECT_EQ(t.data<int32_t>()[2], 0);
  EXPECT_EQ(t.data<int32_t>()[3], 0);
  EXPECT_EQ(t.data<int32_t>()[4], 5);
}

TEST(Tensor, ReshapedSharesStorage) {
  Tensor t = Tensor::zeros({2, 3, 4}, ElementType::f32, Device::cpu);
  Tensor flat = t.reshaped({6, 4});
  EXPECT_EQ(flat.shape(), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(flat.data<float>(), t.data<float>());
  flat.data<float>()[5] = 2.5f;
  EXPECT_EQ(t.data<float>()[5], 2.5f);
  EXPECT_THROW(t.reshaped({5, 5}), Error);
}

TEST(Tensor, RowsViewSharesStorage) {
  Tensor t({4, 3}, ElementType::f32, Device::cpu);
  for (int i = 0; i < 12; ++i) t.data<float>()[i] = float(i);
  Tensor middle = t.rows(1, 3);
  EXPECT_EQ(middle.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(middle.numel(), 6);
  EXPECT_EQ(middle.data<float>()[0], 3.0f);
  middle.data<float>()[0] = -1.0f;
  EXPECT_EQ(t.data<float>()[3], -1.0f);
  // A view of a view keeps counting from its own first row.
  EXPECT_EQ(middle.rows(1, 2).data<float>()[0], 6.0f);
  EXPECT_EQ(t.rows(4, 4).numel(), 0);
  EXPECT_THROW(t.rows(2, 5), Error);
  EXPECT_THROW(t.rows(3, 2), Error);
}

TEST(Tensor, CopySharesCloneCopies) {
  Tensor t({3}, ElementType::f32, Device::cpu);
  for (int i = 0; i < 3; ++i) t.data<float>()[i] = float(i + 1);
  Tensor shared = t;
  Tensor copy = t.clone();
  t.data<float>()[0] = 9.0f;
  EXPECT_EQ(shared.data<float>()[0], 9.0f);
  EXPECT_EQ(copy.data<float>()[0], 1.0f);
  EXPECT_EQ(copy.data<float>()[2], 3.0f);
  EXPECT_NE(copy.data<float>(), t.data<float>());
  // Cloning a view copies only its rows.
  Tensor rows = Tensor({4, 2}, ElementType::f32, Device::cpu).rows(1, 3).clone();
  EXPECT_EQ(rows.numel(), 4);
}

TEST(Tensor, MemoryAccountingRisesAndFalls) {
  reset_peak_memory(Device::cpu);
  const MemoryStats before = memory_stats(Device::cpu);
  EXPECT_EQ(before.peak_bytes, before.current_bytes);
  {
    Tensor a({1000}, ElementType::f32, Device::cpu);  // 4000 bytes
    EXPECT_EQ(memory_stats(Device::cpu).current_bytes, before.current_bytes + 4000);
    {
      Tensor b({250}, ElementType::f64, Device::cpu);  // 2000 bytes
      Tensor view = b.rows(0, 10);        // a view allocates nothing
      EXPECT_EQ(memory_stats(Device::cpu).current_bytes, before.current_bytes + 6000);
    }
    const MemoryStats after_b = memory_stats(Device::cpu);
    EXPECT_EQ(after_b.current_bytes, before.current_bytes + 4000);
    EXPECT_EQ(after_b.peak_bytes, before.current_bytes + 6000);
  }
  const MemoryStats after = memory_stats(Device::cpu);
  EXPECT_EQ(after.current_bytes, before.current_bytes);
  EXPECT_EQ(after.peak_bytes, before.current_bytes + 6000);
  reset_peak_memory(Device::cpu);
  EXPECT_EQ(memory_stats(Device::cpu).peak_bytes, before.current_bytes);
}

TEST(Tensor, SharedStorageIsFreedWithItsLastTensor) {
  const int64_t start = memory_stats(Device::cpu).current_bytes;
  Tensor view;
  {
    Tensor owner({100}, ElementType::f32, Device::cpu);
    view = owner.rows(0, 1);
  }
  EXPECT_EQ(memory_stats(Device::cpu).current_bytes, start + 400);
  view = Tensor();
  EXPECT_EQ(memory_stats(Device::cpu).current_bytes, start);
}

TEST(Tensor, CudaAllocationThrowsInThisBuild) {
  const MemoryStats before = memory_stats(Device::cuda);
  try {
    Tensor t({8}, ElementType::f32, Device::cuda);
    FAIL() << "allocated CUDA memory without a CUDA allocator";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("CUDA is not available"), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(memory_stats(Device::cuda).current_bytes, before.current_bytes);
}

// The hook a CUDA backend uses: an installed allocator serves the device and is counted.
TEST(Tensor, InstalledAllocatorServesItsDevice) {
  DeviceAllocator host = device_allocator(Device::cpu);
  set_device_allocator(Device::cuda, host);
  {
    Tensor t = Tensor::zeros({16}, ElementType::f32, Device::cuda);
    EXPECT_EQ(t.device(), Device::cuda);
    EXPECT_EQ(memory_stats(Device::cuda).current_bytes, 64);
    EXPECT_EQ(t.clone().data<float>()[15], 0.0f);
  }
  EXPECT_EQ(memory_stats(Device::cuda).current_bytes, 0);
  set_device_allocator(Device::cuda, DeviceAllocator{});
  EXPECT_THROW(Tensor({1}, ElementType::f32, Device::cuda), Error);
}

}  // namespace
}  // namespace loom::exec
