#include "addon/device_wrap.h"

namespace vhc {

namespace {

Napi::Value throwError(Napi::Env env, const std::string& msg, bool typeError = false) {
  if (typeError) Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  else Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// An integer argument in [lo, hi], or false with a TypeError thrown.
bool intArg(const Napi::CallbackInfo& info, size_t i, const char* what, double lo, double hi, uint32_t& out) {
  if (i >= info.Length() || !info[i].IsNumber()) {
    throwError(info.Env(), std::string(what) + " must be a number", true);
    return false;
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= lo && v <= hi) || v != static_cast<double>(static_cast<uint64_t>(v))) {
    throwError(info.Env(), strfmt("%s %g is not an integer in %g..%g", what, v, lo, hi), true);
    return false;
  }
  out = static_cast<uint32_t>(v);
  return true;
}

bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* what, bool& out) {
  if (i >= info.Length() || !info[i].IsBoolean()) {
    throwError(info.Env(), std::string(what) + " must be a boolean", true);
    return false;
  }
  out = info[i].As<Napi::Boolean>().Value();
  return true;
}

// An optional integer property of the options object.
bool intOption(Napi::Object o, const char* key, double lo, double hi, uint32_t& out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsNumber()) return throwError(o.Env(), strfmt("option %s must be a number", key), true), false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<uint64_t>(d)))
    return throwError(o.Env(), strfmt("option %s %g is not an integer in %g..%g", key, d, lo, hi), true), false;
  out = static_cast<uint32_t>(d);
  return true;
}

// A Buffer that owns the bytes gathered from guest memory (no second copy).
Napi::Value adoptBytes(Napi::Env env, std::vector<uint8_t>&& bytes) {
  if (bytes.empty()) return Napi::Buffer<uint8_t>::New(env, 0);
  auto* owned = new std::vector<uint8_t>(std::move(bytes));
  return Napi::Buffer<uint8_t>::New(
      env, owned->data(), owned->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, owned);
}

}  // namespace

Napi::Function DeviceWrap::Define(Napi::Env env) {
  return DefineClass(env, "Device",
                     {
                         InstanceMethod<&DeviceWrap::Listen>("listen"),
                         InstanceMethod<&DeviceWrap::ListenFd>("listenFd"),
                         InstanceMethod<&DeviceWrap::Close>("close"),
                         InstanceMethod<&DeviceWrap::AddPort>("addPort"),
                         InstanceMethod<&DeviceWrap::RemovePort>("removePort"),
                         InstanceMethod<&DeviceWrap::SetHostOpen>("setHostOpen"),
                         InstanceMethod<&DeviceWrap::Write>("write"),
                         InstanceMethod<&DeviceWrap::SetOutputPaused>("setOutputPaused"),
                         InstanceMethod<&DeviceWrap::SetConsoleSize>("setConsoleSize"),
                         InstanceMethod<&DeviceWrap::Stats>("stats"),
                         InstanceMethod<&DeviceWrap::IsConnected>("isConnected"),
                     });
}

// new Device({ socketPath, socketMode?, maxPorts, multiport?, cols, rows, resizeOrder? }, callback)
DeviceWrap::DeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceWrap>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    throwError(env, "new Device(options, callback): options must be an object and callback a function", true);
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value path = o.Get("socketPath");
  if (!path.IsString()) {
    throwError(env, "option socketPath must be a string", true);
    return;
  }
  socketPath_ = path.As<Napi::String>().Utf8Value();
  ConsoleConfig cfg;
  uint32_t maxPorts = 1, cols = cfg.cols, rows = cfg.rows;
  if (!intOption(o, "socketMode", 0, 07777, socketMode_) ||
      !intOption(o, "maxPorts", 1, ConsoleDevice::kMaxPorts, maxPorts) || !intOption(o, "cols", 0, 65535, cols) ||
      !intOption(o, "rows", 0, 65535, rows))
    return;
  cfg.maxPorts = maxPorts;
  cfg.cols = static_cast<uint16_t>(cols);
  cfg.rows = static_cast<uint16_t>(rows);
  Napi::Value mp = o.Get("multiport");
  if (!mp.IsUndefined() && !mp.IsBoolean()) {
    throwError(env, "option multiport must be a boolean", true);
    return;
  }
  cfg.multiport = mp.IsUndefined() || mp.As<Napi::Boolean>().Value();
  Napi::Value order = o.Get("resizeOrder");
  if (!order.IsUndefined()) {
    std::string s = order.IsString() ? order.As<Napi::String>().Utf8Value() : "";
    if (s != "rows-cols" && s != "cols-rows") {
      throwError(env, "option resizeOrder must be 'rows-cols' or 'cols-rows'", true);
      return;
    }
    cfg.resizeColsFirst = s == "cols-rows";
  }
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  loop_ = std::make_unique<UvEventLoop>(loop, [this] { deliver(); });
  device_ = std::make_unique<ConsoleDevice>(cfg, *this);
  server_ = std::make_unique<BackendServer>(*device_, *loop_, *this);
  napi_add_env_cleanup_hook(env, cleanupHook, this);
}

DeviceWrap::~DeviceWrap() {
  if (server_) napi_remove_env_cleanup_hook(env_, cleanupHook, this);
  shutdown();
}

void DeviceWrap::cleanupHook(void* arg) {
  // Node is exiting: remove the socket file and release the front-end's memory.
  static_cast<DeviceWrap*>(arg)->shutdown();
}

void DeviceWrap::shutdown() {
  server_.reset();  // closes the connection and the socket (its events are not delivered)
  device_.reset();
  loop_.reset();
  events_.clear();
}

void DeviceWrap::log(LogLevel level, const std::string& message) { push(Kind::Log, 0, false, message).level = level; }

void DeviceWrap::data(uint32_t nr, const uint8_t* bytes, size_t len) {
  // Coalesce the buffers of one wake-up: one 'data' per port and batch, not per buffer.
  if (events_.empty() || events_.back().kind != Kind::Data || events_.back().nr != nr) push(Kind::Data, nr);
  auto& b = events_.back().bytes;
  b.insert(b.end(), bytes, bytes + len);
}

void DeviceWrap::afterCall() {
  if (!events_.empty() && loop_) loop_->wake();
}

void DeviceWrap::deliver() {
  if (delivering_ || events_.empty() || callback_.IsEmpty()) return;
  delivering_ = true;
  Napi::Env env = env_;
  Napi::HandleScope scope(env);
  while (!events_.empty()) {
    Event e = std::move(events_.front());
    events_.pop_front();
    std::vector<napi_value> args;
    auto str = [&](const std::string& s) { args.push_back(Napi::String::New(env, s)); };
    auto num = [&](uint32_t n) { args.push_back(Napi::Number::New(env, n)); };
    switch (e.kind) {
      case Kind::Log:
        str("log");
        str(logLevelName(e.level));
        str(e.text);
        break;
      case Kind::Connected: str("connected"); break;
      case Kind::Disconnected:
        str("disconnected");
        str(e.text);
        break;
      case Kind::DeviceError:
        str("device-error");
        str(e.text);
        break;
      case Kind::DriverReady: str("driver-ready"); break;
      case Kind::PortReady:
        str("port-ready");
        num(e.nr);
        break;
      case Kind::GuestOpen:
        str("guest-open");
        num(e.nr);
        args.push_back(Napi::Boolean::New(env, e.flag));
        break;
      case Kind::Data:
        str("data");
        num(e.nr);
        args.push_back(adoptBytes(env, std::move(e.bytes)));
        break;
      case Kind::Writable:
        str("writable");
        num(e.nr);
        break;
    }
    callback_.MakeCallback(env.Global(), args);
    if (env.IsExceptionPending()) {
      // Nobody above us can catch it: report it like any uncaught exception.
      Napi::Error err = env.GetAndClearPendingException();
      napi_fatal_exception(env, err.Value());
    }
    if (!loop_) break;  // the environment is shutting down
  }
  delivering_ = false;
}

Napi::Value DeviceWrap::Listen(const Napi::CallbackInfo& info) {
  if (!server_) return throwError(info.Env(), "device is shut down");
  std::string err;
  if (!server_->listen(socketPath_, socketMode_, err)) return throwError(info.Env(), err);
  if (!held_) {
    Ref();  // a listening device must not be collected under its watches
    held_ = true;
  }
  afterCall();
  return info.Env().Undefined();
}

// listenFd(fd): serve on an already-listening socket (socket activation); the path stays systemd's.
Napi::Value DeviceWrap::ListenFd(const Napi::CallbackInfo& info) {
  if (!server_) return throwError(info.Env(), "device is shut down");
  if (info.Length() < 1 || !info[0].IsNumber()) return throwError(info.Env(), "listenFd(fd): fd must be a number");
  std::string err;
  if (!server_->listenFd(info[0].As<Napi::Number>().Int32Value(), socketPath_, err)) return throwError(info.Env(), err);
  if (!held_) {
    Ref();
    held_ = true;
  }
  afterCall();
  return info.Env().Undefined();
}

Napi::Value DeviceWrap::Close(const Napi::CallbackInfo& info) {
  if (server_) server_->close();
  if (held_) {
    Unref();
    held_ = false;
  }
  // Deliver the 'disconnected' of a closed connection now: with the socket closed nothing
  // may keep the loop alive long enough for a later delivery.
  deliver();
  return info.Env().Undefined();
}

// addPort(nr, name: string | undefined | null, console: boolean)
Napi::Value DeviceWrap::AddPort(const Napi::CallbackInfo& info) {
  uint32_t nr;
  bool console;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr) || !boolArg(info, 2, "console", console))
    return info.Env().Undefined();
  std::string name;
  bool named = info.Length() > 1 && info[1].IsString();
  if (named) name = info[1].As<Napi::String>().Utf8Value();
  else if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull())
    return throwError(info.Env(), "port name must be a string or undefined", true);
  std::string err;
  bool ok = device_->addPort(nr, named ? &name : nullptr, console, err);
  afterCall();
  return ok ? info.Env().Undefined() : throwError(info.Env(), err);
}

Napi::Value DeviceWrap::RemovePort(const Napi::CallbackInfo& info) {
  uint32_t nr;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr)) return info.Env().Undefined();
  std::string err;
  bool ok = device_->removePort(nr, err);
  afterCall();
  return ok ? info.Env().Undefined() : throwError(info.Env(), err);
}

Napi::Value DeviceWrap::SetHostOpen(const Napi::CallbackInfo& info) {
  uint32_t nr;
  bool open;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr) || !boolArg(info, 1, "open", open))
    return info.Env().Undefined();
  std::string err;
  bool ok = device_->setHostOpen(nr, open, err);
  afterCall();
  return ok ? info.Env().Undefined() : throwError(info.Env(), err);
}

// write(nr, Uint8Array) -> bytes the guest took
Napi::Value DeviceWrap::Write(const Napi::CallbackInfo& info) {
  uint32_t nr;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr)) return info.Env().Undefined();
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    return throwError(info.Env(), "write(nr, data): data must be a Uint8Array", true);
  Napi::Uint8Array a = info[1].As<Napi::Uint8Array>();
  size_t n = device_->write(nr, a.Data(), a.ByteLength());
  afterCall();
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value DeviceWrap::SetOutputPaused(const Napi::CallbackInfo& info) {
  uint32_t nr;
  bool paused;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr) || !boolArg(info, 1, "paused", paused))
    return info.Env().Undefined();
  std::string err;
  bool ok = device_->setOutputPaused(nr, paused, err);
  afterCall();
  return ok ? info.Env().Undefined() : throwError(info.Env(), err);
}

Napi::Value DeviceWrap::SetConsoleSize(const Napi::CallbackInfo& info) {
  uint32_t cols, rows;
  if (!device_ || !intArg(info, 0, "cols", 0, 65535, cols) || !intArg(info, 1, "rows", 0, 65535, rows))
    return info.Env().Undefined();
  device_->setConsoleSize(static_cast<uint16_t>(cols), static_cast<uint16_t>(rows));
  afterCall();
  return info.Env().Undefined();
}

// stats(nr) -> { bytesFromGuest, bytesToGuest } | undefined
Napi::Value DeviceWrap::Stats(const Napi::CallbackInfo& info) {
  uint32_t nr;
  if (!device_ || !intArg(info, 0, "port nr", 0, 0xffffffff, nr)) return info.Env().Undefined();
  ConsoleDevice::PortStats s;
  if (!device_->stats(nr, s)) return info.Env().Undefined();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("bytesFromGuest", Napi::Number::New(info.Env(), static_cast<double>(s.fromGuest)));
  o.Set("bytesToGuest", Napi::Number::New(info.Env(), static_cast<double>(s.toGuest)));
  return o;
}

Napi::Value DeviceWrap::IsConnected(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), server_ && server_->connected());
}

}  // namespace vhc
