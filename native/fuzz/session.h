// The fuzzing engine shared by the libFuzzer targets: one ConsoleDevice behind a real
// VhostUserConnection on a socketpair, a front-end that speaks QEMU's sequence (or raw bytes),
// a deterministic guest driving split rings in a real memfd, and the host API of the device,
// all decoded from one fuzz input (input.h). Built only against native/core's public headers.
//
// Input layout (gen_seeds.cc writes the same):
//   config: 2 bytes (see Config::decode)
//   ops:    until the input ends (at most kMaxOps), each an op byte then its arguments
// Invariants checked (abort = a finding, reported by libFuzzer with the input):
//   - the sanitizers (ASan, UBSan): no access outside what the core owns
//   - descriptors returned per event (one callback of the loop, or one host call) are bounded
//     by the device's budget (kDescriptorBudget per queue service, plus one chain)
//   - the used index only moves forward, never by more than the chains in flight, and every
//     used element names a chain in flight with a length within its device-writable bytes
//     (checked on queues whose ring the fuzzer did not scribble on)
//   - write() returns at most what was asked, exactly what reached the rx buffers, and 0 for a
//     port the guest has not opened
//   - guestOpen events only for existing ports and only on change; port state survives the
//     front-end's stop/start (QEMU's vhost_dev_stop + vhost_dev_start)
//   - when the connection ends, no watch is left; every fd is closed (counted every 512 runs)
#pragma once

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
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/console_device.h"
#include "core/vhost_user.h"
#include "fuzz/input.h"

#ifndef VHC_FUZZ_VISIT_BUDGET
// Descriptors one queue service or host write may visit (finding 2 of issue 9: without a
// budget counted in descriptors, one kick visits O(num^2)): ConsoleDevice::kDescriptorBudget,
// which the check below allows to overshoot by one chain.
#define VHC_FUZZ_VISIT_BUDGET ConsoleDevice::kDescriptorBudget
#endif
#ifndef VHC_FUZZ_MAX_LOGS_PER_EVENT
// Log lines one event may produce (finding 6: guest-triggerable lines are rate-limited; a
// front-end's socket wake-up handles up to 64 messages, each may log).
#define VHC_FUZZ_MAX_LOGS_PER_EVENT 256u
#endif
#ifndef VHC_FUZZ_PORT_STATE
// Port state must survive a front-end stop/start (finding 8).
#define VHC_FUZZ_PORT_STATE 1
#endif

namespace vhcfuzz {

using namespace vhc;

// As in Node: writing to a pipe or socket whose reader is gone fails with EPIPE, no signal.
inline const bool kSigpipeIgnored = (signal(SIGPIPE, SIG_IGN), true);

[[noreturn]] inline void violation(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void violation(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "VIOLATION: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

// VHC_FUZZ_TRACE=1: print what a run does (ops, log lines, port events) to stderr.
inline bool tracing() {
  static const bool on = std::getenv("VHC_FUZZ_TRACE") != nullptr;
  return on;
}

inline int countOpenFds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

// Aborts if one run ends with more fds open than it began with, checked every `every` runs
// (1 for the session targets, so the input that leaked is the one reported). Counted inside
// the run: libFuzzer itself opens pipes between runs (its symbolizer).
class FdCheck {
 public:
  explicit FdCheck(unsigned every) {
    static unsigned long runs = 0;
    if (++runs > 1 && runs % every == 0) before_ = countOpenFds();
  }
  ~FdCheck() {
    if (before_ < 0) return;
    int now = countOpenFds();
    if (now <= before_) return;
    if (DIR* d = opendir("/proc/self/fd")) {  // name what is open
      while (dirent* e = readdir(d)) {
        char path[300], target[256] = {};
        std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        if (readlink(path, target, sizeof target - 1) > 0) std::fprintf(stderr, "fd %s -> %s\n", e->d_name, target);
      }
      closedir(d);
    }
    violation("fd leak: %d fds open after the run, %d before", now, before_);
  }

 private:
  int before_ = -1;
};

constexpr uint32_t kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kResetOwner = 4, kSetMemTable = 5,
                   kSetVringNum = 8, kSetVringAddr = 9, kSetVringBase = 10, kGetVringBase = 11, kSetVringKick = 12,
                   kSetVringCall = 13, kSetVringErr = 14, kGetProtocolFeatures = 15, kSetProtocolFeatures = 16,
                   kGetQueueNum = 17, kSetVringEnable = 18, kSetBackendReqFd = 21, kGetConfig = 24, kSetConfig = 25,
                   kResetDevice = 34, kGetMaxMemSlots = 36, kAddMemReg = 37, kRemMemReg = 38, kSetStatus = 39,
                   kGetStatus = 40;
constexpr uint32_t kFlagV1 = 1, kFlagNeedReply = 8;
constexpr uint64_t kProtoMq = 1ull << 0, kProtoReplyAck = 1ull << 3, kProtoBackendReq = 1ull << 5,
                   kProtoConfig = 1ull << 9, kProtoResetDevice = 1ull << 13, kProtoMemSlots = 1ull << 15,
                   kProtoStatus = 1ull << 16;

// Guest memory layout: ring i at i * kRingStride (room for 1024 entries, Linux layout), then
// the buffer area (bump-allocated, wrapping).
constexpr uint64_t kGuestBase = 0x40000000, kUserBase = 0x7f1200000000;
constexpr uint64_t kMemSize = 1 << 20, kRingStride = 32 << 10, kMaxQueues = 10;
constexpr uint64_t kBufBase = kMaxQueues * kRingStride, kBufArea = kMemSize - kBufBase;
constexpr unsigned kMaxOps = 512;

enum Op : uint8_t {
  kOpMessage,
  kOpRun,
  kOpPostRx,
  kOpPostTx,
  kOpControl,
  kOpKick,
  kOpReclaim,
  kOpScribble,
  kOpHost,
  kOpStopStart,
  kOpTruncate,
  kOpDisconnect,
  kOpChain,
  kOpConcurrent,
  kOpCount
};

// Kinds of fds a front-end can send (finding 3: blocking call/err fds; 4: truncation; 5: fd counts).
enum FdKind : uint8_t {
  kFdGuestMem,
  kFdSealedMemfd,
  kFdUnsealedMemfd,
  kFdEventfd,
  kFdEventfdBlockingFull,
  kFdEventfdBlocking,
  kFdPipeRead,
  kFdPipeWriteFull,
  kFdSocket,
  kFdDevNull,
  kFdQueueEventfd,
  kFdKindCount
};

struct Config {
  unsigned preamble = 0;  // 0 none, 1 QEMU 10.2, 2 QEMU 10.0, 3 test front-end without REPLY_ACK
  uint32_t queueSize = 64;
  bool multiport = true, eventIdx = true, indirect = false, sealGuest = false;
  uint32_t maxPorts = 2;
  bool colsFirst = false, hostOpen0 = true, hostOpenOthers = true;
  void decode(Input& in, bool forcePreamble) {
    uint8_t a = in.u8(), b = in.u8();
    preamble = a & 3;
    if (forcePreamble && preamble == 0) preamble = 1;
    static const uint32_t sizes[4] = {8, 64, 256, 1024};
    queueSize = sizes[(a >> 2) & 3];
    multiport = a & 0x10;
    eventIdx = a & 0x20;
    indirect = a & 0x40;
    sealGuest = a & 0x80;
    maxPorts = 1 + (b & 3);
    colsFirst = b & 4;
    hostOpen0 = b & 8;
    hostOpenOthers = b & 16;
  }
  unsigned queues() const { return multiport ? 2 * (maxPorts + 1) : 2; }
};

struct Loop : EventLoop {
  std::map<int, std::function<void()>> watches;
  std::vector<std::function<void()>> tasks;
  void watch(int fd, std::function<void()> f) override {
    if (watches.count(fd)) violation("fd %d watched twice", fd);
    watches[fd] = std::move(f);
  }
  void unwatch(int fd) override { watches.erase(fd); }
  void defer(std::function<void()> t) override { tasks.push_back(std::move(t)); }
};

// One in-flight chain as the guest posted it.
struct Inflight {
  std::vector<uint16_t> descs;
  uint32_t writable = 0;  // device-writable bytes
  uint32_t visits = 0;    // descriptors the device had to visit (indirect table entries included)
};

// The driver side of one split ring (Linux layout) in the harness's view of guest memory.
struct GuestQueue {
  unsigned index = 0;
  uint32_t num = 0;
  uint64_t off = 0, descOff = 0, availOff = 0, usedOff = 0;
  uint16_t availIdx = 0, usedSeen = 0;
  std::vector<uint16_t> freeList;
  std::map<uint16_t, Inflight> inflight;
  bool tainted = false;  // the fuzzer wrote the ring raw: its consistency is not checked
  int kick = -1, call = -1, err = -1;

  void init(unsigned i, uint32_t n) {
    index = i;
    num = n;
    off = i * kRingStride;
    descOff = off;
    availOff = descOff + 16ull * n;
    usedOff = (availOff + 6 + 2ull * n + 63) & ~63ull;
    freeList.clear();
    for (uint32_t k = n; k > 0; --k) freeList.push_back(static_cast<uint16_t>(k - 1));
    inflight.clear();
    availIdx = usedSeen = 0;
    tainted = false;
  }
  uint64_t end() const { return usedOff + 6 + 8ull * num; }
};

struct Session;

struct Recorder : ConsoleEvents {
  Session* s = nullptr;
  std::map<uint32_t, bool> open;  // guest-open state as the device reported it
  unsigned logs = 0, dataCalls = 0;
  bool connectedFlag = false;
  void log(LogLevel, const std::string& m) override;
  void connected() override {}
  void disconnected(const std::string&) override {}
  void deviceError(const std::string&) override {}
  void driverReady() override {}
  void portReady(uint32_t) override {}
  void guestOpen(uint32_t nr, bool isOpen) override;
  void data(uint32_t nr, const uint8_t* p, size_t n) override;
  void writable(uint32_t) override;
};

struct Session {
  Input& in;
  Config cfg;
  bool allowRaw;
  Loop loop;
  Recorder ev;
  std::unique_ptr<ConsoleDevice> dev;
  std::unique_ptr<VhostUserConnection> conn;
  int sock = -1;    // our end of the connection
  int connFd = -1;  // the daemon's end
  bool ended = false;
  std::string endReason;
  int mem = -1;  // guest RAM (memfd)
  uint8_t* view = nullptr;
  uint64_t memLimit = kMemSize;  // the harness never touches beyond this (after a truncation)
  uint64_t bufCursor = 0;
  GuestQueue q[kMaxQueues];
  std::vector<int> own;  // harness-side fds (other ends, truncatable memfds), closed at the end
  std::vector<int> truncatable;
  std::vector<uint8_t> replyBuf;
  std::map<uint32_t, uint32_t> bases;  // GET_VRING_BASE replies
  unsigned concurrent = 0;             // guest actions left to run from inside device callbacks
  bool inCallback = false;
  uint64_t featuresAcked = 0;
  bool replyAck = false;

  Session(Input& input, bool raw) : in(input), allowRaw(raw) {}

  ~Session() {
    inCallback = true;  // no guest actions from the teardown's callbacks
    conn.reset();
    loop.tasks.clear();
    if (!loop.watches.empty()) violation("%zu watches outlived the connection", loop.watches.size());
    dev.reset();
    if (sock >= 0) ::close(sock);
    for (auto& g : q) {
      if (g.kick >= 0) ::close(g.kick);
      if (g.call >= 0) ::close(g.call);
      if (g.err >= 0) ::close(g.err);
    }
    for (int fd : own) ::close(fd);
    // The guest RAM is reused by the next run: grown back if this run shrank it.
    if (memLimit < kMemSize && ftruncate(mem, kMemSize) != 0) violation("ftruncate");
  }

  // Guest RAM: one sealed and one unsealed memfd for the process (created at start-up, before
  // any fd is counted), zeroed per run: a fresh memfd per run costs a third of it in page faults.
  struct RamPool {
    int fds[2];
    uint8_t* maps[2];
    RamPool() {
      for (int k = 0; k < 2; ++k) {
        fds[k] = memfd_create(k ? "fuzz-guest-sealed" : "fuzz-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fds[k] < 0 || ftruncate(fds[k], kMemSize) != 0) violation("memfd");
        if (k) fcntl(fds[k], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
        maps[k] = static_cast<uint8_t*>(mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, fds[k], 0));
        if (maps[k] == MAP_FAILED) violation("mmap");
      }
    }
  };
  static inline RamPool ramPool;
  static void guestRam(bool sealed, int& fd, uint8_t*& map) {
    int k = sealed ? 1 : 0;
    std::memset(ramPool.maps[k], 0, kMemSize);
    fd = ramPool.fds[k];
    map = ramPool.maps[k];
  }

  // ------------------------------------------------------------ set-up
  void setUp() {
    cfg.decode(in, !allowRaw);
    guestRam(cfg.sealGuest, mem, view);
    if (!cfg.sealGuest) truncatable.push_back(mem);
    ev.s = this;
    ConsoleConfig cc;
    cc.maxPorts = cfg.maxPorts;
    cc.multiport = cfg.multiport;
    cc.resizeColsFirst = cfg.colsFirst;
    dev = std::make_unique<ConsoleDevice>(cc, ev);
    std::string err;
    dev->addPort(0, nullptr, true, err);
    if (cfg.hostOpen0) dev->setHostOpen(0, true, err);
    if (cfg.multiport)
      for (uint32_t nr = 1; nr < cfg.maxPorts; ++nr) {
        std::string name = "org.fuzz." + std::to_string(nr);
        dev->addPort(nr, &name, false, err);
        if (cfg.hostOpenOthers) dev->setHostOpen(nr, true, err);
      }
    for (unsigned i = 0; i < cfg.queues(); ++i) q[i].init(i, cfg.queueSize);
    connect();
  }

  void connect() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) violation("socketpair");
    sock = sv[0];
    connFd = sv[1];
    ended = false;
    replyBuf.clear();
    conn = std::make_unique<VhostUserConnection>(UniqueFd(sv[1]), *dev, loop, ev, [this](const std::string& why, bool) {
      ended = true;
      endReason = why;
      if (tracing()) std::fprintf(stderr, "  connection ended: %s\n", why.c_str());
    });
    if (cfg.preamble) preamble();
  }

  // ------------------------------------------------------------ the front-end's side
  void sendRaw(const std::vector<uint8_t>& bytes, const std::vector<int>& fds) {
    iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 32)];
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
    if (sock >= 0) (void)sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  static std::vector<uint8_t> encode(uint32_t req, uint32_t flags, const void* payload, uint32_t size) {
    std::vector<uint8_t> m(12 + size);
    uint32_t h[3] = {req, flags, size};
    std::memcpy(m.data(), h, 12);
    if (size) std::memcpy(m.data() + 12, payload, size);
    return m;
  }

  // One whole message, then the daemon reads it (as its loop would) and we read replies.
  void request(uint32_t req, const void* payload, uint32_t size, std::vector<int> fds = {}, bool needReply = false) {
    if (ended || !conn) return;
    sendRaw(encode(req, kFlagV1 | (needReply ? kFlagNeedReply : 0), payload, size), fds);
    // The socket is readable now: what the loop would do, without polling every fd.
    beginEvent();
    conn->onReadable();
    endEvent("vhost-user message", cfg.queues());
    runTasks();
  }
  void requestU64(uint32_t req, uint64_t v, std::vector<int> fds = {}, bool needReply = false) {
    request(req, &v, 8, std::move(fds), needReply);
  }
  void state(uint32_t req, uint32_t index, uint32_t num, bool needReply = false) {
    uint32_t st[2] = {index, num};
    request(req, st, 8, {}, needReply);
  }

  // Replies: read what is there (bounded), remember GET_VRING_BASE answers.
  void readReplies() {
    if (sock < 0) return;
    uint8_t buf[4096];
    for (int i = 0; i < 16; ++i) {
      ssize_t n = recv(sock, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      replyBuf.insert(replyBuf.end(), buf, buf + n);
    }
    size_t pos = 0;
    while (replyBuf.size() - pos >= 12) {
      uint32_t h[3];
      std::memcpy(h, replyBuf.data() + pos, 12);
      if (h[2] > 4096) {
        replyBuf.clear();
        return;
      }
      if (replyBuf.size() - pos < 12 + h[2]) break;
      if (h[0] == kGetVringBase && h[2] == 8) {
        uint32_t st[2];
        std::memcpy(st, replyBuf.data() + pos + 12, 8);
        bases[st[0]] = st[1];
      }
      pos += 12 + h[2];
    }
    replyBuf.erase(replyBuf.begin(), replyBuf.begin() + static_cast<long>(pos));
  }

  int newEventfd() {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) violation("eventfd");
    return fd;
  }

  void regionPayload(uint64_t* r) {
    r[0] = kGuestBase;
    r[1] = kMemSize;
    r[2] = kUserBase;
    r[3] = 0;
  }

  // QEMU's connect (vhost_user_backend_init + vhost_dev_init) and start (vhost_dev_start), as
  // recorded in /work/shared/qemu-rig/qemu-sequence.md; variant 3 is the test front-end without
  // REPLY_ACK (SET_MEM_TABLE, GET_FEATURES as barrier, back-end channel).
  void preamble() {
    bool v102 = cfg.preamble == 1, noAck = cfg.preamble == 3;
    replyAck = !noAck;
    uint64_t proto = kProtoMq | kProtoConfig | kProtoResetDevice | kProtoStatus |
                     (noAck ? kProtoBackendReq : kProtoReplyAck | kProtoMemSlots);
    requestU64(kGetFeatures, 0);
    request(kGetProtocolFeatures, nullptr, 0);
    requestU64(kSetProtocolFeatures, proto);
    request(kGetQueueNum, nullptr, 0);
    if (!noAck) request(kGetMaxMemSlots, nullptr, 0);
    if (noAck) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        own.push_back(sv[0]);
        request(kSetBackendReqFd, nullptr, 0, {sv[1]});
        ::close(sv[1]);
      }
    }
    request(kSetOwner, nullptr, 0);
    request(kGetFeatures, nullptr, 0);
    bool fdReply = v102;
    for (unsigned i = 0; i < cfg.queues(); ++i) {
      int masked = newEventfd();
      requestU64(kSetVringCall, i, {masked}, fdReply);
      ::close(masked);
      if (q[i].err < 0) q[i].err = newEventfd();
      requestU64(kSetVringErr, i, {q[i].err}, fdReply);
    }
    uint32_t cfgReq[3 + 3] = {0, 12, 0};
    request(kGetConfig, cfgReq, 24);
    start(true);
    readReplies();
  }

  uint64_t guestFeatures() const {
    uint64_t f = (1ull << 32) | (1ull << 30) | 1 | (cfg.multiport ? 2 : 0);
    if (cfg.eventIdx) f |= 1ull << 29;
    if (cfg.indirect) f |= 1ull << 28;
    return f;
  }

  // `setStatus`: FEATURES_OK is not set (first start, or after a SET_STATUS 0); QEMU's
  // vhost_user_add_status sends only missing bits, so a plain cont sends GET_STATUS alone.
  void start(bool first, bool setStatus = true) {
    bool v102 = cfg.preamble == 1, noAck = cfg.preamble == 3;
    featuresAcked = guestFeatures();
    requestU64(kSetFeatures, featuresAcked);
    request(kGetStatus, nullptr, 0);
    if (setStatus) requestU64(kSetStatus, 8);
    if (noAck) {
      uint64_t table[1 + 4] = {1, 0};
      regionPayload(table + 1);
      request(kSetMemTable, table, 40, {mem});
    } else if (first) {
      uint64_t reg[5] = {0};
      regionPayload(reg + 1);
      request(kAddMemReg, reg, 40, {mem}, true);
    }
    bool fdReply = v102;
    for (unsigned i = 0; i < cfg.queues(); ++i) {
      GuestQueue& g = q[i];
      state(kSetVringNum, i, g.num);
      state(kSetVringBase, i, first ? 0 : bases.count(i) ? bases[i] : g.availIdx);
      uint64_t addr[5];
      uint32_t head[2] = {i, 0};
      std::memcpy(addr, head, 8);
      addr[1] = kUserBase + g.descOff;
      addr[2] = kUserBase + g.usedOff;
      addr[3] = kUserBase + g.availOff;
      addr[4] = kGuestBase + g.usedOff;
      request(kSetVringAddr, addr, 40);
      if (g.kick < 0) g.kick = newEventfd();
      uint64_t one = 1;
      (void)write(g.kick, &one, 8);
      requestU64(kSetVringKick, i, {g.kick}, fdReply);
      if (g.call < 0) g.call = newEventfd();
      requestU64(kSetVringCall, i, {g.call}, fdReply);
    }
    for (unsigned i = 0; i < cfg.queues(); ++i) {
      state(kSetVringEnable, i, 1, !noAck);
      if (noAck) request(kGetFeatures, nullptr, 0);
    }
    for (unsigned i = 0; i < cfg.queues(); ++i) requestU64(kSetVringCall, i, {q[i].call}, fdReply);
  }

  // QMP stop + cont as docs/testing.md records it from QEMU 10.2: disable each ring,
  // GET_VRING_BASE each, then vhost_dev_start again; with `statusZero` also a SET_STATUS 0
  // between them (a front-end that resets the status, as the issue expected QEMU to).
  void stopStart(bool statusZero) {
    bool noAck = cfg.preamble == 3;
    for (unsigned i = 0; i < cfg.queues(); ++i) {
      state(kSetVringEnable, i, 0, !noAck);
      if (noAck) request(kGetFeatures, nullptr, 0);
    }
    bases.clear();
    for (unsigned i = 0; i < cfg.queues(); ++i) {
      state(kGetVringBase, i, 0);
      readReplies();
    }
    if (statusZero) requestU64(kSetStatus, 0);
    start(false, statusZero);
  }

  // ------------------------------------------------------------ the event loop
  // One event = one watch callback (or one deferred task). After each: the connection may have
  // ended (then it is freed, as BackendServer does), and the guest looks at its used rings.
  void runLoop(unsigned rounds) {
    for (unsigned r = 0; r < rounds; ++r) {
      bool any = runTasks();
      std::vector<pollfd> fds;
      for (auto& [fd, f] : loop.watches) fds.push_back({fd, POLLIN, 0});
      if (fds.empty() || poll(fds.data(), fds.size(), 0) <= 0) {
        readReplies();
        if (!any) break;
        continue;
      }
      for (const pollfd& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto it = loop.watches.find(p.fd);
        if (it == loop.watches.end()) continue;
        any = true;
        beginEvent();
        auto cb = it->second;  // the callback may unwatch itself
        cb();
        bool socket = p.fd == connFd;
        endEvent(socket ? "socket wake-up" : "kick", socket ? cfg.queues() : 1);
        runTasks();
      }
      readReplies();
      if (!any) break;
    }
  }

  bool runTasks() {
    bool any = !loop.tasks.empty();
    while (!loop.tasks.empty()) {
      auto tasks = std::move(loop.tasks);
      loop.tasks.clear();
      for (auto& t : tasks) t();
    }
    if (ended && conn) {
      conn.reset();
      if (!loop.watches.empty())
        violation("%zu watches outlived the connection (%s)", loop.watches.size(), endReason.c_str());
      for (auto& g : q) {
        g.tainted = true;  // a new connection starts from what memory holds
        g.inflight.clear();
      }
    }
    return any;
  }

  unsigned eventLogs = 0;
  uint64_t eventVisits = 0;
  void beginEvent() {
    ev.logs = 0;
    eventVisits = 0;
  }
  // `services`: how many queue services the event may run (a kick or a host call: one; a
  // socket wake-up: every queue, e.g. a memory table that starts them all).
  void endEvent(const char* what, unsigned services = 1) {
    reclaimAll();
    uint64_t bound = services * (VHC_FUZZ_VISIT_BUDGET + 2ull * (cfg.queueSize + 1));
    if (eventVisits > bound)
      violation("%s: %llu descriptors returned in one event (bound %llu)", what, (unsigned long long)eventVisits,
                (unsigned long long)bound);
    if (ev.logs > VHC_FUZZ_MAX_LOGS_PER_EVENT)
      violation("%s: %u log lines in one event (bound %u)", what, ev.logs, VHC_FUZZ_MAX_LOGS_PER_EVENT);
  }

  // ------------------------------------------------------------ the guest
  bool ringInMemory(const GuestQueue& g) const { return g.num && g.end() <= memLimit; }
  template <typename T>
  T load(uint64_t off) const {
    T v;
    __atomic_load(reinterpret_cast<T*>(view + off), &v, __ATOMIC_ACQUIRE);
    return v;
  }
  template <typename T>
  void store(uint64_t off, T v) {
    __atomic_store(reinterpret_cast<T*>(view + off), &v, __ATOMIC_RELEASE);
  }

  uint64_t allocBuf(uint32_t len) {
    if (len > kBufArea) len = kBufArea;
    if (bufCursor + len > kBufArea) bufCursor = 0;
    uint64_t off = kBufBase + bufCursor;
    bufCursor += (len + 15) & ~15u;
    return off;
  }

  struct Seg {
    uint32_t len;
    bool writable;
  };

  // Posts one chain; false if the ring has no room. Contents of readable segments come from
  // `fill` (repeated), or stay as they are.
  bool post(GuestQueue& g, const std::vector<Seg>& segs, bool indirect, const std::vector<uint8_t>& fill) {
    if (!ringInMemory(g) || segs.empty()) return false;
    size_t need = indirect ? 1 : segs.size();
    if (g.freeList.size() < need) return false;
    Inflight f;
    std::vector<uint64_t> addrs;
    for (const Seg& s : segs) {
      uint64_t off = allocBuf(s.len);
      if (off + s.len > memLimit) return false;
      addrs.push_back(off);
    }
    size_t fi = 0;
    for (size_t k = 0; k < segs.size(); ++k) {
      if (segs[k].writable) {
        f.writable += segs[k].len;
      } else if (!fill.empty()) {
        for (uint32_t b = 0; b < segs[k].len; ++b) view[addrs[k] + b] = fill[fi++ % fill.size()];
      }
    }
    auto writeDesc = [&](uint64_t at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
      std::memcpy(view + at, &addr, 8);
      std::memcpy(view + at + 8, &len, 4);
      std::memcpy(view + at + 12, &flags, 2);
      std::memcpy(view + at + 14, &next, 2);
    };
    uint16_t head;
    if (indirect) {
      uint64_t table = allocBuf(static_cast<uint32_t>(16 * segs.size()));
      if (table + 16 * segs.size() > memLimit) return false;
      for (size_t k = 0; k < segs.size(); ++k)
        writeDesc(table + 16 * k, kGuestBase + addrs[k], segs[k].len,
                  static_cast<uint16_t>((k + 1 < segs.size() ? 1 : 0) | (segs[k].writable ? 2 : 0)),
                  static_cast<uint16_t>(k + 1));
      head = g.freeList.back();
      g.freeList.pop_back();
      writeDesc(g.descOff + 16ull * head, kGuestBase + table, static_cast<uint32_t>(16 * segs.size()), 4, 0);
      f.descs.push_back(head);
      f.visits = static_cast<uint32_t>(1 + segs.size());
    } else {
      std::vector<uint16_t> ids;
      for (size_t k = 0; k < segs.size(); ++k) {
        ids.push_back(g.freeList.back());
        g.freeList.pop_back();
      }
      for (size_t k = 0; k < segs.size(); ++k)
        writeDesc(g.descOff + 16ull * ids[k], kGuestBase + addrs[k], segs[k].len,
                  static_cast<uint16_t>((k + 1 < segs.size() ? 1 : 0) | (segs[k].writable ? 2 : 0)),
                  k + 1 < segs.size() ? ids[k + 1] : 0);
      head = ids[0];
      f.descs = ids;
      f.visits = static_cast<uint32_t>(segs.size());
    }
    store<uint16_t>(g.availOff + 4 + 2ull * (g.availIdx % g.num), head);
    ++g.availIdx;
    store<uint16_t>(g.availOff + 2, g.availIdx);
    g.inflight[head] = std::move(f);
    return true;
  }

  void kick(GuestQueue& g) {
    if (g.kick < 0) return;
    uint64_t one = 1;
    (void)write(g.kick, &one, 8);
  }

  // Reads the used ring: the device's answers to what we posted. Returns bytes used.
  uint64_t reclaim(GuestQueue& g) {
    if (!ringInMemory(g)) return 0;
    uint16_t used = load<uint16_t>(g.usedOff + 2);
    uint16_t delta = static_cast<uint16_t>(used - g.usedSeen);
    if (delta == 0) return 0;
    if (!g.tainted && delta > g.inflight.size())
      violation("queue %u: used index moved from %u to %u with %zu chains in flight", g.index, g.usedSeen, used,
                g.inflight.size());
    if (g.tainted && delta > g.num) {
      g.usedSeen = used;
      return 0;
    }
    uint64_t bytes = 0;
    for (uint16_t k = 0; k < delta; ++k) {
      uint16_t slot = static_cast<uint16_t>((g.usedSeen + k) % g.num);
      uint32_t id = load<uint32_t>(g.usedOff + 4 + 8ull * slot), len = load<uint32_t>(g.usedOff + 8 + 8ull * slot);
      auto it = g.inflight.find(static_cast<uint16_t>(id));
      if (id > 0xffff || it == g.inflight.end()) {
        if (!g.tainted) violation("queue %u: used element names chain %u, which is not in flight", g.index, id);
        continue;
      }
      if (!g.tainted && len > it->second.writable)
        violation("queue %u: chain %u used with %u bytes but has %u device-writable", g.index, id, len,
                  it->second.writable);
      eventVisits += it->second.visits;
      bytes += len;
      for (uint16_t d : it->second.descs) g.freeList.push_back(d);
      g.inflight.erase(it);
    }
    g.usedSeen = used;
    return bytes;
  }

  void reclaimAll() {
    for (unsigned i = 0; i < cfg.queues(); ++i) reclaim(q[i]);
  }

  GuestQueue& pickQueue() { return q[in.u8() % cfg.queues()]; }

  std::vector<Seg> decodeSegs(uint32_t maxSegs) {
    uint32_t n = in.range(1, maxSegs);
    std::vector<Seg> segs;
    for (uint32_t k = 0; k < n; ++k) {
      uint8_t kind = in.u8();
      uint32_t len = (kind & 0x80) ? in.range(0, 8192) : (kind & 0x7c);  // small (even 0) or large
      segs.push_back({len, static_cast<bool>(kind & 1)});
    }
    return segs;
  }

  void guestControl(uint32_t id, uint16_t event, uint16_t value) {
    if (!cfg.multiport) return;
    uint8_t msg[8];
    std::memcpy(msg, &id, 4);
    std::memcpy(msg + 4, &event, 2);
    std::memcpy(msg + 6, &value, 2);
    post(q[3], {{8, false}}, false, std::vector<uint8_t>(msg, msg + 8));
    kick(q[3]);
  }

  // A guest action (also run from inside device callbacks: the guest's vCPUs run meanwhile).
  void guestAction(uint8_t op) {
    switch (op) {
      case kOpPostRx: {
        GuestQueue& g = pickQueue();
        uint32_t count = in.range(1, 64), len = in.range(0, 4096);
        bool ind = in.flag();
        for (uint32_t k = 0; k < count; ++k)
          if (!post(g, {{len, true}}, ind, {})) break;
        break;
      }
      case kOpPostTx: {
        GuestQueue& g = pickQueue();
        std::vector<uint8_t> fill = in.bytes(in.range(1, 32));
        auto segs = decodeSegs(4);
        for (auto& s : segs) s.writable = false;
        post(g, segs, in.flag(), fill);
        break;
      }
      case kOpControl: {
        uint8_t idb = in.u8();
        uint32_t id = idb == 0xff ? 0xffffffffu : idb == 0xfe ? in.u32() : idb % 8;
        uint16_t event = in.u8() % 9, value = in.u8() % 3;
        guestControl(id, event, value);
        break;
      }
      case kOpChain: {
        GuestQueue& g = pickQueue();
        auto segs = decodeSegs(g.num + 2);
        post(g, segs, in.flag(), {0x41});
        break;
      }
      case kOpScribble: {
        uint64_t off = in.u32() % kMemSize;
        std::vector<uint8_t> b = in.bytes(in.range(1, 16));
        if (b.empty() || off + b.size() > memLimit) break;
        std::memcpy(view + off, b.data(), b.size());
        for (auto& g : q)
          if (g.num && off < g.end() && off + b.size() > g.off) g.tainted = true;
        break;
      }
      case kOpKick: kick(pickQueue()); break;
      default: break;
    }
  }

  void onCallback() {
    if (inCallback || concurrent == 0 || in.empty()) return;
    --concurrent;
    inCallback = true;
    guestAction(static_cast<uint8_t>(kOpPostRx + in.u8() % 6));
    inCallback = false;
  }

  // ------------------------------------------------------------ fds a front-end may send
  int makeFd(uint8_t kind) {
    int fds[2];
    switch (kind % kFdKindCount) {
      case kFdGuestMem: return dup(mem);
      case kFdSealedMemfd:
      case kFdUnsealedMemfd: {
        int fd = memfd_create("fuzz-extra", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) return -1;
        if (ftruncate(fd, 64 << 10) != 0) violation("ftruncate");
        if (kind % kFdKindCount == kFdSealedMemfd) {
          fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        } else {
          int mine = dup(fd);
          own.push_back(mine);
          truncatable.push_back(mine);
        }
        return fd;
      }
      case kFdEventfd: return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      case kFdEventfdBlockingFull: {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        uint64_t v = 0xfffffffffffffffeull;
        (void)write(fd, &v, 8);
        fcntl(fd, F_SETFL, 0);  // blocking, and the next signal would block
        return fd;
      }
      case kFdEventfdBlocking: return eventfd(0, EFD_CLOEXEC);
      case kFdPipeRead:
        if (pipe2(fds, O_CLOEXEC) != 0) return -1;
        own.push_back(fds[1]);
        return fds[0];
      case kFdPipeWriteFull: {
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
        fcntl(fds[1], F_SETPIPE_SZ, 4096);
        char junk[4096] = {};
        while (write(fds[1], junk, sizeof junk) > 0) {
        }
        fcntl(fds[1], F_SETFL, 0);  // blocking and full
        own.push_back(fds[0]);
        return fds[1];
      }
      case kFdSocket:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -1;
        own.push_back(fds[1]);
        return fds[0];
      case kFdQueueEventfd: {  // the guest's notifier of a queue: kicks through it reach the device
        GuestQueue& g = pickQueue();
        if (g.kick < 0) g.kick = newEventfd();
        return dup(g.kick);
      }
      default: return open("/dev/null", O_RDWR | O_CLOEXEC);
    }
  }

  // A raw message: header fields and payload straight from the input, sent in pieces with fds
  // attached to one piece (header or payload bytes), like a front-end that splits its writes.
  void rawMessage() {
    uint32_t req = in.u8();
    if (req == 0xff) req = in.u32();
    uint32_t flags = in.u8();
    if (flags == 0xff) flags = in.u32();
    uint32_t len = in.range(0, 320);
    bool lie = in.u8() == 0xa5;
    uint32_t size = lie ? in.u32() : len;
    std::vector<uint8_t> payload = in.bytes(len);
    payload.resize(len);
    std::vector<uint8_t> msg(12 + len);
    uint32_t h[3] = {req, flags, size};
    std::memcpy(msg.data(), h, 12);
    if (len) std::memcpy(msg.data() + 12, payload.data(), len);
    uint8_t nfds = in.u8() % 12;
    std::vector<int> fds;
    for (uint8_t k = 0; k < nfds; ++k) {
      int fd = makeFd(in.u8());
      if (fd >= 0) fds.push_back(fd);
    }
    uint8_t split = in.u8();
    uint8_t attach = in.u8();
    std::vector<size_t> cuts;  // piece boundaries
    switch (split % 4) {
      case 0: break;
      case 1: cuts.push_back(std::min<size_t>(12, msg.size())); break;
      case 2:
        for (size_t k = 1; k < msg.size() && k < 40; ++k) cuts.push_back(k);
        break;
      default: cuts.push_back(1 + in.u16() % msg.size()); break;
    }
    cuts.push_back(msg.size());
    size_t from = 0;
    for (size_t k = 0; k < cuts.size(); ++k) {
      size_t to = std::max(from, std::min(cuts[k], msg.size()));
      if (k + 1 == cuts.size()) to = msg.size();
      std::vector<uint8_t> piece(msg.begin() + static_cast<long>(from), msg.begin() + static_cast<long>(to));
      if (piece.empty() && k + 1 < cuts.size()) continue;
      bool withFds = (attach % cuts.size()) == k;
      if (!piece.empty()) sendRaw(piece, withFds ? fds : std::vector<int>{});
      if (split & 4) runLoop(1);  // the daemon reads between pieces
      from = to;
    }
    for (int fd : fds) ::close(fd);
    for (auto& g : q) g.tainted = true;  // the front-end said anything: rings are not ours alone
    runLoop(2);
  }

  // ------------------------------------------------------------ the host
  void hostCall() {
    std::string err;
    uint8_t what = in.u8() % 7;
    uint32_t nr = in.u8() % (cfg.maxPorts + 1);
    beginEvent();
    switch (what) {
      case 0: {
        std::vector<uint8_t> data = in.bytes(in.range(0, 2048));
        if (in.flag()) data.resize(in.range(0, 70000), 0x5a);  // more than the ring can take
        bool wasOpen = ev.open.count(nr) && ev.open[nr];
        unsigned rxq = nr == 0 ? 0 : 2 * nr + 2;
        // (after a truncation the device may write into memory it has already lost)
        bool check = rxq < cfg.queues() && !q[rxq].tainted && memLimit == kMemSize;
        if (check) reclaim(q[rxq]);
        size_t n = dev->write(nr, data.data(), data.size());
        if (tracing())
          std::fprintf(stderr, "  write(%u, %zu) = %zu; rx queue %u used %u -> %u, %zu in flight\n", nr, data.size(), n,
                       rxq, q[rxq].usedSeen, ringInMemory(q[rxq]) ? load<uint16_t>(q[rxq].usedOff + 2) : 0,
                       q[rxq].inflight.size());
        if (n > data.size()) violation("write returned %zu for %zu bytes", n, data.size());
        if (n && !wasOpen) violation("write to port %u put %zu bytes while the guest has it closed", nr, n);
        // A write that broke its queue (a chain without writable bytes) ends the connection:
        // what it had copied into earlier chains is never published, and write() returns 0 for
        // it (it returned the copied count until the fuzzer found it: repro/README.md). Only a
        // write that left the connection alive must account for every byte.
        bool failing = !loop.tasks.empty();
        if (tracing() && failing) std::fprintf(stderr, "  the write ended the connection\n");
        if (check && !failing && !q[rxq].tainted) {
          uint64_t got = reclaim(q[rxq]);
          if (got != n)
            violation("write to port %u returned %zu but %llu bytes reached the guest", nr, n, (unsigned long long)got);
        }
        break;
      }
      case 1: dev->setHostOpen(nr, in.flag(), err); break;
      case 2: {
        bool named = in.flag(), console = in.flag();
        std::string name = "org.fuzz." + std::to_string(in.u8() % 8);
        dev->addPort(nr, named ? &name : nullptr, console, err);
        break;
      }
      case 3:
        if (dev->removePort(nr, err)) ev.open.erase(nr);
        break;
      case 4: dev->setOutputPaused(nr, in.flag(), err); break;
      case 5: dev->setConsoleSize(in.u16(), in.u16()); break;
      default: {
        ConsoleDevice::PortStats st;
        dev->stats(nr, st);
        break;
      }
    }
    endEvent("host call");
    runTasks();
  }

  // ------------------------------------------------------------ ops
  void truncate() {
    if (truncatable.empty()) return;
    int fd = truncatable[in.u8() % truncatable.size()];
    uint64_t size = (in.u32() % kMemSize) & ~4095ull;
    if (fd == mem) {
      if (size >= memLimit) return;
      memLimit = size;
    }
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) violation("ftruncate");
  }

  void disconnect() {
    if (sock < 0) return;
    ::close(sock);
    sock = -1;
    runLoop(4);
    if (conn && !ended) violation("the connection did not notice the front-end leaving");
    runTasks();
    if (in.flag() && memLimit == kMemSize) {  // the front-end comes back (QEMU restarted): the same device serves it
      for (auto& g : q)
        if (g.num) g.init(g.index, g.num);
      std::memset(view, 0, kBufBase);  // fresh rings for the new guest
      connect();
    }
  }

  void op(uint8_t code) {
    if (tracing()) std::fprintf(stderr, "op %u%s\n", code % kOpCount, ended ? " (connection ended)" : "");
    switch (code % kOpCount) {
      case kOpMessage:
        if (allowRaw) rawMessage();
        else guestAction(kOpPostRx);
        break;
      case kOpRun: runLoop(in.range(1, 8)); break;
      case kOpReclaim: reclaimAll(); break;
      case kOpHost: hostCall(); break;
      case kOpStopStart: {
        if (ended || !conn || !cfg.preamble) break;
        // Control messages the guest queued before the stop are handled when the rings run
        // again: only a stop/start with none pending must leave the ports as they were.
        // (and none from inside the callbacks meanwhile).
        reclaimAll();
        bool quiet = !cfg.multiport || q[3].inflight.empty();
        std::map<uint32_t, bool> before = ev.open;
        unsigned concurrentLeft = concurrent;
        if (quiet) concurrent = 0;
        stopStart(in.flag());
        runLoop(4);
        concurrent = concurrentLeft;
        if (tracing() && quiet && !ended && conn)
          std::fprintf(stderr, "  stop/start checked: %zu ports' state kept\n", before.size());
#if VHC_FUZZ_PORT_STATE
        if (quiet && !ended && conn && ev.open != before)
          violation("a front-end stop/start changed the guest-open state of the ports");
#endif
        break;
      }
      case kOpTruncate: truncate(); break;
      case kOpDisconnect: disconnect(); break;
      case kOpConcurrent: concurrent = in.range(0, 16); break;
      case kOpKick:
        guestAction(kOpKick);
        runLoop(in.range(1, 4));
        break;
      default: guestAction(code % kOpCount); break;
    }
  }

  void run() {
    setUp();
    runLoop(4);
    for (unsigned n = 0; n < kMaxOps && !in.empty(); ++n) op(in.u8());
    runLoop(8);
    if (conn && !ended) {  // the front-end leaves; the connection must notice and let go
      ::close(sock);
      sock = -1;
      runLoop(4);
      runTasks();
    }
  }
};

inline void Recorder::log(LogLevel, const std::string& m) {
  ++logs;
  if (tracing()) std::fprintf(stderr, "  log: %s\n", m.c_str());
  if (s) s->onCallback();
}
inline void Recorder::guestOpen(uint32_t nr, bool isOpen) {
  ConsoleDevice::PortStats st;
  if (!s->dev->stats(nr, st)) violation("guestOpen(%u) for a port that does not exist", nr);
  auto it = open.find(nr);
  bool was = it != open.end() && it->second;
  if (was == isOpen) violation("guestOpen(%u, %d) repeats the state", nr, isOpen);
  open[nr] = isOpen;
  if (tracing()) std::fprintf(stderr, "  guestOpen %u %d\n", nr, isOpen);
  s->onCallback();
}
inline void Recorder::data(uint32_t nr, const uint8_t* p, size_t n) {
  ++dataCalls;
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < n; i += 64) sink = sink + p[i];  // touch what we were handed (ASan)
  if (n) sink = sink + p[n - 1];
  (void)nr;
  if (s) s->onCallback();
}
inline void Recorder::writable(uint32_t) {
  if (s) s->onCallback();
}

}  // namespace vhcfuzz
