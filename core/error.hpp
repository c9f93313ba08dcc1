#pragma once
// Loom's error hierarchy. Libraries throw; binaries catch at main, print
// "loom: error: <message>" and exit with exit_code(): 2 for bad input, 1 for failures.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace loom {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  template <typename... Args>
  explicit Error(fmt::format_string<Args...> format, Args&&... args)
      : std::runtime_error(fmt::format(format, std::forward<Args>(args)...)) {}

  virtual int exit_code() const { return 1; }
};

// The user gave something wrong: a value, a file, a flag. Exit status 2.
class InvalidInput : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// Reading or writing a file, or the store, failed for a reason that is not the input's fault.
class IoError : public Error {
 public:
  using Error::Error;
};

// A valid request that cannot be satisfied (nothing fits, no plan exists).
class Infeasible : public Error {
 public:
  using Error::Error;
};

// The user stopped the work before it finished (a cancelled search or run).
class Cancelled : public Error {
 public:
  using Error::Error;
};

}  // namespace loom
