#include "cli/format.hpp"

#include <gtest/gtest.h>

namespace loom::cli {
namespace {

TEST(Format, Thousands) {
  EXPECT_EQ(with_thousands(0), "0");
  EXPECT_EQ(with_thousands(999), "999");
  EXPECT_EQ(with_thousands(1000), "1,000");
  EXPECT_EQ(with_thousands(124439808), "124,439,808");
  EXPECT_EQ(with_thousands(-1234567), "-1,234,567");
}

TEST(Format, UnitsOnEveryQuantity) {
  EXPECT_EQ(human_bytes(85899345920.0), "80.0 GiB");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_si(312e12, "FLOP/s"), "312.00 TFLOP/s");
  EXPECT_EQ(human_si(5.5e16, "FLOP"), "55.00 PFLOP");
  EXPECT_EQ(human_count(124439808), "124.4M");
  EXPECT_EQ(human_count(405.85e9), "405.9B");
}

TEST(Format, TablePadsColumnsAndAlignsNumbersRight) {
  TextTable table({"name", "value"}, {1});
  table.add_row({"a", "1"});
  table.add_row({"longer", "1,000"});
  EXPECT_EQ(table.render(), "name    value\na           1\nlonger  1,000\n");
}

}  // namespace
}  // namespace loom::cli
