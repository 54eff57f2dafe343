// The JS-visible Device: one vhost-user console device (server + console + event loop glue).
// Core events are queued while native code runs and delivered to the single JS callback
// (name, ...args) from a fresh loop callback, never from inside a JS call into the addon.
#pragma once

#include <napi.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "addon/uv_event_loop.h"
#include "core/backend_server.h"
#include "core/console_device.h"

namespace vhc {

class DeviceWrap : public Napi::ObjectWrap<DeviceWrap>, public ConsoleEvents {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit DeviceWrap(const Napi::CallbackInfo& info);
  ~DeviceWrap() override;

  // ConsoleEvents
  void log(LogLevel level, const std::string& message) override;
  void connected() override { push(Kind::Connected); }
  void disconnected(const std::string& reason) override { push(Kind::Disconnected, 0, false, reason); }
  void deviceError(const std::string& message) override { push(Kind::DeviceError, 0, false, message); }
  void driverReady() override { push(Kind::DriverReady); }
  void portReady(uint32_t nr) override { push(Kind::PortReady, nr); }
  void guestOpen(uint32_t nr, bool open) override { push(Kind::GuestOpen, nr, open); }
  void data(uint32_t nr, const uint8_t* bytes, size_t len) override;
  void writable(uint32_t nr) override { push(Kind::Writable, nr); }

 private:
  enum class Kind { Log, Connected, Disconnected, DeviceError, DriverReady, PortReady, GuestOpen, Data, Writable };
  struct Event {
    Kind kind = Kind::Log;
    uint32_t nr = 0;
    bool flag = false;
    std::string text;
    LogLevel level = LogLevel::Info;
    std::vector<uint8_t> bytes;
  };
  Event& push(Kind kind, uint32_t nr = 0, bool flag = false, std::string text = {}) {
    Event& e = events_.emplace_back();
    e.kind = kind;
    e.nr = nr;
    e.flag = flag;
    e.text = std::move(text);
    return e;
  }
  void deliver();    // events -> JS (only from loop callbacks)
  void afterCall();  // after a JS call into the addon: deliver soon
  void shutdown();
  static void cleanupHook(void* arg);

  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value ListenFd(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value AddPort(const Napi::CallbackInfo& info);
  Napi::Value RemovePort(const Napi::CallbackInfo& info);
  Napi::Value SetHostOpen(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value SetOutputPaused(const Napi::CallbackInfo& info);
  Napi::Value SetConsoleSize(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value IsConnected(const Napi::CallbackInfo& info);

  Napi::Env env_;
  Napi::FunctionReference callback_;
  std::deque<Event> events_;
  bool delivering_ = false;
  bool held_ = false;  // a strong reference to the JS object while listening
  std::string socketPath_;
  uint32_t socketMode_ = 0600;
  std::unique_ptr<UvEventLoop> loop_;
  std::unique_ptr<ConsoleDevice> device_;
  std::unique_ptr<BackendServer> server_;
};

}  // namespace vhc
