// Hostile guests and front-ends against the native core, outside Node (issue 9): each scenario
// sets up real VMs the way a front-end does (socketpair, memfd guest RAM, eventfds), one
// poll(2) event loop serving all of them as the daemon's does, then misbehaves in one way and
// checks that only the misbehaving connection suffers. A guest that races the device runs on
// its own thread, as a vCPU would. Prints "ok <scenario> <figures>" and exits 0, or prints
// "FAIL <scenario>: why" and exits 1. A hang is a failure too: the caller runs it under a
// timeout (test/device/hostile.test.ts).
//   g++ -std=c++17 -O1 -g -pthread -Inative native/test/hostile.cc native/core/*.cc
//   ./a.out pin|budget|bigqueue|signalfds|sigbus|fds|logflood|memreg|indirect|mapoffset|reset
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/console_device.h"
#include "core/vhost_user.h"

using namespace vhc;

namespace {

std::string g_scenario;

[[noreturn]] void failf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void failf(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::printf("FAIL %s: %s\n", g_scenario.c_str(), buf);
  std::fflush(stdout);
  std::_Exit(1);
}
#define CHECK(cond, ...)             \
  do {                               \
    if (!(cond)) failf(__VA_ARGS__); \
  } while (0)

// ---------------------------------------------------------------- the daemon's loop

struct PollLoop : EventLoop {
  std::map<int, std::function<void()>> watches;
  std::vector<std::function<void()>> tasks;
  // Descriptors visited per callback (the largest seen), when `probe` is set.
  std::function<uint64_t()> probe;
  uint64_t maxPerCallback = 0;

  void watch(int fd, std::function<void()> cb) override { watches[fd] = std::move(cb); }
  void unwatch(int fd) override { watches.erase(fd); }
  void defer(std::function<void()> t) override { tasks.push_back(std::move(t)); }

  void measure(const std::function<void()>& fn) {
    uint64_t before = probe ? probe() : 0;
    fn();
    if (probe) maxPerCallback = std::max(maxPerCallback, probe() - before);
  }
  // One turn: deferred tasks, then every readable fd once. False if nothing happened.
  bool turn(int timeoutMs) {
    bool any = false;
    while (!tasks.empty()) {
      auto ts = std::move(tasks);
      tasks.clear();
      for (auto& t : ts) t();
      any = true;
    }
    std::vector<pollfd> pfds;
    for (auto& [fd, cb] : watches) pfds.push_back({fd, POLLIN, 0});
    if (pfds.empty()) return any;
    int n = ::poll(pfds.data(), pfds.size(), timeoutMs);
    if (n <= 0) return any;
    for (auto& p : pfds) {
      if (!p.revents) continue;
      auto it = watches.find(p.fd);
      if (it == watches.end()) continue;
      auto cb = it->second;  // the callback may unwatch itself
      measure(cb);
      any = true;
    }
    return any;
  }
  void runFor(int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) turn(5);
  }
  void settle() {
    for (int i = 0; i < 1000 && turn(20);) ++i;
  }
};

struct Events : ConsoleEvents {
  std::vector<std::string> logs;
  std::vector<std::string> errors;
  bool ended = false;
  std::string endReason;
  std::string got;
  std::map<uint32_t, bool> open;
  std::vector<uint32_t> ready;
  unsigned readyEvents = 0;
  void log(LogLevel level, const std::string& m) override {
    logs.push_back(std::string(logLevelName(level)) + " " + m);
    if (std::getenv("HOSTILE_LOG")) std::fprintf(stderr, "[%s] %s\n", logLevelName(level), m.c_str());
  }
  void connected() override {}
  void disconnected(const std::string& r) override { ended = true, endReason = r; }
  void deviceError(const std::string& m) override { errors.push_back(m); }
  void driverReady() override { ++readyEvents; }
  void portReady(uint32_t nr) override { ready.push_back(nr); }
  void guestOpen(uint32_t nr, bool o) override { open[nr] = o; }
  void data(uint32_t, const uint8_t* b, size_t n) override { got.append(reinterpret_cast<const char*>(b), n); }
  void writable(uint32_t) override {}
  size_t count(const std::string& needle) const {
    size_t n = 0;
    for (auto& l : logs) n += l.find(needle) != std::string::npos;
    return n;
  }
};

// ---------------------------------------------------------------- one VM: guest + front-end

constexpr uint64_t kUser = 0x7f0000000000ull;  // the front-end's address of guest RAM
constexpr uint64_t kFeatVersion1 = 1ull << 32, kFeatMultiport = 1ull << 1, kFeatIndirect = 1ull << 28;
constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

struct Vm {
  PollLoop& loop;
  Events events;
  std::unique_ptr<ConsoleDevice> device;
  int fe = -1;  // the front-end's end of the socket
  std::unique_ptr<VhostUserConnection> conn;
  int memfd = -1;
  size_t memSize;
  uint8_t* ram = nullptr;  // the guest's view
  uint32_t qsize;
  unsigned nq;
  std::vector<int> kick, call;
  std::vector<uint16_t> availIdx;

  Vm(PollLoop& l, uint32_t queueSize, bool multiport = false, size_t mem = 8u << 20)
      : loop(l), memSize(mem), qsize(queueSize) {
    ConsoleConfig cfg;
    cfg.maxPorts = multiport ? 2 : 1;
    cfg.multiport = multiport;
    device = std::make_unique<ConsoleDevice>(cfg, events);
    std::string err;
    CHECK(device->addPort(0, nullptr, true, err), "addPort: %s", err.c_str());
    if (multiport) {
      std::string name = "org.test.1";
      CHECK(device->addPort(1, &name, false, err), "addPort 1: %s", err.c_str());
    }
    nq = device->queueCount();
    int sv[2];
    CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    fe = sv[0];
    ::fcntl(sv[1], F_SETFL, O_NONBLOCK);
    conn = std::make_unique<VhostUserConnection>(UniqueFd(sv[1]), *device, loop, events,
                                                 [this](const std::string& r, bool) {
                                                   conn.reset();
                                                   events.ended = true, events.endReason = r;
                                                 });
    memfd = ::memfd_create("hostile-ram", MFD_CLOEXEC);
    CHECK(memfd >= 0 && ::ftruncate(memfd, static_cast<off_t>(memSize)) == 0, "memfd");
    ram = static_cast<uint8_t*>(::mmap(nullptr, memSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    CHECK(ram != MAP_FAILED, "mmap");
    kick.assign(nq, -1);
    call.assign(nq, -1);
    availIdx.assign(nq, 0);
  }
  ~Vm() {
    conn.reset();
    if (ram) ::munmap(ram, memSize);
    for (int fd : kick)
      if (fd >= 0) ::close(fd);
    for (int fd : call)
      if (fd >= 0) ::close(fd);
    if (memfd >= 0) ::close(memfd);
    if (fe >= 0) ::close(fe);
  }

  // Ring layout: 1 MiB per queue from 1 MiB up (desc, then avail, then used), buffers above.
  uint64_t descOff(unsigned q) const { return (1ull + q) << 20; }
  uint64_t availOff(unsigned q) const { return descOff(q) + 16ull * qsize; }
  uint64_t usedOff(unsigned q) const { return (availOff(q) + 6 + 2ull * qsize + 63) & ~63ull; }
  uint64_t bufOff(unsigned q) const { return ((1ull + nq) << 20) + (static_cast<uint64_t>(q) << 16); }

  void send(uint32_t req, const void* payload, uint32_t size, std::vector<int> fds = {}, uint32_t flags = 1) {
    uint8_t buf[4096];
    uint32_t h[3] = {req, flags, size};
    std::memcpy(buf, h, 12);
    if (size) std::memcpy(buf + 12, payload, size);
    sendRaw(buf, 12 + size, fds);
  }
  void sendRaw(const void* bytes, size_t len, const std::vector<int>& fds) {
    iovec iov{const_cast<void*>(bytes), len};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
    if (!fds.empty()) {
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    CHECK(::sendmsg(fe, &mh, MSG_NOSIGNAL) == static_cast<ssize_t>(len), "sendmsg: %s", strerror(errno));
    loop.settle();
  }
  // The u64 of a reply (REPLY_ACK or a value), after the loop handled the request.
  uint64_t replyU64() {
    uint8_t buf[20];
    size_t have = 0;
    for (int i = 0; i < 100 && have < sizeof buf; ++i) {
      ssize_t n = ::recv(fe, buf + have, sizeof buf - have, MSG_DONTWAIT);
      if (n > 0) have += static_cast<size_t>(n);
      else loop.turn(10);
    }
    CHECK(have == sizeof buf, "no reply (%zu bytes)", have);
    uint64_t v;
    std::memcpy(&v, buf + 12, 8);
    return v;
  }
  void u64msg(uint32_t req, uint64_t v, std::vector<int> fds = {}) { send(req, &v, 8, std::move(fds)); }
  void state(uint32_t req, uint32_t a, uint32_t b) {
    uint32_t s[2] = {a, b};
    send(req, s, 8);
  }

  // The front-end's start: features (no PROTOCOL_FEATURES: rings start enabled), memory, rings.
  void start(uint64_t features, int callOverride = -1, unsigned queues = 0) {
    u64msg(2, features | kFeatVersion1);
    uint64_t table[5] = {1, 0, memSize, kUser, 0};  // nregions (+pad), gpa, size, uaddr, offset
    send(5, table, sizeof table, {memfd});
    for (unsigned q = 0; q < (queues ? queues : nq); ++q) startQueue(q, callOverride);
  }
  void startQueue(unsigned q, int callOverride = -1) {
    state(8, q, qsize);
    uint64_t addr[5] = {q, kUser + descOff(q), kUser + usedOff(q), kUser + availOff(q), 0};
    send(9, addr, sizeof addr);
    if (kick[q] < 0) kick[q] = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (call[q] < 0) call[q] = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    u64msg(13, q, {callOverride >= 0 ? callOverride : call[q]});
    u64msg(12, q, {kick[q]});
  }

  // Guest driver side of queue q.
  void setDesc(unsigned q, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags, uint16_t next = 0) {
    uint8_t* d = ram + descOff(q) + 16ull * i;
    std::memcpy(d, &gpa, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }
  uint16_t* avail(unsigned q) { return reinterpret_cast<uint16_t*>(ram + availOff(q)); }
  uint16_t* used(unsigned q) { return reinterpret_cast<uint16_t*>(ram + usedOff(q)); }
  uint16_t usedIdx(unsigned q) { return __atomic_load_n(used(q) + 1, __ATOMIC_ACQUIRE); }
  void post(unsigned q, uint16_t head) {
    uint16_t* a = avail(q);
    __atomic_store_n(a + 2 + (availIdx[q] % qsize), head, __ATOMIC_RELAXED);
    ++availIdx[q];
    __atomic_store_n(a + 1, availIdx[q], __ATOMIC_RELEASE);
  }
  void doKick(unsigned q) {
    uint64_t one = 1;
    CHECK(::write(kick[q], &one, 8) == 8, "kick");
  }
  bool alive() const { return conn != nullptr && !events.ended; }
};

void checkOtherVmServes(PollLoop& loop) {
  // A second VM on the same loop still moves data both ways.
  Vm b(loop, 64);
  b.start(0);
  for (uint16_t i = 0; i < 4; ++i) {
    b.setDesc(0, i, b.bufOff(0) + 256ull * i, 256, kWrite);
    b.post(0, i);
  }
  const char out[] = "to-guest";
  size_t n = b.device->write(0, reinterpret_cast<const uint8_t*>(out), 8);
  CHECK(n == 8, "second VM: host write took %zu of 8 bytes", n);
  CHECK(std::memcmp(b.ram + b.bufOff(0), out, 8) == 0, "second VM: the guest did not get the bytes");
  std::memcpy(b.ram + b.bufOff(1), "from-guest", 10);
  b.setDesc(1, 0, b.bufOff(1), 10, 0);
  b.post(1, 0);
  b.doKick(1);
  loop.settle();
  CHECK(b.events.got == "from-guest", "second VM: the host got '%s'", b.events.got.c_str());
  CHECK(b.alive(), "second VM ended: %s", b.events.endReason.c_str());
}

// ---------------------------------------------------------------- scenarios

// A hostile vCPU: re-posts every buffer as soon as the device has written its used element,
// without waiting for the used index (which the device publishes only at the end of a call).
// Call with every used element's id set to the sentinel beforehand.
constexpr uint32_t kSentinel = 0xffffffffu;
void clearUsed(Vm& a, unsigned q) {
  for (uint32_t i = 0; i < a.qsize; ++i) std::memcpy(a.ram + a.usedOff(q) + 4 + 8ull * i, &kSentinel, 4);
}
std::atomic<bool> g_vcpuRunning{false};
void repost(Vm& a, unsigned q, std::atomic<bool>& stop, std::atomic<unsigned long>& count) {
  uint32_t cursor = 0;
  g_vcpuRunning = true;
  while (!stop.load(std::memory_order_relaxed)) {
    uint32_t* id = reinterpret_cast<uint32_t*>(a.ram + a.usedOff(q) + 4 + 8ull * (cursor % a.qsize));
    uint32_t head = __atomic_load_n(id, __ATOMIC_ACQUIRE);
    if (head == kSentinel) continue;
    __atomic_store_n(id, kSentinel, __ATOMIC_RELAXED);
    a.post(q, static_cast<uint16_t>(head));
    ++cursor;
    count.fetch_add(1, std::memory_order_relaxed);
  }
}

// Finding 1: a guest vCPU re-posts receive chains without device-writable bytes as fast as
// they come back; one small host write must not run for ever.
void pin(bool zeroLength) {
  PollLoop loop;
  Vm a(loop, 1024);
  a.start(0);
  for (uint16_t i = 0; i < 1024; ++i) {
    if (zeroLength) a.setDesc(0, i, a.bufOff(0), 0, kWrite);
    else a.setDesc(0, i, a.bufOff(0), 64, 0);  // device-readable only
    a.post(0, i);
  }
  clearUsed(a, 0);
  std::atomic<bool> stop{false};
  std::atomic<unsigned long> reposted{0};
  std::thread vcpu([&] { repost(a, 0, stop, reposted); });
  while (!g_vcpuRunning) std::this_thread::yield();
  uint8_t data[64] = {};
  auto t0 = std::chrono::steady_clock::now();
  size_t n = a.device->write(0, data, sizeof data);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  vcpu.join();
  loop.settle();
  CHECK(n == 0, "write took %zu bytes", n);
  CHECK(!a.alive(), "the connection of the guest posting empty receive chains is still up");
  CHECK(a.events.endReason.find("no device-writable bytes") != std::string::npos, "end reason: %s",
        a.events.endReason.c_str());
  checkOtherVmServes(loop);
  std::printf("ok pin%s write %.1f ms, chains re-posted meanwhile %lu\n", zeroLength ? "-zero" : "", ms,
              reposted.load());
}

// Finding 1, budget: a queue of 32768 one-byte receive buffers, re-posted as fast as they come
// back; a 1 MiB host write returns after the budget (each chain is one descriptor here).
void budget() {
  PollLoop loop;
  constexpr uint32_t kNum = 32768;
  Vm a(loop, kNum, false, 64u << 20);
  a.start(0);
  for (uint32_t i = 0; i < kNum; ++i) {
    a.setDesc(0, static_cast<uint16_t>(i), a.bufOff(0) + i, 1, kWrite);
    a.post(0, static_cast<uint16_t>(i));
  }
  clearUsed(a, 0);
  std::atomic<bool> stop{false};
  std::atomic<unsigned long> reposted{0};
  std::thread vcpu([&] { repost(a, 0, stop, reposted); });
  while (!g_vcpuRunning) std::this_thread::yield();
  std::vector<uint8_t> data(1u << 20, 'x');
  uint64_t before = a.conn->queue(0)->visited();
  size_t n = a.device->write(0, data.data(), data.size());
  uint64_t visited = a.conn->queue(0)->visited() - before;
  stop = true;
  vcpu.join();
  CHECK(visited <= ConsoleDevice::kDescriptorBudget, "one write visited %llu descriptors (budget %llu)",
        (unsigned long long)visited, (unsigned long long)ConsoleDevice::kDescriptorBudget);
  CHECK(n > 0 && n < data.size(), "write took %zu bytes", n);
  CHECK(a.alive(), "connection ended: %s", a.events.endReason.c_str());
  std::printf("ok budget write took %zu bytes, visited %llu descriptors, re-posted %lu\n", n,
              (unsigned long long)visited, reposted.load());
}

// Finding 2: queue size 32768, every available entry a chain of 32768 descriptors (all but
// the last zero-length). One kick's work must be bounded by the budget plus one chain.
void bigqueue() {
  PollLoop loop;
  constexpr uint32_t kNum = 32768;
  Vm a(loop, kNum, false, 64u << 20);
  a.start(0);
  for (uint32_t i = 0; i + 1 < kNum; ++i)
    a.setDesc(1, static_cast<uint16_t>(i), a.bufOff(1), 0, kNext, static_cast<uint16_t>(i + 1));
  a.setDesc(1, kNum - 1, a.bufOff(1), 1, 0);
  for (uint32_t i = 0; i < kNum; ++i) a.post(1, 0);
  Virtqueue* q = a.conn->queue(1);
  CHECK(q, "queue 1 not ready");
  loop.probe = [&] { return a.conn ? a.conn->queue(1) ? a.conn->queue(1)->visited() : 0 : 0; };
  a.doKick(1);
  auto t0 = std::chrono::steady_clock::now();
  loop.turn(10);  // one kick
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  uint64_t first = loop.maxPerCallback;
  for (int i = 0; i < 20; ++i) loop.turn(1);  // and some of what it left for later
  loop.probe = nullptr;
  CHECK(first > 0, "the kick did nothing");
  CHECK(loop.maxPerCallback <= ConsoleDevice::kDescriptorBudget + kNum, "one loop callback visited %llu descriptors",
        (unsigned long long)loop.maxPerCallback);
  CHECK(a.alive(), "connection ended: %s", a.events.endReason.c_str());
  std::printf("ok bigqueue first kick visited %llu descriptors in %.1f ms, max per callback %llu\n",
              (unsigned long long)first, ms, (unsigned long long)loop.maxPerCallback);
}

// Finding 3 (+ 7: kick fd flags): a full pipe as call fd, a saturated blocking eventfd as err
// fd, a blocking eventfd as kick fd. Nothing blocks; the kick fd's flags stay the front-end's.
void signalfds() {
  PollLoop loop;
  Vm a(loop, 64);
  int pipefd[2];
  CHECK(::pipe2(pipefd, O_CLOEXEC) == 0, "pipe");
  int fl = ::fcntl(pipefd[1], F_GETFL);
  ::fcntl(pipefd[1], F_SETFL, fl | O_NONBLOCK);
  char junk[4096] = {};
  while (::write(pipefd[1], junk, sizeof junk) > 0) {
  }
  ::fcntl(pipefd[1], F_SETFL, fl);  // full, and blocking again
  int blockingKick = ::eventfd(0, EFD_CLOEXEC);
  a.kick[1] = blockingKick;
  a.start(0, pipefd[1]);
  CHECK(!(::fcntl(blockingKick, F_GETFL) & O_NONBLOCK),
        "the daemon set O_NONBLOCK on the front-end's kick fd description");
  int errfd = ::eventfd(0, EFD_CLOEXEC);
  uint64_t most = 0xfffffffffffffffeull;
  CHECK(::write(errfd, &most, 8) == 8, "saturate");
  a.u64msg(14, 1, {errfd});
  std::memcpy(a.ram + a.bufOff(1), "hello", 5);
  a.setDesc(1, 0, a.bufOff(1), 5, 0);
  a.post(1, 0);
  a.doKick(1);
  loop.settle();  // the device signals the full pipe: must not block
  CHECK(a.events.got == "hello", "host got '%s'", a.events.got.c_str());
  // A broken ring signals the err fd (saturated, blocking): must not block either.
  a.post(1, 5000);
  a.doKick(1);
  loop.settle();
  CHECK(!a.alive(), "a bad avail entry did not end the connection");
  checkOtherVmServes(loop);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  ::close(errfd);
  std::printf("ok signalfds\n");
}

// Finding 4: the front-end shrinks its memfd after SET_MEM_TABLE. Its connection ends; the
// process and the other VM go on. A SIGBUS outside guest memory still reaches the handler
// installed before (as Node's would).
sigjmp_buf g_jump;
volatile sig_atomic_t g_previousHandlerRan = 0;
void previousHandler(int) {
  g_previousHandlerRan = 1;
  siglongjmp(g_jump, 1);
}
void sigbus() {
  struct sigaction sa {};
  sa.sa_handler = previousHandler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
  PollLoop loop;
  Vm a(loop, 64);
  a.start(0);
  std::memcpy(a.ram + a.bufOff(1), "before", 6);
  a.setDesc(1, 0, a.bufOff(1), 6, 0);
  a.post(1, 0);
  a.doKick(1);
  loop.settle();
  CHECK(a.events.got == "before", "host got '%s'", a.events.got.c_str());
  CHECK(::ftruncate(a.memfd, 0) == 0, "ftruncate");
  a.doKick(1);
  loop.settle();
  CHECK(!a.alive(), "the connection whose memory was truncated is still up");
  CHECK(a.events.endReason.find("truncated") != std::string::npos, "end reason: %s", a.events.endReason.c_str());
  checkOtherVmServes(loop);
  // Not guest memory: the earlier handler gets it.
  int other = ::memfd_create("not-guest", MFD_CLOEXEC);
  CHECK(::ftruncate(other, 4096) == 0, "ftruncate");
  volatile uint8_t* p = static_cast<uint8_t*>(::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, other, 0));
  CHECK(::ftruncate(other, 0) == 0, "ftruncate");
  if (sigsetjmp(g_jump, 1) == 0) {
    (void)p[0];
    failf("reading a truncated page did not raise SIGBUS");
  }
  CHECK(g_previousHandlerRan, "the previous SIGBUS handler was not called");
  std::printf("ok sigbus absorbed %lu\n", SigbusGuard::absorbed());
}

size_t openFds() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (d && ::readdir(d)) ++n;
  if (d) ::closedir(d);
  return n;
}

// Finding 5: one message sent a byte at a time with 8 fds per byte.
void fds() {
  PollLoop loop;
  Vm a(loop, 64);
  a.start(0);
  size_t base = openFds();
  int ev = ::eventfd(0, EFD_CLOEXEC);
  std::vector<int> eight(8, ev);
  uint8_t msg[20] = {};
  uint32_t h[3] = {13, 1, 8};  // SET_VRING_CALL, 8-byte payload
  std::memcpy(msg, h, 12);
  size_t sent = 0;
  for (; sent < sizeof msg && a.alive(); ++sent) a.sendRaw(msg + sent, 1, eight);
  loop.settle();
  size_t held = openFds() - base;
  CHECK(!a.alive(), "connection still up after %zu one-byte pieces with 8 fds each", sent);
  CHECK(a.events.endReason.find("more than 8 file descriptors") != std::string::npos, "end reason: %s",
        a.events.endReason.c_str());
  CHECK(sent <= 2, "the connection took %zu pieces (%zu fds) before ending", sent, sent * 8);
  checkOtherVmServes(loop);
  ::close(ev);
  std::printf("ok fds ended after %zu pieces, fds still held %zd\n", sent, static_cast<ssize_t>(held));
}

// Finding 6: malformed control messages (4 bytes) by the hundred.
void logflood() {
  PollLoop loop;
  Vm a(loop, 64, true);
  a.start(kFeatMultiport);
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < 100; ++k) {
    for (uint16_t i = 0; i < 8; ++i) {
      a.setDesc(3, static_cast<uint16_t>((k * 8 + i) % 64), a.bufOff(3), 4, 0);
      a.post(3, static_cast<uint16_t>((k * 8 + i) % 64));
    }
    a.doKick(3);
    loop.settle();
  }
  ::usleep(1100 * 1000);  // a token comes back: the next line reports what was suppressed
  a.setDesc(3, 0, a.bufOff(3), 4, 0);
  a.post(3, 0);
  a.doKick(3);
  loop.settle();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t lines = 0;
  unsigned long suppressed = 0;
  for (auto& l : a.events.logs) {
    if (l.find("shorter than") == std::string::npos) continue;
    ++lines;
    size_t at = l.find(" similar messages suppressed");
    if (at == std::string::npos) continue;
    size_t open = l.rfind('(', at);
    suppressed += std::strtoul(l.c_str() + open + 1, nullptr, 10);
  }
  // A burst of 10, then 1 a second.
  CHECK(lines <= 10 + static_cast<size_t>(seconds) + 2, "%zu log lines for 801 malformed control messages in %.1f s",
        lines, seconds);
  CHECK(lines + suppressed == 801, "%zu lines + %lu counted as suppressed != 801 messages", lines, suppressed);
  CHECK(a.alive(), "connection ended: %s", a.events.endReason.c_str());
  std::printf("ok logflood %zu lines for 801 messages in %.1f s\n", lines, seconds);
}

// Finding 7: REM_MEM_REG names the region by guest address, user address and size.
void memreg() {
  PollLoop loop;
  Vm a(loop, 64);
  a.u64msg(2, kFeatVersion1);
  uint64_t region[5] = {0, 0x100000000ull, 1u << 20, kUser + (1ull << 32), 0};  // padding, gpa, size, uaddr, offset
  int fd = ::memfd_create("hostile-reg", MFD_CLOEXEC);
  CHECK(::ftruncate(fd, 1 << 20) == 0, "ftruncate");
  a.send(37, region, sizeof region, {fd}, 1 | 8);
  CHECK(a.replyU64() == 0, "ADD_MEM_REG failed");
  uint64_t wrong[5] = {0, 0x100000000ull, 1u << 20, kUser + (2ull << 32), 0};
  a.send(38, wrong, sizeof wrong, {}, 1 | 8);
  CHECK(a.replyU64() != 0, "REM_MEM_REG with another user address removed the region");
  CHECK(a.conn->memory().regionCount() == 1, "region count %zu", a.conn->memory().regionCount());
  a.send(38, region, sizeof region, {}, 1 | 8);
  CHECK(a.replyU64() == 0, "REM_MEM_REG of the exact region failed");
  CHECK(a.conn->memory().regionCount() == 0, "region count %zu", a.conn->memory().regionCount());
  ::close(fd);
  std::printf("ok memreg\n");
}

// Finding 7: an indirect descriptor when INDIRECT_DESC was not negotiated.
void indirect(bool negotiated) {
  PollLoop loop;
  Vm a(loop, 64);
  a.start(negotiated ? kFeatIndirect : 0);
  uint64_t table = a.bufOff(1) + 1024;
  std::memcpy(a.ram + a.bufOff(1), "indirect", 8);
  uint64_t gpa = a.bufOff(1);
  uint32_t len = 8;
  uint16_t flags = 0, next = 0;
  std::memcpy(a.ram + table, &gpa, 8);
  std::memcpy(a.ram + table + 8, &len, 4);
  std::memcpy(a.ram + table + 12, &flags, 2);
  std::memcpy(a.ram + table + 14, &next, 2);
  a.setDesc(1, 0, table, 16, kIndirect);
  a.post(1, 0);
  a.doKick(1);
  loop.settle();
  if (negotiated) {
    CHECK(a.events.got == "indirect" && a.alive(), "negotiated indirect chain: host got '%s'", a.events.got.c_str());
  } else {
    CHECK(a.events.got.empty(), "the host got the bytes of an indirect chain that was not negotiated");
    CHECK(!a.alive() && a.events.endReason.find("INDIRECT_DESC") != std::string::npos, "end reason: %s",
          a.events.endReason.c_str());
  }
  std::printf("ok indirect%s\n", negotiated ? "-negotiated" : "");
}

// Finding 7: a region at mmap_offset 1 MiB + 4 KiB of a 4 MiB file maps that region only.
void mapoffset() {
  PollLoop loop;
  Vm a(loop, 64);
  a.u64msg(2, kFeatVersion1);
  int fd = ::memfd_create("hostile-offset", MFD_CLOEXEC);
  CHECK(::ftruncate(fd, 4 << 20) == 0, "ftruncate");
  uint8_t* view = static_cast<uint8_t*>(::mmap(nullptr, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  std::memcpy(view + (1 << 20) + 4096 + 16, "at-16", 5);
  uint64_t offset = (1u << 20) + 4096;
  uint64_t table[5] = {1, 0x200000, 1u << 20, kUser, offset};
  a.send(5, table, sizeof table, {fd});
  const uint8_t* p = a.conn->memory().fromGuest(0x200000 + 16, 5);
  CHECK(p && std::memcmp(p, "at-16", 5) == 0, "guest address 0x200010 does not show the file's byte at offset+16");
  std::ifstream maps("/proc/self/maps");
  std::string line;
  unsigned found = 0;
  while (std::getline(maps, line)) {
    if (line.find("hostile-offset") == std::string::npos) continue;
    unsigned long lo, hi, off;
    char perms[8];
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %lx", &lo, &hi, perms, &off) != 4) continue;
    if (reinterpret_cast<uintptr_t>(view) == lo) continue;  // the guest's own view
    ++found;
    CHECK(off == offset && hi - lo == (1u << 20), "the daemon maps offset 0x%lx length 0x%lx (region: 0x%llx+0x100000)",
          off, hi - lo, (unsigned long long)offset);
  }
  CHECK(found == 1, "%u daemon mappings of the file", found);
  ::munmap(view, 4 << 20);
  ::close(fd);
  std::printf("ok mapoffset\n");
}

}  // namespace

void onAlarm(int) {
  const char msg[] = "FAIL: timed out (the event loop is stuck)\n";
  ssize_t n = ::write(1, msg, sizeof msg - 1);
  (void)n;
  ::_exit(1);
}

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGALRM, onAlarm);
  ::alarm(argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 20);
  g_scenario = argc > 1 ? argv[1] : "";
  if (g_scenario == "pin") pin(false);
  else if (g_scenario == "pin-zero") pin(true);
  else if (g_scenario == "budget") budget();
  else if (g_scenario == "bigqueue") bigqueue();
  else if (g_scenario == "signalfds") signalfds();
  else if (g_scenario == "sigbus") sigbus();
  else if (g_scenario == "fds") fds();
  else if (g_scenario == "logflood") logflood();
  else if (g_scenario == "memreg") memreg();
  else if (g_scenario == "indirect") indirect(false);
  else if (g_scenario == "indirect-negotiated") indirect(true);
  else if (g_scenario == "mapoffset") mapoffset();
  else failf("unknown scenario");
  return 0;
}
