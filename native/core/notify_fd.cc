#include "core/notify_fd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace vhc {

NotifyFd::NotifyFd(UniqueFd fd, Use use) : fd_(std::move(fd)) {
  struct stat st;
  if (!fd_ || ::fstat(fd_.get(), &st) != 0) return;
  if (S_ISSOCK(st.st_mode)) {
    kind_ = Kind::Socket;
  } else if (S_ISFIFO(st.st_mode)) {
    // Opening /proc/self/fd/N of a pipe opens the same pipe with a new description of our
    // own. Only for pipes: reopening a regular file or a device could grant access the
    // front-end's fd did not have.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd_.get());
    own_.reset(::open(path, (use == Use::Read ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC));
    if (own_) kind_ = Kind::Own;
  }
}

bool NotifyFd::ready(short events) const {
  pollfd p{fd_.get(), events, 0};
  int n;
  do n = ::poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n == 1 && (p.revents & events);
}

bool NotifyFd::signal() {
  if (!fd_) return false;
  uint64_t one = 1;
  ssize_t n;
  switch (kind_) {
    case Kind::Socket: n = ::send(fd_.get(), &one, sizeof one, MSG_DONTWAIT | MSG_NOSIGNAL); break;
    case Kind::Own: n = ::write(own_.get(), &one, sizeof one); break;
    default:
      if (!ready(POLLOUT)) return false;
      n = ::write(fd_.get(), &one, sizeof one);
      break;
  }
  return n == static_cast<ssize_t>(sizeof one);
}

ssize_t NotifyFd::drain(uint64_t& value) {
  if (!fd_) return errno = EBADF, -1;
  switch (kind_) {
    case Kind::Socket: return ::recv(fd_.get(), &value, sizeof value, MSG_DONTWAIT);
    case Kind::Own: return ::read(own_.get(), &value, sizeof value);
    default:
      if (!ready(POLLIN)) {
        // Readable per the loop but not now: either someone else read it meanwhile, or an
        // error/hang-up condition that read() reports.
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
          return ::read(fd_.get(), &value, 0) < 0 ? -1 : 0;
        return errno = EAGAIN, -1;
      }
      return ::read(fd_.get(), &value, sizeof value);
  }
}

}  // namespace vhc
