// vhc::EventLoop on libuv (Node's loop): uv_poll_t per watched fd, a uv_async_t for deferred
// work. After every callback it runs `afterEach`, which the addon uses to deliver the events
// the core queued to JavaScript (so JS never runs in the middle of a ring walk).
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <vector>

#include "core/event_loop.h"

namespace vhc {

class UvEventLoop : public EventLoop {
 public:
  UvEventLoop(uv_loop_t* loop, std::function<void()> afterEach);
  ~UvEventLoop() override;
  UvEventLoop(const UvEventLoop&) = delete;
  UvEventLoop& operator=(const UvEventLoop&) = delete;

  void watch(int fd, std::function<void()> onReadable) override;
  void unwatch(int fd) override;
  void defer(std::function<void()> task) override;
  // Run afterEach soon (from a fresh loop callback), e.g. for events queued by a JS call.
  void wake() { uv_async_send(async_); }
  size_t watchCount() const { return watches_.size(); }

 private:
  struct Watch {
    uv_poll_t handle;
    std::function<void()> onReadable;
    UvEventLoop* owner;
  };
  static void onPoll(uv_poll_t* handle, int status, int events);
  static void onAsync(uv_async_t* handle);

  uv_loop_t* loop_;
  std::function<void()> afterEach_;
  std::map<int, Watch*> watches_;
  uv_async_t* async_;
  std::vector<std::function<void()>> tasks_;
};

}  // namespace vhc
