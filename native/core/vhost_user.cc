#include "core/vhost_user.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhc {

namespace {

enum Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetBackendReqFd = 21,
  kGetConfig = 24,
  kSetConfig = 25,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};
constexpr uint32_t kBackendConfigChange = 2;  // back-end -> front-end request

constexpr uint32_t kVersion = 1, kVersionMask = 3, kFlagReply = 1u << 2, kFlagNeedReply = 1u << 3;
constexpr uint32_t kMaxPayload = 4096;
constexpr uint32_t kMaxConfig = 256;
constexpr unsigned kMaxMemTableRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS
constexpr unsigned kMaxFds = 8;
constexpr unsigned kMessagesPerWakeup = 64;  // then yield to the loop (level-triggered)

constexpr uint64_t kProtoMq = 1ull << 0, kProtoReplyAck = 1ull << 3, kProtoBackendReq = 1ull << 5,
                   kProtoConfig = 1ull << 9, kProtoResetDevice = 1ull << 13, kProtoMemSlots = 1ull << 15,
                   kProtoStatus = 1ull << 16;
constexpr uint64_t kOfferedProtocol =
    kProtoMq | kProtoReplyAck | kProtoBackendReq | kProtoConfig | kProtoResetDevice | kProtoMemSlots | kProtoStatus;

// Name and payload size bounds of each request we implement. Requests without a payload
// accept 0 or 8 bytes (some front-ends send an unused u64).
struct RequestInfo {
  uint32_t id;
  const char* name;
  uint32_t minSize, maxSize;
};
constexpr uint32_t kRegionSize = 32, kVringState = 8, kVringAddr = 40, kMemRegMsg = 8 + kRegionSize;
constexpr RequestInfo kRequests[] = {
    {kGetFeatures, "GET_FEATURES", 0, 8},
    {kSetFeatures, "SET_FEATURES", 8, 8},
    {kSetOwner, "SET_OWNER", 0, 8},
    {kResetOwner, "RESET_OWNER", 0, 8},
    {kSetMemTable, "SET_MEM_TABLE", 8, 8 + kMaxMemTableRegions* kRegionSize},
    {kSetVringNum, "SET_VRING_NUM", kVringState, kVringState},
    {kSetVringAddr, "SET_VRING_ADDR", kVringAddr, kVringAddr},
    {kSetVringBase, "SET_VRING_BASE", kVringState, kVringState},
    {kGetVringBase, "GET_VRING_BASE", kVringState, kVringState},
    {kSetVringKick, "SET_VRING_KICK", 8, 8},
    {kSetVringCall, "SET_VRING_CALL", 8, 8},
    {kSetVringErr, "SET_VRING_ERR", 8, 8},
    {kGetProtocolFeatures, "GET_PROTOCOL_FEATURES", 0, 8},
    {kSetProtocolFeatures, "SET_PROTOCOL_FEATURES", 8, 8},
    {kGetQueueNum, "GET_QUEUE_NUM", 0, 8},
    {kSetVringEnable, "SET_VRING_ENABLE", kVringState, kVringState},
    {kSetBackendReqFd, "SET_BACKEND_REQ_FD", 0, 8},
    {kGetConfig, "GET_CONFIG", 12, 12 + kMaxConfig},
    {kSetConfig, "SET_CONFIG", 12, 12 + kMaxConfig},
    {kResetDevice, "RESET_DEVICE", 0, 8},
    {kGetMaxMemSlots, "GET_MAX_MEM_SLOTS", 0, 8},
    {kAddMemReg, "ADD_MEM_REG", kMemRegMsg, kMemRegMsg},
    {kRemMemReg, "REM_MEM_REG", kMemRegMsg, kMemRegMsg},
    {kSetStatus, "SET_STATUS", 8, 8},
    {kGetStatus, "GET_STATUS", 0, 8},
};

const RequestInfo* requestInfo(uint32_t id) {
  for (const auto& r : kRequests)
    if (r.id == id) return &r;
  return nullptr;
}

std::string requestName(uint32_t id) {
  const RequestInfo* r = requestInfo(id);
  return r ? r->name : strfmt("request %u", id);
}

template <typename T>
T readAt(const std::vector<uint8_t>& buf, size_t off) {
  T v;
  std::memcpy(&v, buf.data() + off, sizeof v);
  return v;
}

RegionDesc readRegion(const std::vector<uint8_t>& buf, size_t off) {
  return {readAt<uint64_t>(buf, off), readAt<uint64_t>(buf, off + 8), readAt<uint64_t>(buf, off + 16),
          readAt<uint64_t>(buf, off + 24)};
}

// Reads what is left unread (bounded), closing any fds in it: closing a unix socket with
// unread data makes the peer see ECONNRESET instead of a clean end of file.
void drainSocket(int fd) {
  for (int i = 0; i < 64; ++i) {
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf, sizeof buf};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n <= 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++k) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + k * sizeof(int), sizeof received);
        UniqueFd{received};  // closed at once
      }
    }
  }
}

}  // namespace

// The fds that came with one message. Handlers take() what they keep; the rest is closed
// when the message is done, on every path.
struct VhostUserConnection::Fds {
  std::vector<UniqueFd>& list;
  ~Fds() { list.clear(); }
  size_t count() const { return list.size(); }
  UniqueFd take(size_t i) {
    UniqueFd fd = std::move(list[i]);
    list.erase(list.begin() + static_cast<long>(i));
    return fd;
  }
};

VhostUserConnection::VhostUserConnection(UniqueFd fd, VhostUserDevice& device, EventLoop& loop, BackendEvents& events,
                                         EndFn onEnd)
    : fd_(std::move(fd)), device_(device), loop_(loop), events_(events), onEnd_(std::move(onEnd)) {
  payload_.resize(kMaxPayload);
  for (unsigned i = 0; i < device_.queueCount(); ++i)
    queues_.push_back(std::make_unique<Virtqueue>(i, mem_, [this](const std::string& why) { fail(why); }));
  device_.attach(this);
  loop_.watch(fd_.get(), [this] { onReadable(); });
}

VhostUserConnection::~VhostUserConnection() {
  // The device lets go first, so nothing touches the rings while they are unmapped; the
  // watches go before their fds close. Everything else is closed and unmapped by its owner.
  device_.attach(nullptr);
  if (!ended_) {
    loop_.unwatch(fd_.get());
    for (auto& q : queues_)
      if (q->kickFd() >= 0) loop_.unwatch(q->kickFd());
  }
  queues_.clear();
  mem_.clear();
  drainSocket(fd_.get());
}

void VhostUserConnection::end(const std::string& reason, bool error) {
  if (ended_) return;
  ended_ = true;
  endReason_ = reason;
  endError_ = error;
  // Stop all activity now; the owner frees everything from a deferred task, outside the
  // handler or ring walk that got us here.
  loop_.unwatch(fd_.get());
  for (auto& q : queues_)
    if (q->kickFd() >= 0) loop_.unwatch(q->kickFd());
  loop_.defer([onEnd = onEnd_, reason, error] { onEnd(reason, error); });
}

Virtqueue* VhostUserConnection::queue(unsigned index) {
  if (ended_ || index >= queues_.size() || mem_.regionCount() == 0) return nullptr;
  Virtqueue* q = queues_[index].get();
  return q->ready() ? q : nullptr;
}

bool VhostUserConnection::checkAlive() {
  if (ended_) return false;
  onReadable();
  return !ended_;
}

void VhostUserConnection::onReadable() {
  if (ended_) return;
  std::string reason;
  bool error = false;
  if (!readMessages(reason, error)) end(reason, error);
  checkMemory();
}

bool VhostUserConnection::readMessages(std::string& reason, bool& error) {
  for (unsigned handled = 0; handled < kMessagesPerWakeup && !ended_;) {
    bool inHeader = hdrHave_ < sizeof(Header);
    uint8_t* dst = inHeader ? reinterpret_cast<uint8_t*>(&hdr_) + hdrHave_ : payload_.data() + payloadHave_;
    size_t want = inHeader ? sizeof(Header) - hdrHave_ : hdr_.size - payloadHave_;

    iovec iov{dst, want};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n >= 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          pendingFds_.emplace_back(fd);
        }
      }
      // The limit is per message, however the front-end splits it: fds sent with every byte
      // of a message sent a byte at a time would otherwise pile up to the process's fd limit.
      if (pendingFds_.size() > kMaxFds) {
        reason = strfmt("%s: more than %u file descriptors in one message (%zu so far)",
                        inHeader ? "message" : requestName(hdr_.request).c_str(), kMaxFds, pendingFds_.size());
        pendingFds_.clear();
        error = true;
        return false;
      }
      if (mh.msg_flags & MSG_CTRUNC) {
        reason = strfmt("%s: more than %u file descriptors in one message", requestName(hdr_.request).c_str(), kMaxFds);
        error = true;
        return false;
      }
    }
    if (n < 0) {
      reason = strfmt("socket read failed: %s", strerror(errno));
      error = true;
      return false;
    }
    if (n == 0) {
      if (hdrHave_ == 0) {
        reason = "front-end closed the connection";
      } else if (inHeader) {
        reason = strfmt("front-end closed the connection mid-message: short header (%zu of %zu bytes)", hdrHave_,
                        sizeof(Header));
        error = true;
      } else {
        reason = strfmt("front-end closed the connection mid-message: %s payload has %zu of %u bytes",
                        requestName(hdr_.request).c_str(), payloadHave_, hdr_.size);
        error = true;
      }
      return false;
    }
    if (inHeader) {
      hdrHave_ += static_cast<size_t>(n);
      if (hdrHave_ < sizeof(Header)) continue;
      if (!checkHeader(reason)) {
        error = true;
        return false;
      }
    } else {
      payloadHave_ += static_cast<size_t>(n);
    }
    if (payloadHave_ < hdr_.size) continue;

    Fds fds{pendingFds_};
    trace(fds.count());
    std::string err;
    Result r = dispatch(fds, err);
    std::string name = requestName(hdr_.request);
    bool needReply = hdr_.flags & kFlagNeedReply;
    hdrHave_ = payloadHave_ = 0;
    ++handled;
    if (r == Result::Fatal) {
      reason = name + ": " + err;
      error = true;
      return false;
    }
    if (r == Result::Failed)
      warn(strfmt("vhost-user %s failed: %s%s", name.c_str(), err.c_str(), needReply ? " (failure reply sent)" : ""));
  }
  return true;
}

bool VhostUserConnection::checkHeader(std::string& err) const {
  std::string name = requestName(hdr_.request);
  if ((hdr_.flags & kVersionMask) != kVersion) {
    err = strfmt("%s: bad header flags 0x%x (protocol version %u, expected %u)", name.c_str(), hdr_.flags,
                 hdr_.flags & kVersionMask, kVersion);
    return false;
  }
  if (hdr_.size > kMaxPayload) {
    err = strfmt("%s: payload size %u exceeds the maximum of %u", name.c_str(), hdr_.size, kMaxPayload);
    return false;
  }
  // Checked before reading the payload: a size larger than the request can carry would
  // otherwise swallow the next message (or wait for bytes that never come).
  if (const RequestInfo* r = requestInfo(hdr_.request)) {
    if (hdr_.size < r->minSize || hdr_.size > r->maxSize) {
      err = r->minSize == r->maxSize
                ? strfmt("%s: payload size %u, expected %u", name.c_str(), hdr_.size, r->minSize)
                : strfmt("%s: payload size %u outside %u..%u", name.c_str(), hdr_.size, r->minSize, r->maxSize);
      return false;
    }
  }
  return true;
}

bool VhostUserConnection::reply(const void* payload, uint32_t size) {
  uint8_t buf[sizeof(Header) + 12 + kMaxConfig];
  if (size > sizeof buf - sizeof(Header)) return false;
  Header h{hdr_.request, kVersion | kFlagReply, size};
  std::memcpy(buf, &h, sizeof h);
  if (size) std::memcpy(buf + sizeof h, payload, size);
  size_t total = sizeof h + size, done = 0;
  while (done < total) {
    ssize_t n = ::send(fd_.get(), buf + done, total - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      events_.log(LogLevel::Error, strfmt("vhost-user %s: cannot send the reply: %s", requestName(hdr_.request).c_str(),
                                          n < 0 ? strerror(errno) : "short write"));
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

Virtqueue* VhostUserConnection::queueArg(uint32_t index, std::string& err) {
  if (index < queues_.size()) return queues_[index].get();
  err = strfmt(
      "queue index %u out of range: the device has %zu queues (the front-end's queue count, "
      "e.g. QEMU num_vqs, must not exceed it)",
      index, queues_.size());
  return nullptr;
}

void VhostUserConnection::maybeStart(unsigned index) {
  if (queue(index)) device_.queueReady(index);
}

void VhostUserConnection::stopQueue(Virtqueue& q) {
  if (q.kickFd() >= 0) loop_.unwatch(q.kickFd());
  q.setKickFd(UniqueFd());
  q.started = false;
  q.unmap();
}

void VhostUserConnection::resetDevice() {
  for (auto& q : queues_) {
    if (q->kickFd() >= 0) loop_.unwatch(q->kickFd());
    q->reset();
  }
  acked_ = 0;
  status_ = 0;
  device_.reset();
}

void VhostUserConnection::onKick(unsigned index) {
  if (ended_) return;
  Virtqueue& q = *queues_[index];
  uint64_t count;
  ssize_t n = q.readKick(count);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n != sizeof count) {
    // Level-triggered: a kick fd that is readable but yields nothing (a pipe at EOF, ...)
    // would spin the loop forever.
    fail(strfmt("queue %u: kick fd is not an eventfd (read returned %zd)", index, n));
    return;
  }
  if (queue(index)) device_.queueKicked(index);
  checkMemory();
}

void VhostUserConnection::checkMemory() {
  if (!ended_ && mem_.poisoned())
    fail("guest memory was truncated by the front-end (its file shrank under a mapped region)");
}

VhostUserConnection::Result VhostUserConnection::dispatch(Fds& fds, std::string& err) {
  const std::vector<uint8_t>& p = payload_;
  bool needReply = hdr_.flags & kFlagNeedReply;
  bool replied = false;
  Result result = Result::Ok;
  auto u64 = [&] { return readAt<uint64_t>(p, 0); };
  auto sendU64 = [&](uint64_t v) {
    replied = true;
    return replyU64(v) ? Result::Ok : (err = "cannot send the reply", Result::Fatal);
  };
  auto state = [&](Virtqueue*& q) {
    q = queueArg(readAt<uint32_t>(p, 0), err);
    return q != nullptr;
  };
  Virtqueue* q = nullptr;

  switch (hdr_.request) {
    case kGetFeatures: result = sendU64(device_.features()); break;
    case kSetFeatures: {
      uint64_t f = u64();
      uint64_t extra = f & ~device_.features();
      if (extra)
        events_.log(LogLevel::Warn,
                    strfmt("SET_FEATURES: front-end acked features 0x%llx that were not offered; ignored",
                           (unsigned long long)extra));
      acked_ = f & device_.features();
      for (auto& vq : queues_) {
        vq->setEventIdx(acked_ & kFeatureEventIdx);
        vq->setIndirect(acked_ & kFeatureIndirectDesc);
      }
      // Without PROTOCOL_FEATURES rings start enabled; with it they wait for SET_VRING_ENABLE.
      if (!(acked_ & kFeatureProtocolFeatures))
        for (unsigned i = 0; i < queues_.size(); ++i) {
          queues_[i]->enabled = true;
          maybeStart(i);
        }
      break;
    }
    case kGetProtocolFeatures: result = sendU64(kOfferedProtocol); break;
    case kSetProtocolFeatures: protocolAcked_ = u64() & kOfferedProtocol; break;
    case kSetOwner: break;
    case kResetOwner:
    case kResetDevice: resetDevice(); break;
    case kGetQueueNum: result = sendU64(queues_.size()); break;
    case kGetMaxMemSlots: result = sendU64(GuestMemory::kMaxRegions); break;
    case kSetMemTable: result = handleMemTable(fds, err); break;
    case kAddMemReg:
    case kRemMemReg: result = handleMemReg(hdr_.request == kAddMemReg, fds, err); break;
    case kSetVringNum:
      if (!state(q)) return Result::Fatal;
      if (!q->setNum(readAt<uint32_t>(p, 4), err)) return Result::Fatal;
      break;
    case kSetVringBase:
      if (!state(q)) return Result::Fatal;
      q->setBase(static_cast<uint16_t>(readAt<uint32_t>(p, 4)));
      break;
    case kSetVringAddr: {
      if (!state(q)) return Result::Fatal;
      // struct vhost_vring_addr: index, flags, desc, used, avail, log (user addresses)
      q->setAddr(readAt<uint64_t>(p, 8), readAt<uint64_t>(p, 24), readAt<uint64_t>(p, 16));
      if (!q->checkAddr(err)) return Result::Fatal;
      maybeStart(q->index());
      break;
    }
    case kGetVringBase: {
      if (!state(q)) return Result::Fatal;
      stopQueue(*q);
      uint32_t st[2] = {q->index(), q->base()};
      replied = true;
      if (!reply(st, sizeof st)) return err = "cannot send the reply", Result::Fatal;
      break;
    }
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr: result = handleVringFd(fds, err); break;
    case kSetVringEnable:
      if (!state(q)) return Result::Fatal;
      q->enabled = readAt<uint32_t>(p, 4) != 0;
      maybeStart(q->index());
      break;
    case kSetBackendReqFd:
      if (fds.count() != 1) return err = strfmt("needs 1 file descriptor, got %zu", fds.count()), Result::Fatal;
      backendFd_ = fds.take(0);
      break;
    case kGetConfig: return handleGetConfig(err);
    case kSetConfig: result = handleSetConfig(err); break;
    case kSetStatus: {
      uint8_t s = static_cast<uint8_t>(u64());
      if (s == 0) resetDevice();
      status_ = s;
      break;
    }
    case kGetStatus: result = sendU64(status_); break;
    default:
      // We cannot know whether an unknown request expects a reply; one that asked for an
      // ack gets a failure ack and the connection goes on, any other ends it.
      if (!needReply) return err = strfmt("unknown request id %u", hdr_.request), Result::Fatal;
      err = strfmt("unknown request id %u", hdr_.request);
      result = Result::Failed;
      break;
  }
  if (result == Result::Fatal) return result;
  if (needReply && !replied && !replyU64(result == Result::Ok ? 0 : 1))
    return err = "cannot send the REPLY_ACK", Result::Fatal;
  return result;
}

VhostUserConnection::Result VhostUserConnection::handleMemTable(Fds& fds, std::string& err) {
  uint32_t n = readAt<uint32_t>(payload_, 0);
  if (n > kMaxMemTableRegions || hdr_.size != 8 + n * kRegionSize)
    return err = strfmt("%u regions in a payload of %u bytes (max %u regions)", n, hdr_.size, kMaxMemTableRegions),
           Result::Fatal;
  if (fds.count() != n) return err = strfmt("%u regions but %zu file descriptors", n, fds.count()), Result::Fatal;
  // A new table replaces the old one entirely; rings translate again on next use.
  mem_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    if (!mem_.add(readRegion(payload_, 8 + i * kRegionSize), fds.take(0), err)) {
      mem_.clear();
      return Result::Failed;
    }
  }
  for (unsigned i = 0; i < queues_.size(); ++i) maybeStart(i);
  return Result::Ok;
}

VhostUserConnection::Result VhostUserConnection::handleMemReg(bool add, Fds& fds, std::string& err) {
  RegionDesc d = readRegion(payload_, 8);
  if (!add) return mem_.remove(d, err) ? Result::Ok : Result::Failed;  // a stray fd is closed by Fds
  if (fds.count() != 1) return err = strfmt("needs 1 file descriptor, got %zu", fds.count()), Result::Fatal;
  if (!mem_.add(d, fds.take(0), err)) return Result::Failed;
  for (unsigned i = 0; i < queues_.size(); ++i) maybeStart(i);
  return Result::Ok;
}

VhostUserConnection::Result VhostUserConnection::handleVringFd(Fds& fds, std::string& err) {
  uint64_t v = readAt<uint64_t>(payload_, 0);
  Virtqueue* q = queueArg(static_cast<uint32_t>(v & 0xff), err);
  if (!q) return Result::Fatal;
  bool noFd = v & 0x100;
  if (!noFd && fds.count() != 1)
    return err = strfmt("queue %u: needs 1 file descriptor, got %zu", q->index(), fds.count()), Result::Fatal;
  UniqueFd fd = noFd ? UniqueFd() : fds.take(0);
  unsigned index = q->index();
  switch (hdr_.request) {
    case kSetVringKick:
      if (q->kickFd() >= 0) loop_.unwatch(q->kickFd());
      // Its flags stay as the front-end set them (the description is shared): the queue reads
      // it in a way that cannot block (NotifyFd).
      q->setKickFd(std::move(fd));
      if (q->kickFd() >= 0) {
        loop_.watch(q->kickFd(), [this, index] { onKick(index); });
      } else
        events_.log(LogLevel::Warn, strfmt("queue %u: no kick fd (polling mode is not supported); "
                                           "the queue is served only on other events",
                                           index));
      // The ring is started by its kick fd (vhost-user "ring states").
      q->started = true;
      maybeStart(index);
      break;
    case kSetVringCall: q->setCallFd(std::move(fd)); break;
    default: q->setErrFd(std::move(fd)); break;
  }
  return Result::Ok;
}

VhostUserConnection::Result VhostUserConnection::handleGetConfig(std::string& err) {
  uint32_t off = readAt<uint32_t>(payload_, 0), size = readAt<uint32_t>(payload_, 4);
  // The reply must be exactly 12 + size bytes; an empty reply tells the front-end it failed.
  if (size > kMaxConfig || off > device_.configSize() || size > device_.configSize() - off) {
    warn(strfmt("vhost-user GET_CONFIG failed: offset %u size %u outside the %u-byte config (empty reply sent)", off,
                size, device_.configSize()));
    if (!reply(nullptr, 0)) return err = "cannot send the reply", Result::Fatal;
    return Result::Ok;
  }
  uint8_t out[12 + kMaxConfig];
  std::memcpy(out, payload_.data(), 12);
  device_.readConfig(off, out + 12, size);
  if (!reply(out, 12 + size)) return err = "cannot send the reply", Result::Fatal;
  return Result::Ok;
}

VhostUserConnection::Result VhostUserConnection::handleSetConfig(std::string& err) {
  uint32_t off = readAt<uint32_t>(payload_, 0), size = readAt<uint32_t>(payload_, 4);
  if (size > hdr_.size - 12)
    return err = strfmt("config size %u exceeds the %u-byte payload", size, hdr_.size - 12), Result::Fatal;
  if (off > device_.configSize() || size > device_.configSize() - off)
    return err = strfmt("offset %u size %u outside the %u-byte config", off, size, device_.configSize()),
           Result::Failed;
  if (!device_.writeConfig(off, payload_.data() + 12, size))
    return err = strfmt("offset %u size %u is read-only", off, size), Result::Failed;
  return Result::Ok;
}

void VhostUserConnection::trace(size_t fdCount) {
  // Every request at debug level, so what a front-end sends can be recorded from a real run
  // (docs/testing.md); rate-limited like any line a front-end can trigger at will.
  uint64_t suppressed = 0;
  if (!traceLimit_.admit(suppressed)) return;
  std::string args;
  if (hdr_.size == 8) {
    uint32_t a = readAt<uint32_t>(payload_, 0), b = readAt<uint32_t>(payload_, 4);
    args = strfmt(" {%u, %u}", a, b);
  } else if (hdr_.size == kVringAddr) {
    args =
        strfmt(" {%u, flags %u, desc 0x%llx, used 0x%llx, avail 0x%llx}", readAt<uint32_t>(payload_, 0),
               readAt<uint32_t>(payload_, 4), (unsigned long long)readAt<uint64_t>(payload_, 8),
               (unsigned long long)readAt<uint64_t>(payload_, 16), (unsigned long long)readAt<uint64_t>(payload_, 24));
  } else if (hdr_.size >= 12 && (hdr_.request == kGetConfig || hdr_.request == kSetConfig)) {
    args = strfmt(" {offset %u, size %u}", readAt<uint32_t>(payload_, 0), readAt<uint32_t>(payload_, 4));
  } else if (hdr_.size > 0) {
    args = strfmt(" (%u bytes)", hdr_.size);
  }
  events_.log(LogLevel::Debug,
              strfmt("vhost-user <- %s flags 0x%x%s%s%s", requestName(hdr_.request).c_str(), hdr_.flags, args.c_str(),
                     fdCount ? strfmt(", %zu fd%s", fdCount, fdCount > 1 ? "s" : "").c_str() : "",
                     suppressed ? strfmt(" (%llu messages not traced)", (unsigned long long)suppressed).c_str() : ""));
}

void VhostUserConnection::warn(const std::string& line) {
  uint64_t suppressed = 0;
  if (!warnLimit_.admit(suppressed)) return;
  events_.log(LogLevel::Warn,
              suppressed ? line + strfmt(" (%llu similar messages suppressed)", (unsigned long long)suppressed) : line);
}

bool VhostUserConnection::notifyConfigChange() {
  if (ended_ || !backendFd_ || !(protocolAcked_ & kProtoBackendReq)) return false;
  Header h{kBackendConfigChange, kVersion, 0};
  ssize_t n = ::send(backendFd_.get(), &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(sizeof h)) {
    events_.log(LogLevel::Warn,
                strfmt("back-end channel: cannot send CONFIG_CHANGE_MSG: %s", n < 0 ? strerror(errno) : "short write"));
    return false;
  }
  return true;
}

}  // namespace vhc
