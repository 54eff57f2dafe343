// Randomised robustness check of the native core, outside Node: random rings in real shared
// memory through Virtqueue, and random vhost-user byte streams (with random fds) through a
// VhostUserConnection driving the console device. It checks the trust model: whatever the
// guest or the front-end writes, the core neither crashes nor hands out a pointer outside
// guest memory, reports the fault, and leaks no fd. Build with sanitizers, e.g.
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -Inative native/test/fuzz.cc native/core/*.cc
//   ./a.out [iterations] [seed]
// (test/device/native-fuzz.test.ts does exactly that). Exit status 0 = no violation.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/console_device.h"
#include "core/guest_memory.h"
#include "core/vhost_user.h"
#include "core/virtqueue.h"

using namespace vhc;

namespace {

std::mt19937_64 rng;
uint64_t rnd(uint64_t n) { return n ? rng() % n : 0; }

[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "VIOLATION: %s\n", what);
  std::abort();
}

constexpr uint64_t kGuestBase = 0x100000, kUserBase = 0x7f0000000000, kSize = 1 << 20;
constexpr uint64_t kTableZone = 128 << 10, kBufferZone = 256 << 10;

int memfd() {
  int fd = memfd_create("fuzz-guest", 0);
  if (fd < 0 || ftruncate(fd, kSize) != 0) violation("memfd");
  return fd;
}

// An address that is sometimes valid, sometimes near an edge, sometimes wild.
uint64_t address(uint64_t base) {
  switch (rnd(6)) {
    case 0: return rnd(UINT64_MAX);
    case 1: return base + kSize - rnd(64);
    case 2: return base - rnd(64);
    default: return base + rnd(kSize);
  }
}

struct Counts {
  unsigned long chains = 0, faults = 0, messages = 0, connectionsEnded = 0, endedInSetup = 0, connections = 0,
                hostCalls = 0, hostBytes = 0;
} counts;

// Small numbers at a buffer make a plausible control message (id, event, value).
void plausibleControl(uint8_t* b, uint64_t off) {
  if (off + 8 > kSize) return;
  uint32_t id = static_cast<uint32_t>(rnd(5));
  uint16_t ev = static_cast<uint16_t>(rnd(9)), val = static_cast<uint16_t>(rnd(2));
  std::memcpy(b, &id, 4);
  std::memcpy(b + 4, &ev, 2);
  std::memcpy(b + 6, &val, 2);
}

// Lays out a plausible split ring at desc/avail (offsets into `view`): `num` descriptors over
// valid buffers with random contents, short chains, some indirect tables, `avail` heads.
// `dir`: 0 random device-writable flags, 1 an rx queue's buffers (writable), 2 a tx queue's
// (readable); one buffer in 256 has the other direction anyway (a fault the device must report).
uint16_t writeFlag(int dir) {
  if (dir == 0 || rnd(256) == 0) return rnd(2) ? 2 : 0;
  return dir == 1 ? 2 : 0;
}

void plausibleRing(uint8_t* view, uint64_t descOff, uint64_t availOff, uint32_t num, uint16_t availIdx, int dir = 0) {
  for (uint32_t i = 0; i < num; ++i) {
    // Layout: rings below 128 KiB (callers), indirect tables in 128..256 KiB, buffers above.
    uint64_t addr = kGuestBase + kBufferZone + rnd(kSize - kBufferZone - 4096);
    uint32_t len = static_cast<uint32_t>(rnd(4) ? 8 + rnd(8) : rnd(4096));
    uint16_t flags = static_cast<uint16_t>((rnd(3) == 0 ? 1 : 0) | writeFlag(dir));
    uint16_t next = static_cast<uint16_t>(i + 1 < num ? i + 1 : 0);
    if (rnd(16) == 0) {  // an indirect table of plausible entries
      uint32_t n = 1 + static_cast<uint32_t>(rnd(num));
      uint64_t off = (kTableZone + rnd(kBufferZone - kTableZone - 16ull * n)) & ~15ull;
      for (uint32_t k = 0; k < n; ++k) {
        uint64_t ia = kGuestBase + kBufferZone + rnd(kSize - kBufferZone - 4096);
        uint32_t il = static_cast<uint32_t>(rnd(4096));
        uint16_t ifl = static_cast<uint16_t>((k + 1 < n ? 1 : 0) | writeFlag(dir)), inx = static_cast<uint16_t>(k + 1);
        plausibleControl(view + (ia - kGuestBase), ia - kGuestBase);
        std::memcpy(view + off + 16 * k, &ia, 8);
        std::memcpy(view + off + 16 * k + 8, &il, 4);
        std::memcpy(view + off + 16 * k + 12, &ifl, 2);
        std::memcpy(view + off + 16 * k + 14, &inx, 2);
      }
      addr = kGuestBase + off;
      len = 16 * n;
      flags = 4;
    }
    uint8_t* dt = view + descOff + 16 * i;
    std::memcpy(dt, &addr, 8);
    std::memcpy(dt + 8, &len, 4);
    std::memcpy(dt + 12, &flags, 2);
    std::memcpy(dt + 14, &next, 2);
    // Buffer contents: small numbers make plausible control messages (id, event, value). Not
    // for an indirect descriptor: its "buffer" is the table just built (writing a message over
    // its first entry made most indirect chains fault by construction).
    if (flags != 4) plausibleControl(view + (addr - kGuestBase), addr - kGuestBase);
  }
  for (uint16_t k = 0; k < availIdx; ++k) {
    uint16_t head = static_cast<uint16_t>(rnd(num));
    std::memcpy(view + availOff + 4 + 2 * (k % num), &head, 2);
  }
  std::memcpy(view + availOff + 2, &availIdx, 2);
}

void fuzzRings(unsigned iterations) {
  int fd = memfd();
  uint8_t* view = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  GuestMemory mem;
  std::string err;
  if (!mem.add({kGuestBase, kSize, kUserBase, 0}, UniqueFd(fd), err)) violation(err.c_str());
  const uint8_t* host = mem.fromGuest(kGuestBase, kSize);
  bool faulted = false;
  Virtqueue q(0, mem, [&](const std::string&) { faulted = true; });
  q.setIndirect(true);  // as if INDIRECT_DESC was negotiated
  Chain chain;
  for (unsigned it = 0; it < iterations; ++it) {
    q.reset();
    faulted = false;
    uint32_t num = 1u << rnd(9);
    if (!q.setNum(num, err)) violation("setNum");
    q.setEventIdx(rnd(2));
    q.setIndirect(rnd(8) != 0);
    // Rings usually inside memory, at random (aligned) places.
    uint64_t d = kUserBase + (rnd(kSize) & ~15ull), a = kUserBase + (rnd(kSize) & ~1ull),
             u = kUserBase + (rnd(kSize) & ~3ull);
    if (rnd(10) == 0) d = address(kUserBase);
    q.setAddr(d, a, u);
    q.started = q.enabled = true;
    // A plausible ring (valid buffers, short chains, some indirect tables), then random damage.
    bool descInside = d >= kUserBase && d - kUserBase + 16ull * num <= kSize;
    uint8_t* dt = descInside ? view + (d - kUserBase) : nullptr;
    if (descInside && a - kUserBase + 6 + 2ull * num <= kSize)
      plausibleRing(view, d - kUserBase, a - kUserBase, num, static_cast<uint16_t>(rnd(num + 1)));
    for (unsigned k = static_cast<unsigned>(rnd(4)); k > 0; --k)  // damage: random bytes anywhere
      view[rnd(kSize)] = static_cast<uint8_t>(rng());
    if (descInside && rnd(4) == 0)
      for (unsigned k = 0; k < 8; ++k) dt[rnd(16ull * num)] = static_cast<uint8_t>(rng());
    for (unsigned round = 0; round < 8; ++round) {
      int r;
      while ((r = q.pop(chain)) == 1) {
        ++counts.chains;
        for (const Segment& s : chain.segs)
          if (s.ptr < host || s.len > kSize || s.ptr + s.len > host + kSize) violation("segment outside guest memory");
        q.push(chain.head, static_cast<uint32_t>(rng()));
      }
      if (r < 0) {
        if (!faulted) violation("pop failed without reporting a fault");
        ++counts.faults;
        break;
      }
      q.flush();
      q.rearm();
    }
  }
  munmap(view, kSize);
}

struct Loop : EventLoop {
  std::map<int, std::function<void()>> watches;
  std::vector<std::function<void()>> tasks;
  void watch(int fd, std::function<void()> f) override { watches[fd] = std::move(f); }
  void unwatch(int fd) override { watches.erase(fd); }
  void defer(std::function<void()> t) override { tasks.push_back(std::move(t)); }
};

struct Events : ConsoleEvents {
  void log(LogLevel, const std::string&) override {}
  void connected() override {}
  void disconnected(const std::string&) override {}
  void deviceError(const std::string&) override {}
  void driverReady() override {}
  void portReady(uint32_t) override {}
  void guestOpen(uint32_t, bool) override {}
  void data(uint32_t, const uint8_t* p, size_t n) override {
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i += 512) sink = sink + p[i];  // touch what we were handed
  }
  void writable(uint32_t) override {}
};

void sendWithFds(int sock, const std::vector<uint8_t>& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (!fds.empty()) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  (void)sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Signals a kick fd the way a guest would, unless that would block (the front-end may have
// given a full pipe as kick fd; a guest's notification never blocks its vCPU on us).
void kickFd(int fd) {
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) return;
  uint64_t one = 1;
  (void)write(fd, &one, 8);
}

// The payload size a request takes (-1: not one the core implements).
int validSize(uint32_t req) {
  switch (req) {
    case 1:
    case 3:
    case 4:
    case 15:
    case 17:
    case 21:
    case 34:
    case 36:
    case 40: return 0;
    case 2:
    case 12:
    case 13:
    case 14:
    case 16:
    case 39: return 8;
    case 8:
    case 10:
    case 11:
    case 18: return 8;
    case 5:
    case 9:
    case 37:
    case 38: return 40;
    case 24:
    case 25: return 24;
    default: return -1;
  }
}

// A request the core implements (most of the time), or any id.
uint32_t someRequest() {
  static const uint32_t known[] = {1,  2,  3,  4,  5,  8,  9,  10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 21, 24, 25, 34, 36, 37, 38, 39, 40};
  if (rnd(8) == 0) return rnd(2) ? static_cast<uint32_t>(1 + rnd(41)) : static_cast<uint32_t>(rng());
  return known[rnd(sizeof known / sizeof known[0])];
}

// An fd of a kind a front-end may send: the guest's memfd, a small or sealed memfd, an
// eventfd (blocking or not), pipe ends (one full), a socket. Our other ends go to `others`.
int oddFd(int guest, std::vector<int>& others) {
  int p[2];
  switch (rnd(8)) {
    case 0:
    case 1: return guest;
    case 2: {
      int fd = memfd_create("fuzz-small", MFD_ALLOW_SEALING);
      if (fd >= 0 && ftruncate(fd, 4096) == 0 && rnd(2)) fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
      return fd;
    }
    case 3: return eventfd(0, 0);
    case 4: return eventfd(0, EFD_NONBLOCK);
    case 5:
      if (pipe2(p, O_NONBLOCK) != 0) violation("pipe");
      while (write(p[1], "xxxxxxxxxxxxxxxx", 16) > 0) {
      }  // full
      fcntl(p[1], F_SETFL, 0);
      others.push_back(p[0]);
      return p[1];
    case 6:
      if (pipe(p) != 0) violation("pipe");
      others.push_back(p[1]);
      return p[0];
    default:
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) != 0) violation("socketpair");
      others.push_back(p[1]);
      return p[0];
  }
}

// One host-side call of the device's API, as the daemon makes them between events.
void hostCall(ConsoleDevice& device) {
  std::string err;
  uint32_t nr = static_cast<uint32_t>(rnd(4));
  ++counts.hostCalls;
  switch (rnd(7)) {
    case 0:
    case 1: {
      std::vector<uint8_t> data(rnd(3) ? rnd(64) : rnd(70000), 0x5a);
      size_t n = device.write(nr, data.data(), data.size());
      if (n > data.size()) violation("write returned more than it was given");
      counts.hostBytes += n;
      break;
    }
    case 2: device.setHostOpen(nr, rnd(2), err); break;
    case 3: {
      std::string name = "fuzz." + std::to_string(rnd(4));
      device.addPort(nr, rnd(2) ? &name : nullptr, rnd(4) == 0, err);
      break;
    }
    case 4:
      if (nr != 0) device.removePort(nr, err);
      break;
    case 5: device.setOutputPaused(nr, rnd(2), err); break;
    default: device.setConsoleSize(static_cast<uint16_t>(rnd(300)), static_cast<uint16_t>(rnd(100))); break;
  }
}

void fuzzProtocol(unsigned iterations) {
  Loop loop;
  Events events;
  ConsoleConfig cfg;
  cfg.maxPorts = 3;
  ConsoleDevice device(cfg, events);
  std::string err;
  device.addPort(0, nullptr, true, err);
  std::string name = "fuzz";
  device.addPort(1, &name, false, err);
  int guest = memfd();
  uint8_t* view = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, guest, 0));
  for (unsigned it = 0; it < iterations; ++it) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) violation("socketpair");
    ++counts.connections;
    bool ended = false, setupEnded = false;
    auto conn =
        std::make_unique<VhostUserConnection>(UniqueFd(sv[1]), device, loop, events, [&](const std::string& why, bool) {
          ended = true;
          if (std::getenv("FUZZ_REASONS")) std::fprintf(stderr, "%s\n", why.c_str());
        });
    // A valid start (features, memory, rings with plausible contents) most of the time...
    auto request = [&](uint32_t req, const void* payload, uint32_t size, std::vector<int> fds = {}) {
      std::vector<uint8_t> msg(12 + size);
      uint32_t h[3] = {req, 1, size};
      std::memcpy(msg.data(), h, 12);
      if (size) std::memcpy(msg.data() + 12, payload, size);
      sendWithFds(sv[0], msg, fds);
      conn->onReadable();
    };
    std::vector<int> kicks;
    if (rnd(4)) {
      uint64_t features = device.features() & (rnd(2) ? ~0ull : ~(1ull << 29));
      request(2, &features, 8);
      uint64_t table[5] = {1, kGuestBase, kSize, kUserBase, 0};
      request(5, table, 40, {guest});
      for (uint32_t qi = 0; qi < device.queueCount() && !ended; ++qi) {
        uint32_t num = 64, st[2] = {qi, num};
        request(8, st, 8);
        uint64_t descOff = qi * 8192ull, availOff = descOff + 1024, usedOff = descOff + 4096;
        plausibleRing(view, descOff, availOff, num, static_cast<uint16_t>(rnd(num + 1)), qi % 2 ? 2 : 1);
        uint32_t addr[10] = {qi, 0};
        uint64_t ua[4] = {kUserBase + descOff, kUserBase + usedOff, kUserBase + availOff, 0};
        std::memcpy(addr + 2, ua, sizeof ua);
        request(9, addr, 40);
        int k = eventfd(0, EFD_NONBLOCK);
        uint64_t index = qi;
        request(12, &index, 8, {k});
        kicks.push_back(k);
        uint32_t en[2] = {qi, 1};
        request(18, en, 8);
      }
      // Run the rings the guest laid out (the kick fds arrived signalled by nobody: poke them).
      for (auto& [fd, f] : std::map<int, std::function<void()>>(loop.watches)) {
        if (fd == sv[1] || ended) continue;
        kickFd(fd);
        f();
      }
      setupEnded = ended;
    }
    // ...then mostly well-formed requests with random fields, plus raw garbage now and then.
    bool truncated = false;
    if (!ended && rnd(16) == 0) {  // the front-end shrinks the guest's RAM under the daemon
      truncated = true;
      if (ftruncate(guest, static_cast<off_t>(rnd(kSize) & ~4095ull)) != 0) violation("ftruncate");
    }
    for (unsigned m = 0; m < 40 && !ended; ++m) {
      if (rnd(4) == 0) hostCall(device);
      uint32_t req = someRequest();
      uint32_t flags = rnd(8) ? (rnd(2) ? 1 : 9) : static_cast<uint32_t>(rng());
      // Mostly the size the request takes (so the connection lives on to the next message).
      uint32_t size = rnd(6) ? static_cast<uint32_t>(rnd(300)) : static_cast<uint32_t>(rng());
      if (rnd(4) != 0 && validSize(req) >= 0) size = static_cast<uint32_t>(validSize(req));
      std::vector<uint8_t> msg(12 + std::min<uint32_t>(size, 300));
      std::memcpy(msg.data(), &req, 4);
      std::memcpy(msg.data() + 4, &flags, 4);
      std::memcpy(msg.data() + 8, &size, 4);
      for (size_t i = 12; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(rng());
      if (msg.size() >= 20 && rnd(4)) {  // plausible small numbers: queue indexes, sizes, addresses
        uint32_t a = static_cast<uint32_t>(rnd(9)), b = 1u << rnd(10);
        std::memcpy(msg.data() + 12, &a, 4);
        std::memcpy(msg.data() + 16, &b, 4);
      }
      if (msg.size() >= 12 + 40 && rnd(2)) {  // a region/ring address that is sometimes right
        uint64_t regionOrRing[4] = {kGuestBase, rnd(2) ? kSize : rng(), kUserBase + rnd(kSize), rnd(3) ? 0 : rng()};
        std::memcpy(msg.data() + 12 + 8, regionOrRing, sizeof regionOrRing);
      }
      std::vector<int> fds, others;
      for (unsigned f = static_cast<unsigned>(rnd(3)); f > 0; --f) fds.push_back(oddFd(guest, others));
      // In pieces now and then: the header alone, then the payload carrying the fds.
      if (rnd(4) == 0 && msg.size() > 12) {
        sendWithFds(sv[0], std::vector<uint8_t>(msg.begin(), msg.begin() + 12), {});
        conn->onReadable();
        sendWithFds(sv[0], std::vector<uint8_t>(msg.begin() + 12, msg.end()), fds);
      } else {
        sendWithFds(sv[0], msg, fds);
      }
      for (int fd : fds)
        if (fd != guest) close(fd);
      for (int fd : others) close(fd);
      conn->onReadable();
      ++counts.messages;
      // Kick whatever kick fds were set, so ring processing runs over whatever memory we got.
      for (auto& [fd, f] : std::map<int, std::function<void()>>(loop.watches)) {
        if (fd == sv[1] || ended) continue;
        kickFd(fd);
        f();
      }
      char drain[4096];
      while (recv(sv[0], drain, sizeof drain, MSG_DONTWAIT) > 0) {
      }
      for (auto& t : loop.tasks) t();
      loop.tasks.clear();
    }
    if (ended) ++counts.connectionsEnded;
    if (ended && setupEnded) ++counts.endedInSetup;
    if (truncated && ftruncate(guest, kSize) != 0) violation("ftruncate");
    for (int k : kicks) close(k);
    conn.reset();
    loop.tasks.clear();
    close(sv[0]);
    if (!loop.watches.empty()) violation("a watch outlived its connection");
  }
  munmap(view, kSize);
  close(guest);
}

int openFds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // as in Node: a signal fd whose reader is gone fails with EPIPE
  unsigned iterations = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 2000;
  rng.seed(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1);
  int fdsBefore = openFds();
  fuzzRings(iterations);
  fuzzProtocol(iterations / 4);
  if (openFds() != fdsBefore) violation("file descriptors leaked");
  std::printf(
      "chains %lu faults %lu messages %lu ended %lu connections %lu ended-in-setup %lu host-calls %lu host-bytes %lu\n",
      counts.chains, counts.faults, counts.messages, counts.connectionsEnded, counts.connections, counts.endedInSetup,
      counts.hostCalls, counts.hostBytes);
  return 0;
}
