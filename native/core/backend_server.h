// A vhost-user back-end server for one device: the listening socket and at most one
// front-end connection at a time. A second front-end that connects while one is active is
// accepted and closed at once with a log line (after checking that the active one is not
// already gone, so a quick reconnect is never refused). After a disconnect every map and fd
// of that connection is released and the next front-end is served.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/event_loop.h"
#include "core/log.h"
#include "core/unique.h"
#include "core/vhost_user.h"

namespace vhc {

class BackendServer {
 public:
  BackendServer(VhostUserDevice& device, EventLoop& loop, BackendEvents& events);
  ~BackendServer();
  BackendServer(const BackendServer&) = delete;
  BackendServer& operator=(const BackendServer&) = delete;

  bool listen(const std::string& path, unsigned mode, std::string& err);
  // Serves on a socket that is already listening (socket activation: systemd created it and
  // owns its path). Takes `fd` on success; close() then closes it but leaves the path alone.
  bool listenFd(int fd, const std::string& path, std::string& err);
  // Ends the connection (if any), stops listening and removes the socket file.
  void close();
  bool listening() const { return listenFd_.valid(); }
  bool connected() const { return conn_ != nullptr; }
  const VhostUserConnection* connection() const { return conn_.get(); }

 private:
  void onAcceptable();
  void endConnection(uint64_t serial, const std::string& reason, bool error);

  VhostUserDevice& device_;
  EventLoop& loop_;
  BackendEvents& events_;
  std::string path_;
  UniqueFd listenFd_;
  bool ownsPath_ = true;  // false for an adopted (socket-activated) fd: the path is systemd's
  std::unique_ptr<VhostUserConnection> conn_;
  uint64_t serial_ = 0;  // identifies the current connection to deferred end requests
};

}  // namespace vhc
