#include "core/virtqueue.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "core/log.h"

namespace vhc {

namespace {

constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1;

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16, "virtq_desc is 16 bytes");

// Ring words live in memory the guest writes concurrently: access them with single atomic
// loads/stores (never torn, never re-read by the compiler) and order them with explicit fences.
uint16_t load16(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void store16(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// virtio's vring_need_event: signal if new_idx has passed event_idx since old_idx.
bool needEvent(uint16_t eventIdx, uint16_t newIdx, uint16_t oldIdx) {
  return static_cast<uint16_t>(newIdx - eventIdx - 1) < static_cast<uint16_t>(newIdx - oldIdx);
}

}  // namespace

Virtqueue::Virtqueue(unsigned index, const GuestMemory& mem, std::function<void(const std::string&)> onFault)
    : index_(index), mem_(mem), onFault_(std::move(onFault)) {}

Virtqueue::~Virtqueue() { reset(); }

void Virtqueue::reset() {
  kickFd_.reset();
  callFd_.reset();
  errFd_.reset();
  num_ = 0;
  addrSet_ = false;
  descUser_ = availUser_ = usedUser_ = 0;
  started = enabled = false;
  lastAvail_ = availSeen_ = usedIdx_ = publishedUsed_ = signalledUsed_ = 0;
  broken_ = false;
  unmap();
}

void Virtqueue::kickSelf() {
  // Our own kick: written through the front-end's fd without blocking. If it cannot be
  // written the counter is non-zero already, so the fd stays readable: same effect.
  if (kickFd_.valid()) {
    uint64_t one = 1;
    pollfd p{kickFd_.get(), POLLOUT, 0};
    if (::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT)) {
      ssize_t n = ::write(kickFd_.get(), &one, sizeof one);
      (void)n;
    }
  }
}

bool Virtqueue::setNum(uint32_t num, std::string& err) {
  // Split rings index with free-running u16 counters modulo num: num must divide 65536.
  if (num == 0 || num > kMaxSize || (num & (num - 1)) != 0) {
    err = strfmt("queue %u: size %u is not a power of two in 1..%u", index_, num, kMaxSize);
    return false;
  }
  num_ = num;
  unmap();
  return true;
}

void Virtqueue::setAddr(uint64_t descUser, uint64_t availUser, uint64_t usedUser) {
  descUser_ = descUser;
  availUser_ = availUser;
  usedUser_ = usedUser;
  addrSet_ = true;
  unmap();
}

bool Virtqueue::translate(std::string& err) {
  // Sizes include the EVENT_IDX words (used_event, avail_event): drivers always lay them out.
  uint64_t descLen = 16ull * num_, availLen = 6 + 2ull * num_, usedLen = 6 + 8ull * num_;
  uint8_t* d = mem_.fromUser(descUser_, descLen);
  uint8_t* a = mem_.fromUser(availUser_, availLen);
  uint8_t* u = mem_.fromUser(usedUser_, usedLen);
  if (!d || !a || !u) {
    err = strfmt("ring address outside guest memory (%s 0x%llx, queue size %u)",
                 !d   ? "descriptor table"
                 : !a ? "avail ring"
                      : "used ring",
                 (unsigned long long)(!d   ? descUser_
                                      : !a ? availUser_
                                           : usedUser_),
                 num_);
    return false;
  }
  if ((reinterpret_cast<uintptr_t>(d) & 15) || (reinterpret_cast<uintptr_t>(a) & 1) ||
      (reinterpret_cast<uintptr_t>(u) & 3)) {
    err = strfmt("misaligned ring (desc 0x%llx, avail 0x%llx, used 0x%llx)", (unsigned long long)descUser_,
                 (unsigned long long)availUser_, (unsigned long long)usedUser_);
    return false;
  }
  desc_ = d;
  avail_ = reinterpret_cast<uint16_t*>(a);
  used_ = u;
  mappedGen_ = mem_.generation();
  // The used index continues from what is in memory (a previous connection may have
  // advanced it); everything we pushed ourselves was published before returning.
  usedIdx_ = publishedUsed_ = load16(reinterpret_cast<uint16_t*>(used_ + 2));
  availSeen_ = lastAvail_;
  // Suppression counts from here: "old" for vring_need_event is the index found in memory.
  signalledUsed_ = usedIdx_;
  return true;
}

bool Virtqueue::checkAddr(std::string& err) {
  if (num_ == 0 || mem_.regionCount() == 0) return true;  // checked again at first use
  if (translate(err)) return true;
  err = strfmt("queue %u: %s", index_, err.c_str());
  return false;
}

bool Virtqueue::ensureMapped() {
  if (broken_) return false;
  if (mem_.poisoned()) {
    fault("guest memory was truncated by the front-end (its file shrank under a mapped region)");
    return false;
  }
  if (mappedGen_ == mem_.generation()) return true;
  std::string err;
  if (!configured()) err = "used before its size and addresses were set";
  else if (translate(err)) return true;
  fault(err);
  return false;
}

int Virtqueue::fault(const std::string& what) {
  if (!broken_) {
    broken_ = true;
    errFd_.signal();
    // What the ring showed after a SIGBUS was absorbed is zeros, not the guest's doing.
    onFault_(strfmt("queue %u: %s", index_,
                    mem_.poisoned()
                        ? "guest memory was truncated by the front-end (its file shrank under a mapped region)"
                        : what.c_str()));
  }
  return -1;
}

int Virtqueue::pop(Chain& out) {
  if (!ensureMapped()) return -1;
  if (lastAvail_ == availSeen_) {
    // Read the driver's avail idx once per batch; the fence orders it before the ring
    // entries and descriptors it publishes.
    availSeen_ = load16(avail_ + 1);
    std::atomic_thread_fence(std::memory_order_acquire);
    uint16_t pending = static_cast<uint16_t>(availSeen_ - lastAvail_);
    if (pending > num_)
      return fault(strfmt("avail index %u is %u ahead of the last seen %u (queue size %u)", availSeen_, pending,
                          lastAvail_, num_));
    if (pending == 0) return 0;
  }
  uint16_t head = load16(avail_ + 2 + (lastAvail_ & (num_ - 1)));
  ++lastAvail_;
  if (head >= num_) return fault(strfmt("avail ring entry %u is out of range (queue size %u)", head, num_));

  out.head = head;
  out.segs.clear();
  const uint8_t* table = desc_;
  uint32_t tableLen = num_, i = head, count = 0;
  bool indirect = false;
  for (;;) {
    if (i >= tableLen)
      return fault(strfmt("chain %u: next descriptor %u is out of range (%s of %u)", head, i,
                          indirect ? "indirect table" : "queue size", tableLen));
    // A chain visits each descriptor of its table at most once; one longer is a loop.
    if (++count > tableLen)
      return fault(strfmt("chain %u: longer than its table of %u descriptors (a loop)", head, tableLen));
    Desc d;
    std::memcpy(&d, table + 16ull * i, sizeof d);  // one copy: the guest may rewrite it meanwhile
    ++visited_;
    if (d.flags & kDescIndirect) {
      if (!indirect_) return fault(strfmt("chain %u: indirect descriptor, but INDIRECT_DESC was not negotiated", head));
      if (indirect) return fault(strfmt("chain %u: nested indirect descriptor", head));
      if (d.flags & kDescNext) return fault(strfmt("chain %u: indirect descriptor with NEXT set", head));
      if (d.len == 0 || d.len % 16 != 0)
        return fault(strfmt("chain %u: indirect table length %u is not a non-zero multiple of 16", head, d.len));
      // A chain may not be longer than the queue (virtio 2.7.5.3.1), indirect entries included.
      if (d.len / 16 > num_ - (count - 1))
        return fault(strfmt("chain %u: indirect table of %u entries makes the chain longer than the queue size %u",
                            head, d.len / 16, num_));
      const uint8_t* t = mem_.fromGuest(d.addr, d.len);
      if (!t)
        return fault(strfmt("chain %u: indirect table 0x%llx+%u is outside guest memory", head,
                            (unsigned long long)d.addr, d.len));
      table = t;
      tableLen = d.len / 16;
      i = 0;
      count = 0;
      indirect = true;
      continue;
    }
    if (d.len != 0) {
      uint8_t* p = mem_.fromGuest(d.addr, d.len);
      if (!p)
        return fault(
            strfmt("chain %u: buffer 0x%llx+%u is outside guest memory", head, (unsigned long long)d.addr, d.len));
      out.segs.push_back({p, d.len, (d.flags & kDescWrite) != 0});
    }
    if (!(d.flags & kDescNext)) break;
    i = d.next;
  }
  return 1;
}

void Virtqueue::push(uint16_t head, uint32_t len) {
  if (broken_ || mappedGen_ != mem_.generation() || mem_.poisoned()) return;
  uint8_t* elem = used_ + 4 + 8u * (usedIdx_ & (num_ - 1));
  uint32_t v[2] = {head, len};
  std::memcpy(elem, v, sizeof v);
  ++usedIdx_;
}

void Virtqueue::flush() {
  if (broken_ || mappedGen_ != mem_.generation() || usedIdx_ == publishedUsed_) return;
  if (mem_.poisoned())
    return (void)fault("guest memory was truncated by the front-end (its file shrank under a mapped region)");
  // The used elements must be visible before the index that publishes them.
  std::atomic_thread_fence(std::memory_order_release);
  store16(reinterpret_cast<uint16_t*>(used_ + 2), usedIdx_);
  publishedUsed_ = usedIdx_;
  // Order the index store before reading the driver's suppression state (used_event/flags).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool wanted;
  if (eventIdx_) {
    uint16_t usedEvent = load16(avail_ + 2 + num_);
    wanted = needEvent(usedEvent, usedIdx_, signalledUsed_);
    signalledUsed_ = usedIdx_;
  } else {
    wanted = !(load16(avail_) & kAvailNoInterrupt);
  }
  if (wanted) callFd_.signal();  // false: the driver has an interrupt pending already
}

bool Virtqueue::rearm() {
  if (!ensureMapped()) return false;
  if (eventIdx_) store16(reinterpret_cast<uint16_t*>(used_ + 4 + 8u * num_), lastAvail_);
  // The avail_event store must be visible before we look for buffers added meanwhile,
  // or a buffer added just before the store would get neither a kick nor our attention.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return load16(avail_ + 1) != lastAvail_;
}

}  // namespace vhc
