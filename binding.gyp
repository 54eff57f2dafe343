{
  "targets": [
    {
      "target_name": "vhost_console",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/device_wrap.cc",
        "native/addon/uv_event_loop.cc",
        "native/core/backend_server.cc",
        "native/core/console_device.cc",
        "native/core/guest_memory.cc",
        "native/core/log.cc",
        "native/core/notify_fd.cc",
        "native/core/sigbus_guard.cc",
        "native/core/unix_socket.cc",
        "native/core/vhost_user.cc",
        "native/core/virtqueue.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-O3"],
      "cflags": ["-O2"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-O3"]
    }
  ]
}
