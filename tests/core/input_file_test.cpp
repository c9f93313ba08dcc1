// core/input_file: only regular files are read, each problem is named, and documents read whole
// are limited in size before they are read.

#include "core/error.hpp"
#include "core/input_file.hpp"
#include "core/json_reader.hpp"

#include "../fixture_cases.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>  // a socket to refuse
#include <sys/stat.h>    // mkfifo, chmod
#include <sys/un.h>      // sockaddr_un
#include <unistd.h>      // getpid, truncate, geteuid

#include <cstring>     // std::strncpy
#include <filesystem>  // the temporary directory
#include <fstream>     // writing files
#include <span>        // read_into's buffer
#include <string>      // paths, contents

namespace loom::core {
namespace {

namespace fs = std::filesystem;
using ::loom::testing::refusal;
using ::testing::HasSubstr;

class InputFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loom_input_file_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(InputFile, ReadsARegularFileWhole) {
  const std::string contents = std::string("{\"a\": 1}\n") + std::string(3, '\0') + "\xff";
  std::ofstream(path("plan.json"), std::ios::binary) << contents;
  EXPECT_EQ(read_text_file(path("plan.json")), contents);
  RegularFile file(path("plan.json"), "token file");
  EXPECT_EQ(file.size_bytes(), int64_t(contents.size()));
  std::string buffer(100, '?');
  EXPECT_EQ(file.read_into(std::as_writable_bytes(std::span(buffer))), contents.size());
}

TEST_F(InputFile, ReadsFilesWhoseSizeIsUnknownUntilTheirEnd) {
  // /proc reports 0 bytes for its regular files.
  EXPECT_THAT(read_text_file("/proc/self/status"), HasSubstr("Pid:"));
}

TEST_F(InputFile, NamesWhatIsNotARegularFile) {
  fs::create_directories(path("dir"));
  EXPECT_EQ(refusal([&] { read_text_file(path("dir")); }),
            "cannot read '" + path("dir") + "': it is a directory, not a regular file");
  fs::create_directory_symlink(path("dir"), path("link"));
  EXPECT_THAT(refusal([&] { read_text_file(path("link")); }), HasSubstr("it is a directory, not a regular file"));
  // A FIFO with no writer: opening it must not wait for one.
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  EXPECT_EQ(refusal([&] { read_text_file(path("fifo")); }),
            "cannot read '" + path("fifo") + "': it is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(refusal([] { read_text_file("/dev/null"); }),
            "cannot read '/dev/null': it is a character device, not a regular file");
  EXPECT_EQ(refusal([] { read_text_file("/dev/zero"); }),
            "cannot read '/dev/zero': it is a character device, not a regular file");
}

TEST_F(InputFile, NamesASocket) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = path("socket");
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(refusal([&] { read_text_file(socket_path); }),
            "cannot read '" + socket_path + "': it is a socket, not a regular file");
  ::close(fd);
}

TEST_F(InputFile, NamesTheErrno) {
  EXPECT_EQ(refusal([&] { read_text_file(path("none.json")); }), "cannot read '" + path("none.json") + "': no such file");
  std::ofstream(path("file")) << "{}";
  EXPECT_THAT(refusal([&] { read_text_file(path("file") + "/x.json"); }),
              HasSubstr("a part of the path is not a directory"));
  if (::geteuid() != 0) {  // root reads everything
    fs::permissions(path("file"), fs::perms::none);
    EXPECT_THAT(refusal([&] { read_text_file(path("file")); }), HasSubstr("permission denied"));
  }
}

TEST_F(InputFile, KindNamesTheFile) {
  fs::create_directories(path("dir"));
  EXPECT_EQ(refusal([&] { RegularFile(path("dir"), "token file"); }),
            "cannot read token file '" + path("dir") + "': it is a directory, not a regular file");
}

TEST_F(InputFile, AJsonInputOverTheLimitIsRefusedBeforeReading) {
  // Sparse: 1 TiB costs no disk, and would take minutes to read.
  std::ofstream(path("huge.json")).put(' ');
  ASSERT_EQ(::truncate(path("huge.json").c_str(), off_t(1) << 40), 0);
  EXPECT_EQ(refusal([&] { read_text_file(path("huge.json")); }),
            "cannot read '" + path("huge.json") + "': it is 1048576 MiB; JSON inputs are limited to 64 MiB");
  ASSERT_EQ(::truncate(path("huge.json").c_str(), off_t(kMaxJsonInputBytes) + 1), 0);
  EXPECT_THAT(refusal([&] { read_text_file(path("huge.json")); }),
              HasSubstr("it is 64.0 MiB (67108865 bytes); JSON inputs are limited to 64 MiB"));
  ASSERT_EQ(::truncate(path("huge.json").c_str(), off_t(kMaxJsonInputBytes)), 0);
  EXPECT_EQ(read_text_file(path("huge.json")).size(), std::size_t(kMaxJsonInputBytes));  // the limit itself is read
}

TEST_F(InputFile, AnyLimitApplies) {
  std::ofstream(path("eleven")) << "12345678901";
  EXPECT_EQ(refusal([&] { read_limited_file(path("eleven"), 10, "test inputs"); }),
            "cannot read '" + path("eleven") + "': it is 11 bytes; test inputs are limited to 10 bytes");
  EXPECT_EQ(read_limited_file(path("eleven"), 11, "test inputs"), "12345678901");
}

TEST(SizeText, SaysTheExcessWhereRoundingWouldHideIt) {
  EXPECT_EQ(size_text(11), "11 bytes");
  EXPECT_EQ(size_text(int64_t(64) << 20), "64 MiB");
  EXPECT_EQ(size_text(int64_t(70) << 20), "70 MiB");
  EXPECT_EQ(size_text((int64_t(64) << 20) + 1), "64.0 MiB (67108865 bytes)");
}

}  // namespace
}  // namespace loom::core
