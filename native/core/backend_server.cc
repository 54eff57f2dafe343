#include "core/backend_server.h"

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
  loop_.watch(listenFd_.get(), [this] { onAcceptable(); });
  events_.log(LogLevel::Info, strfmt("listening on '%s'", path.c_str()));
  return true;
}

void BackendServer::close() {
  if (conn_) endConnection(serial_, "device closed", false);
  if (!listenFd_) return;
  loop_.unwatch(listenFd_.get());
  listenFd_.reset();
  ::unlink(path_.c_str());
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
