// The calibration section of a profile ("provenance": "calibrated", written by `loom calibrate`)
// and the device's runtime reserve: JSON round trip and strict reading.

#include "core/error.hpp"
#include "core/profile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

namespace loom::core {
namespace {

using ::testing::HasSubstr;

Profile calibrated_profile() {
  Profile profile = resolve_profile("cpu-epyc-2core-vm");
  profile.name = "my-cluster";
  profile.provenance = "calibrated";
  profile.device.runtime_reserve_bytes = int64_t(3) << 30;
  Calibration c;
  c.base_profile = "cpu-epyc-2core-vm";
  c.fitted_runs = {{3, "tp2", "loom"}, {5, "pp2", "megatron"}};
  c.store = "loom.db";
  c.date = "2024-05-01T12:00:00.000Z";
  c.parameters = {{"table_time_scales.gemm", "×", 1.0, 1.3, 0.01, true, ""},
                  {"links.inter-node.bus_bandwidth_fraction", "of link bytes/s", 0.9, 0.9, std::nullopt, false,
                   "no selected run spans more than one node"}};
  c.table_time_scales.gemm = 1.3;
  c.table_time_scales.kernels = 0.9;
  c.table_time_scales.collectives_by_level["intra-node"] = 1.5;
  profile.calibration = c;
  return profile;
}

TEST(ProfileCalibrationTest, RoundTrips) {
  const Profile written = calibrated_profile();
  const Profile read = profile_from_json(to_json(written), "test");
  EXPECT_EQ(read.provenance, "calibrated");
  EXPECT_EQ(read.device.runtime_reserve_bytes, int64_t(3) << 30);
  ASSERT_TRUE(read.calibration.has_value());
  const Calibration& c = *read.calibration;
  EXPECT_EQ(c.base_profile, "cpu-epyc-2core-vm");
  ASSERT_EQ(c.fitted_runs.size(), 2u);
  EXPECT_EQ(c.fitted_runs[1].run_id, 5);
  EXPECT_EQ(c.fitted_runs[1].plan, "pp2");
  EXPECT_EQ(c.fitted_runs[1].source, "megatron");
  EXPECT_EQ(c.store, "loom.db");
  EXPECT_EQ(c.date, "2024-05-01T12:00:00.000Z");
  ASSERT_EQ(c.parameters.size(), 2u);
  EXPECT_EQ(c.parameters[0].name, "table_time_scales.gemm");
  EXPECT_DOUBLE_EQ(c.parameters[0].after, 1.3);
  EXPECT_DOUBLE_EQ(c.parameters[0].uncertainty.value(), 0.01);
  EXPECT_TRUE(c.parameters[0].determined);
  EXPECT_FALSE(c.parameters[1].uncertainty.has_value());
  EXPECT_FALSE(c.parameters[1].determined);
  EXPECT_EQ(c.parameters[1].reason, "no selected run spans more than one node");
  EXPECT_DOUBLE_EQ(c.table_time_scales.gemm, 1.3);
  EXPECT_DOUBLE_EQ(c.table_time_scales.attention, 1.0);
  EXPECT_DOUBLE_EQ(c.table_time_scales.kernels, 0.9);
  EXPECT_DOUBLE_EQ(c.table_time_scales.collectives("intra-node"), 1.5);
  EXPECT_DOUBLE_EQ(c.table_time_scales.collectives("inter-node"), 1.0);
  // The base profile's tables are kept as they were.
  EXPECT_EQ(read.tables.gemm.size(), written.tables.gemm.size());
  EXPECT_EQ(to_json(read), to_json(written));
}

TEST(ProfileCalibrationTest, ProfilesWithoutTheNewFieldsReadAsBefore) {
  const Profile builtin = resolve_profile("h100-80gb-dgx");
  EXPECT_FALSE(builtin.calibration.has_value());
  EXPECT_FALSE(builtin.device.runtime_reserve_bytes.has_value());
  EXPECT_EQ(builtin.device.runtime_reserve_or_default(), int64_t(1) << 30);
  const Json json = to_json(builtin);
  EXPECT_FALSE(json.contains("calibration"));
  EXPECT_FALSE(json["device"].contains("runtime_reserve_bytes"));
}

// Each edit of a good calibrated profile's JSON must be refused, naming the field.
struct BadEdit {
  const char* name;
  std::function<void(Json&)> edit;
  const char* message;
};

TEST(ProfileCalibrationTest, RefusesBadValuesNamingTheField) {
  const std::vector<BadEdit> edits = {
      {"calibrated without section", [](Json& j) { j.erase("calibration"); }, "needs the calibration section"},
      {"section on a measured profile", [](Json& j) { j["provenance"] = "measured"; }, "provenance \"calibrated\""},
      {"unknown provenance", [](Json& j) { j["provenance"] = "guessed"; }, "provenance=\"guessed\""},
      {"scale too large", [](Json& j) { j["calibration"]["table_time_scales"]["gemm"] = 10.0; },
       "calibration.table_time_scales.gemm=10"},
      {"scale not a number", [](Json& j) { j["calibration"]["table_time_scales"]["kernels"] = "fast"; },
       "calibration.table_time_scales.kernels"},
      {"unknown level", [](Json& j) { j["calibration"]["table_time_scales"]["collectives"]["moon"] = 1.0; },
       "calibration.table_time_scales.collectives"},
      {"unknown key", [](Json& j) { j["calibration"]["weather"] = 1; }, "weather"},
      {"no base", [](Json& j) { j["calibration"].erase("base_profile"); }, "calibration.base_profile"},
      {"runs not an array", [](Json& j) { j["calibration"]["fitted_runs"] = 3; }, "calibration.fitted_runs"},
      {"no runs", [](Json& j) { j["calibration"]["fitted_runs"] = Json::array(); }, "calibration.fitted_runs is empty"},
      {"bad run id", [](Json& j) { j["calibration"]["fitted_runs"][0]["run_id"] = -4; },
       "calibration.fitted_runs[0].run_id=-4"},
      {"before not a number", [](Json& j) { j["calibration"]["parameters"][1]["before"] = "x"; },
       "calibration.parameters[1].before"},
      {"negative uncertainty", [](Json& j) { j["calibration"]["parameters"][0]["uncertainty"] = -1.0; },
       "calibration.parameters[0].uncertainty=-1"},
      {"determined missing", [](Json& j) { j["calibration"]["parameters"][0].erase("determined"); },
       "calibration.parameters[0].determined"},
      {"negative reserve", [](Json& j) { j["device"]["runtime_reserve_bytes"] = -1; }, "device.runtime_reserve_bytes=-1"},
      {"reserve not an integer", [](Json& j) { j["device"]["runtime_reserve_bytes"] = "1 GiB"; },
       "device.runtime_reserve_bytes"},
  };
  for (const BadEdit& bad : edits) {
    Json json = to_json(calibrated_profile());
    bad.edit(json);
    try {
      profile_from_json(json, "my-cluster.json");
      ADD_FAILURE() << bad.name << ": accepted";
    } catch (const InvalidInput& e) {
      EXPECT_THAT(e.what(), HasSubstr(bad.message)) << bad.name;
      EXPECT_THAT(e.what(), HasSubstr("my-cluster.json")) << bad.name;
    }
  }
}

}  // namespace
}  // namespace loom::core
