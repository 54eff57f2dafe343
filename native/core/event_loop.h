// What the core needs from its host's event loop: readable-fd watches and deferred work.
// The Node addon implements it with uv_poll_t; a C++ test can implement it with poll(2).
#pragma once

#include <functional>

namespace vhc {

struct EventLoop {
  virtual ~EventLoop() = default;
  // Call `onReadable` whenever `fd` is readable, until unwatch(fd). One watch per fd.
  virtual void watch(int fd, std::function<void()> onReadable) = 0;
  // Stop watching; after it returns the caller may close the fd.
  virtual void unwatch(int fd) = 0;
  // Run `task` soon, outside the current call stack (used to tear a connection down from
  // deep inside ring processing without freeing what the caller still uses).
  virtual void defer(std::function<void()> task) = 0;
};

}  // namespace vhc
