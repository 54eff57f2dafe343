#include "addon/uv_event_loop.h"

namespace vhc {

UvEventLoop::UvEventLoop(uv_loop_t* loop, std::function<void()> afterEach)
    : loop_(loop), afterEach_(std::move(afterEach)), async_(new uv_async_t) {
  uv_async_init(loop_, async_, onAsync);
  async_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // the watches keep the process alive, not this
}

UvEventLoop::~UvEventLoop() {
  while (!watches_.empty()) unwatch(watches_.begin()->first);
  tasks_.clear();
  async_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(async_), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

void UvEventLoop::watch(int fd, std::function<void()> onReadable) {
  unwatch(fd);
  auto* w = new Watch{{}, std::move(onReadable), this};
  if (uv_poll_init(loop_, &w->handle, fd) != 0) {
    delete w;
    return;  // not pollable (e.g. a regular file): the fd stays silent
  }
  w->handle.data = w;
  uv_poll_start(&w->handle, UV_READABLE, onPoll);
  watches_[fd] = w;
}

void UvEventLoop::unwatch(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  Watch* w = it->second;
  watches_.erase(it);
  // uv_poll_stop removes the fd from epoll at once, so the caller may close it now. The Watch
  // lives until the close callback: its onReadable may be the function running right now.
  uv_poll_stop(&w->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->handle), [](uv_handle_t* h) { delete static_cast<Watch*>(h->data); });
}

void UvEventLoop::defer(std::function<void()> task) {
  tasks_.push_back(std::move(task));
  uv_async_send(async_);
}

void UvEventLoop::onPoll(uv_poll_t* handle, int /*status*/, int /*events*/) {
  // On an error status the callback still runs: its read reports the failure.
  auto* w = static_cast<Watch*>(handle->data);
  UvEventLoop* owner = w->owner;
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(handle))) return;
  w->onReadable();
  owner->afterEach_();
}

void UvEventLoop::onAsync(uv_async_t* handle) {
  auto* self = static_cast<UvEventLoop*>(handle->data);
  if (!self) return;
  while (!self->tasks_.empty()) {
    std::vector<std::function<void()>> tasks;
    tasks.swap(self->tasks_);
    for (auto& t : tasks) t();
  }
  self->afterEach_();
}

}  // namespace vhc
