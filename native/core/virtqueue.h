// One split virtqueue (virtio 1.x, 2.7), as the device sees it. Everything read from the ring
// is guest-controlled: indices are bounded, chains are bounded by the table they walk (a longer
// chain can only be a loop) and by the queue size (indirect entries included), indirect tables
// are validated, and every buffer must lie in guest memory. A violation makes the queue "broken": it reports once
// through onFault and refuses all further work, so the connection can be ended cleanly instead of the process crashing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/notify_fd.h"
#include "core/unique.h"

namespace vhc {

// One buffer of a descriptor chain, already translated to a host pointer.
struct Segment {
  uint8_t* ptr;
  uint32_t len;
  bool writable;  // device-writable (VIRTQ_DESC_F_WRITE)
};

struct Chain {
  uint16_t head = 0;
  std::vector<Segment> segs;
};

class Virtqueue {
 public:
  static constexpr uint32_t kMaxSize = 32768;

  Virtqueue(unsigned index, const GuestMemory& mem, std::function<void(const std::string&)> onFault);
  Virtqueue(const Virtqueue&) = delete;
  Virtqueue& operator=(const Virtqueue&) = delete;
  ~Virtqueue();

  // --- configuration from the front-end (vhost-user SET_VRING_*) ---
  bool setNum(uint32_t num, std::string& err);
  void setAddr(uint64_t descUser, uint64_t availUser, uint64_t usedUser);
  void setBase(uint16_t base) {
    lastAvail_ = availSeen_ = base;
    unmap();
  }
  uint16_t base() const { return lastAvail_; }
  void setEventIdx(bool on) { eventIdx_ = on; }
  // VIRTIO_F_INDIRECT_DESC negotiated: without it an indirect descriptor is a fault.
  void setIndirect(bool on) { indirect_ = on; }
  // Translate the ring addresses now (to reject a bad SET_VRING_ADDR early). Needs memory.
  bool checkAddr(std::string& err);
  // fds are owned by the queue; setting one closes the previous.
  void setKickFd(UniqueFd fd) { kickFd_ = NotifyFd(std::move(fd), NotifyFd::Use::Read); }
  void setCallFd(UniqueFd fd) { callFd_ = NotifyFd(std::move(fd), NotifyFd::Use::Write); }
  void setErrFd(UniqueFd fd) { errFd_ = NotifyFd(std::move(fd), NotifyFd::Use::Write); }
  int kickFd() const { return kickFd_.get(); }
  int errFd() const { return errFd_.get(); }
  // Reads the kick counter without ever blocking (see NotifyFd::drain).
  ssize_t readKick(uint64_t& count) { return kickFd_.drain(count); }

  bool started = false;  // a kick fd was set and GET_VRING_BASE has not stopped it
  bool enabled = false;  // SET_VRING_ENABLE (or no PROTOCOL_FEATURES)
  bool configured() const { return num_ != 0 && addrSet_; }
  bool ready() const { return started && enabled && configured() && !broken_; }
  bool broken() const { return broken_; }
  unsigned index() const { return index_; }
  uint32_t size() const { return num_; }
  // Back to the state of a fresh connection (closes fds, forgets addresses).
  void reset();
  // Forget cached ring pointers (memory table changed, or the ring was stopped).
  void unmap() { mappedGen_ = UINT64_MAX; }

  // --- the device's side of the ring ---
  // Next available chain: 1 = `out` filled, 0 = none available, -1 = broken.
  int pop(Chain& out);
  // Descriptors pop() has read since the queue was created (indirect tables and zero-length
  // descriptors included): what the device's per-call work budgets count.
  uint64_t visited() const { return visited_; }
  // Declare the queue broken by what the device found in a chain (e.g. a receive buffer with
  // no device-writable bytes). Reports once, like a ring fault. Always returns -1.
  int fault(const std::string& what);
  // Return a chain to the driver with `len` bytes written. Published by flush().
  void push(uint16_t head, uint32_t len);
  // Publish pushed chains (used idx) and signal the call fd if the driver wants it.
  void flush();
  // Before going idle: ask the driver to kick on its next buffer (EVENT_IDX avail_event), then
  // re-check. True if buffers are available now (the caller should pop again).
  bool rearm();
  // Make the kick fd readable again: "come back later" after a bounded batch, so one busy
  // queue cannot hold the event loop (without it EVENT_IDX would suppress the next kick).
  void kickSelf();

 private:
  bool ensureMapped();
  bool translate(std::string& err);

  const unsigned index_;
  const GuestMemory& mem_;
  std::function<void(const std::string&)> onFault_;

  uint32_t num_ = 0;
  bool addrSet_ = false;
  uint64_t descUser_ = 0, availUser_ = 0, usedUser_ = 0;
  bool eventIdx_ = false;
  bool indirect_ = false;
  NotifyFd kickFd_, callFd_, errFd_;
  uint64_t visited_ = 0;

  // Host views of the ring (valid while mappedGen_ == mem_.generation()).
  uint64_t mappedGen_ = UINT64_MAX;
  uint8_t* desc_ = nullptr;
  uint16_t* avail_ = nullptr;  // flags, idx, ring[num], used_event
  uint8_t* used_ = nullptr;    // flags, idx, ring[num] of {id, len}, avail_event

  uint16_t lastAvail_ = 0;  // next avail ring slot to take
  uint16_t availSeen_ = 0;  // avail idx as read at the start of the current batch
  uint16_t usedIdx_ = 0;    // next used ring slot to fill
  uint16_t publishedUsed_ = 0;
  uint16_t signalledUsed_ = 0;  // used idx at the last signalling decision (EVENT_IDX)
  bool broken_ = false;
};

}  // namespace vhc
