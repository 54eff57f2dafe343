#include "core/backend_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/unix_socket.h"

namespace vhc {

BackendServer::BackendServer(VhostUserDevice& device, EventLoop& loop, BackendEvents& events)
    : device_(device), loop_(loop), events_(events) {}

BackendServer::~BackendServer() { close(); }

bool BackendServer::listen(const std::string& path, unsigned mode, std::string& err) {
  if (listenFd_) {
    err = strfmt("socket '%s': already listening", path_.c_str());
    return false;
  }
  UniqueFd fd = listenUnixSocket(path, mode, err);
  if (!fd) return false;
  listenFd_ = std::move(fd);
  path_ = path;
  ownsPath_ = true;
  loop_.watch(listenFd_.get(), [this] { onAcceptable(); });
  events_.log(LogLevel::Info, strfmt("listening on '%s'", path.c_str()));
  return true;
}

bool BackendServer::listenFd(int fd, const std::string& path, std::string& err) {
  if (listenFd_) {
    err = strfmt("socket '%s': already listening", path_.c_str());
    return false;
  }
  int type = 0, accepting = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    err = strfmt("fd %d for '%s' is not a stream socket", fd, path.c_str());
    return false;
  }
  len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) {
    err = strfmt("fd %d for '%s' is not a listening socket", fd, path.c_str());
    return false;
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    err = strfmt("fd %d for '%s': fcntl failed", fd, path.c_str());
    return false;
  }
  listenFd_.reset(fd);
  path_ = path;
  ownsPath_ = false;
  loop_.watch(listenFd_.get(), [this] { onAcceptable(); });
  events_.log(LogLevel::Info, strfmt("listening on '%s' (socket from the service manager, fd %d)", path.c_str(), fd));
  return true;
}

void BackendServer::close() {
  if (conn_) endConnection(serial_, "device closed", false);
  if (!listenFd_) return;
  loop_.unwatch(listenFd_.get());
  listenFd_.reset();
  if (ownsPath_) ::unlink(path_.c_str());
}

void BackendServer::onAcceptable() {
  UniqueFd fd = acceptUnixConnection(listenFd_.get());
  if (!fd) return;
  // A front-end that just went away may still have its EOF queued: look before refusing.
  if (conn_ && !conn_->checkAlive()) endConnection(serial_, conn_->endReason(), conn_->endError());
  if (conn_) {
    events_.log(LogLevel::Warn, "refused a second front-end connection: one is already active");
    return;  // closes fd
  }
  uint64_t serial = ++serial_;
  conn_ = std::make_unique<VhostUserConnection>(
      std::move(fd), device_, loop_, events_,
      [this, serial](const std::string& reason, bool error) { endConnection(serial, reason, error); });
  events_.log(LogLevel::Info, "front-end connected");
  events_.connected();
}

void BackendServer::endConnection(uint64_t serial, const std::string& reason, bool error) {
  if (!conn_ || serial != serial_) return;  // already ended (a deferred request came late)
  if (error) {
    events_.log(LogLevel::Error, "front-end connection ended: " + reason);
    events_.deviceError(reason);
  } else {
    events_.log(LogLevel::Info, "front-end disconnected: " + reason);
  }
  conn_.reset();
  events_.disconnected(reason);
}

}  // namespace vhc
