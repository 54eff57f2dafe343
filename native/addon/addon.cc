// Module entry: exports { Device }. Everything the guest or the front-end can touch lives in
// native/core (plain C++); this layer only adapts it to Node.
#include <napi.h>

#include "addon/device_wrap.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Device", vhc::DeviceWrap::Define(env));
  return exports;
}

NODE_API_MODULE(vhost_console, Init)
