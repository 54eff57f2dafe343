// A kick, call or err fd the front-end sent (SET_VRING_KICK/CALL/ERR). Its open file
// description is shared with the front-end, so the daemon never changes its flags (setting
// O_NONBLOCK there would change the front-end's own reads and writes); instead every read and
// write is made so that it cannot block the event loop, whatever the fd is:
//   - a socket: send/recv with MSG_DONTWAIT;
//   - a pipe or FIFO: our own non-blocking description, opened through /proc/self/fd;
//   - anything else (an eventfd, blocking or not): poll with a zero timeout first, then the
//     read or write only if poll says it will not block.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "core/unique.h"

namespace vhc {

class NotifyFd {
 public:
  enum class Use { Read, Write };
  NotifyFd() = default;
  NotifyFd(UniqueFd fd, Use use);

  int get() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  void reset() {
    own_.reset();
    fd_.reset();
  }

  // Adds 1 to an eventfd (writes the 8-byte value 1). False if it would block (a saturated
  // eventfd, a full pipe: the peer has a notification pending anyway) or failed.
  bool signal();
  // Reads one 8-byte counter value. Returns what read(2) would: 8 on success, 0 at end of
  // file, -1 with errno (EAGAIN when nothing is there or the read could block).
  ssize_t drain(uint64_t& value);

 private:
  enum class Kind { Socket, Own, PollFirst };
  bool ready(short events) const;
  UniqueFd fd_;
  UniqueFd own_;  // our own description (pipes and FIFOs)
  Kind kind_ = Kind::PollFirst;
};

}  // namespace vhc
