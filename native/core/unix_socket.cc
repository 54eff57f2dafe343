#include "core/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace vhc {

namespace {

bool makeAddress(const std::string& path, sockaddr_un& addr, std::string& err) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    err = strfmt("socket '%s': path length %zu is not in 1..%zu", path.c_str(), path.size(), sizeof addr.sun_path - 1);
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// True if someone accepts connections on the socket file at `addr`.
bool socketIsLive(const sockaddr_un& addr) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN;
}

}  // namespace

UniqueFd listenUnixSocket(const std::string& path, unsigned mode, std::string& err) {
  sockaddr_un addr;
  if (!makeAddress(path, addr, err)) return {};
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      err = strfmt("socket '%s': the path exists and is not a socket", path.c_str());
      return {};
    }
    if (socketIsLive(addr)) {
      err = strfmt("socket '%s' is in use by another process", path.c_str());
      return {};
    }
    ::unlink(path.c_str());  // stale: left behind by a process that is gone
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    err = strfmt("socket '%s': socket(): %s", path.c_str(), strerror(errno));
    return {};
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    err = strfmt("socket '%s': bind: %s", path.c_str(), strerror(errno));
    return {};
  }
  // chmod before listen(): until listen() every connect() is refused, so the file's brief
  // umask-derived mode cannot let anyone in.
  if (::chmod(path.c_str(), mode) < 0 || ::listen(fd.get(), 4) < 0) {
    err = strfmt("socket '%s': %s", path.c_str(), strerror(errno));
    fd.reset();
    ::unlink(path.c_str());
    return {};
  }
  return fd;
}

UniqueFd acceptUnixConnection(int listenFd) {
  return UniqueFd(::accept4(listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

}  // namespace vhc
