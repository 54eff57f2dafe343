#include "core/sigbus_guard.h"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace vhc {

namespace {

// A fixed table the handler can read without locks: a slot is published by storing its
// length last (release) and withdrawn by zeroing the length first. Only the thread that owns
// the mappings (the event loop) writes; the handler runs on the faulting thread.
constexpr int kSlots = 16384;
struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<bool> poisoned{false};
  std::atomic<bool> used{false};
};
Slot g_slots[kSlots];
std::atomic<int> g_highWater{0};
std::atomic<unsigned long> g_absorbed{0};
struct sigaction g_previous;
std::once_flag g_installed;

void onSigbus(int sig, siginfo_t* info, void* context) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  int n = g_highWater.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    size_t len = g_slots[i].len.load(std::memory_order_acquire);
    uintptr_t start = g_slots[i].start.load(std::memory_order_relaxed);
    if (len == 0 || addr < start || addr - start >= len) continue;
    // The whole mapping at once: the connection ends anyway, and one call keeps hugetlbfs
    // mappings (which split only at huge-page boundaries) whole.
    void* p = ::mmap(reinterpret_cast<void*>(start), len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) break;  // cannot recover: fall through to the previous handler
    g_slots[i].poisoned.store(true, std::memory_order_release);
    g_absorbed.fetch_add(1, std::memory_order_relaxed);
    return;  // the faulting access is retried on the zero pages
  }
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) return g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    return g_previous.sa_handler(sig);
  }
  // Default (or ignored, which for a fault would retry forever): restore the default action
  // and return; the access faults again and the process ends with SIGBUS as it would have.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);
}

void install() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, &g_previous);
}

}  // namespace

SigbusGuard::SigbusGuard(void* addr, size_t len) {
  if (!addr || len == 0) return;
  std::call_once(g_installed, install);
  for (int i = 0; i < kSlots; ++i) {
    bool expected = false;
    if (!g_slots[i].used.compare_exchange_strong(expected, true)) continue;
    g_slots[i].poisoned.store(false, std::memory_order_relaxed);
    g_slots[i].start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_relaxed);
    g_slots[i].len.store(len, std::memory_order_release);
    int hw = g_highWater.load();
    while (hw < i + 1 && !g_highWater.compare_exchange_weak(hw, i + 1)) {
    }
    slot_ = i;
    return;
  }
}

SigbusGuard::SigbusGuard(SigbusGuard&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }

SigbusGuard& SigbusGuard::operator=(SigbusGuard&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

SigbusGuard::~SigbusGuard() { release(); }

void SigbusGuard::release() {
  if (slot_ < 0) return;
  g_slots[slot_].len.store(0, std::memory_order_release);
  g_slots[slot_].start.store(0, std::memory_order_relaxed);
  g_slots[slot_].used.store(false, std::memory_order_release);
  slot_ = -1;
}

bool SigbusGuard::poisoned() const { return slot_ >= 0 && g_slots[slot_].poisoned.load(std::memory_order_acquire); }

unsigned long SigbusGuard::absorbed() { return g_absorbed.load(std::memory_order_relaxed); }

}  // namespace vhc
