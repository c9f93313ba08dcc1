#include "core/temporary_cleanup.hpp"

#include <signal.h>  // sigaction, raise
#include <unistd.h>  // unlink

#include <atomic>   // slots claimed from any thread
#include <cstring>  // std::memcpy
#include <mutex>    // std::call_once

namespace loom::core {
namespace {

// Fixed storage, so that the handler touches nothing but memory and unlink (async-signal-safe).
constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
// A slot is free, being filled (claimed, its path not yet complete) or live (unlinked by a signal).
enum SlotState : int { kFree = 0, kFilling = 1, kLive = 2 };
char slot_paths[kSlots][kPathBytes];
std::atomic<int> slot_states[kSlots];

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

void remove_temporaries_and_end(int signal) {
  for (int i = 0; i < kSlots; ++i)
    if (slot_states[i].load() == kLive) ::unlink(slot_paths[i]);
  // As the default disposition would have: end the process by this signal.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signal, &default_action, nullptr);
  raise(signal);
}

void install_handlers_once() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    for (const int signal : kSignals) {
      struct sigaction current {};
      if (sigaction(signal, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = remove_temporaries_and_end;
      sigemptyset(&action.sa_mask);
      sigaction(signal, &action, nullptr);
    }
  });
}

}  // namespace

TemporaryRegistration::TemporaryRegistration(const std::filesystem::path& path) {
  const std::string text = path.string();
  if (text.size() >= kPathBytes) return;
  install_handlers_once();
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!slot_states[i].compare_exchange_strong(expected, kFilling)) continue;
    std::memcpy(slot_paths[i], text.c_str(), text.size() + 1);
    slot_states[i].store(kLive);
    slot_ = i;
    return;
  }
}

TemporaryRegistration::~TemporaryRegistration() {
  if (slot_ >= 0) slot_states[slot_].store(kFree);
}

}  // namespace loom::core
