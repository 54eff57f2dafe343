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

}  // namespace

UniqueFd listenUnixSocket(const std::string& path, unsigned mode, std::string& err) {
  sockaddr_un addr;
  if (!makeAddress(path, addr, err)) return {};
  // Nothing is probed or removed here: the caller claimed the path first (src/sys/paths.ts:
  // a lock beside it, a stale socket replaced, anything else refused without connecting to
  // it). If something appeared since, bind() fails with EADDRINUSE and it stays untouched.
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
