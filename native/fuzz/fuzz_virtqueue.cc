// libFuzzer target: one split ring (Virtqueue over GuestMemory) against a guest that writes
// descriptors, indirect tables and avail entries directly, and rewrites them between pops.
// Invariants: every segment lies inside guest memory, a chain has at most `num` segments,
// a failed pop reported its fault (and the queue stays broken), the used index moves by
// exactly the chains pushed.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "fuzz/input.h"
#include "fuzz/session.h"

namespace {

using namespace vhc;
using vhcfuzz::violation;

constexpr uint64_t kGuest = 0x10000000, kUser = 0x7f3400000000, kSize = 256 << 10;
constexpr uint64_t kDesc = 0, kAvail = 64 << 10, kUsed = 96 << 10, kTables = 128 << 10;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vhcfuzz::FdCheck fdCheck(512);
  vhcfuzz::Input in(data, size);
  // One memfd for the process (zeroed per run): creating one per run halves the exec rate.
  static int fd = -1;
  static uint8_t* view = nullptr;
  if (fd < 0) {
    fd = memfd_create("fuzz-ring", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kSize) != 0) violation("memfd");
    view = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (view == MAP_FAILED) violation("mmap");
  }
  std::memset(view, 0, kSize);
  {
    GuestMemory mem;
    std::string err;
    if (!mem.add({kGuest, kSize, kUser, 0}, UniqueFd(dup(fd)), err)) violation("%s", err.c_str());  // takes fd
    const uint8_t* host = mem.fromGuest(kGuest, kSize);
    bool faulted = false;
    Virtqueue q(0, mem, [&](const std::string&) { faulted = true; });
    uint32_t num = 1u << (in.u8() % 11);
    if (!q.setNum(num, err)) violation("setNum");
    q.setEventIdx(in.flag());
    q.setAddr(kUser + kDesc, kUser + kAvail, kUser + kUsed);
    q.started = q.enabled = true;
    uint16_t availIdx = 0, pushed = 0, usedStart = 0;
    bool started = false, damaged = false;
    Chain chain;
    auto putDesc = [&](uint64_t at, uint8_t mode, uint32_t len, uint16_t flags, uint16_t next) {
      uint64_t addr;
      switch (mode % 4) {
        case 0: addr = kGuest + kTables + (static_cast<uint64_t>(in.u16()) * 16) % (kSize - kTables); break;
        case 1: addr = kGuest + kSize - (in.u8() % 64); break;
        case 2: addr = in.u64(); break;
        default: addr = kGuest + kUsed + in.u16() % (32 << 10); break;
      }
      std::memcpy(view + at, &addr, 8);
      std::memcpy(view + at + 8, &len, 4);
      std::memcpy(view + at + 12, &flags, 2);
      std::memcpy(view + at + 14, &next, 2);
    };
    for (unsigned n = 0; n < 1024 && !in.empty(); ++n) {
      switch (in.u8() % 8) {
        case 0: {  // a descriptor of the ring's table
          uint32_t i = in.u16() % num;
          uint8_t mode = in.u8();
          uint32_t len = in.flag() ? in.u32() : in.u8();
          uint16_t flags = in.u8() & 7, next = in.u16();
          putDesc(kDesc + 16ull * i, mode, len, flags, next % (2 * num));
          break;
        }
        case 1: {  // an entry of an indirect table
          uint64_t at = kTables + (static_cast<uint64_t>(in.u16()) * 16) % (kSize - kTables - 16);
          uint8_t mode = in.u8();
          uint32_t len = in.flag() ? in.u32() : in.u8();
          uint16_t flags = in.u8() & 7, next = in.u8();
          putDesc(at, mode, len, flags, next);
          break;
        }
        case 2: {  // publish heads
          for (unsigned k = in.range(1, 8); k > 0; --k) {
            uint16_t head = static_cast<uint16_t>(in.u16() % (num + 2));
            std::memcpy(view + kAvail + 4 + 2 * (availIdx % num), &head, 2);
            ++availIdx;
          }
          std::memcpy(view + kAvail + 2, &availIdx, 2);
          break;
        }
        case 3: {  // the device drains a batch, the guest rewriting between pops
          unsigned budget = in.range(1, 64);
          while (budget-- > 0) {
            int r = q.pop(chain);
            if (r < 0) {
              if (!faulted) violation("pop failed without reporting a fault");
              if (!q.broken()) violation("a fault left the queue usable");
              break;
            }
            if (faulted) violation("a broken queue popped again");
            if (r == 0) break;
            if (!started) {
              started = true;
              std::memcpy(&usedStart, view + kUsed + 2, 2);
            }
            if (chain.segs.size() > num) violation("chain of %zu segments on a queue of %u", chain.segs.size(), num);
            uint32_t writable = 0;
            for (const Segment& s : chain.segs) {
              if (s.ptr < host || s.len > kSize || s.ptr + s.len > host + kSize)
                violation("segment outside guest memory");
              if (s.writable) writable += s.len;
              volatile uint8_t sink = s.len ? s.ptr[s.len - 1] : 0;
              (void)sink;
            }
            q.push(chain.head, writable);
            ++pushed;
            if (in.flag()) {  // the guest rewrites a descriptor meanwhile
              uint32_t i = in.u16() % num;
              putDesc(kDesc + 16ull * i, in.u8(), in.u8(), in.u8() & 7, in.u16() % num);
            }
          }
          break;
        }
        case 4: {
          q.flush();
          if (started && !damaged && !q.broken()) {
            uint16_t used;
            std::memcpy(&used, view + kUsed + 2, 2);
            if (used != static_cast<uint16_t>(usedStart + pushed))
              violation("used index %u, expected %u", used, usedStart + pushed);
          }
          break;
        }
        case 5: q.rearm(); break;
        case 6: {  // raw damage to the avail/used ring words
          uint64_t at = kAvail + in.u16() % (64 << 10);
          std::vector<uint8_t> b = in.bytes(in.range(1, 4));
          if (b.empty()) break;
          std::memcpy(view + at, b.data(), b.size());
          damaged = true;
          break;
        }
        default: q.kickSelf(); break;
      }
    }
    q.flush();
  }
  return 0;
}
