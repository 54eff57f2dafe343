// Logging and host-event seams of the native core. The core never prints: it reports to an
// interface the embedder (the Node addon, or a C++ test) implements.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vhc {

enum class LogLevel { Debug, Info, Warn, Error };

const char* logLevelName(LogLevel level);

// printf-style formatting into a std::string (log lines and error messages).
std::string strfmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

struct LogSink {
  virtual ~LogSink() = default;
  virtual void log(LogLevel level, const std::string& message) = 0;
};

// Connection life-cycle, as seen by the host. Console-specific events extend this.
struct BackendEvents : LogSink {
  virtual void connected() = 0;
  virtual void disconnected(const std::string& reason) = 0;
  // A broken ring or a malformed front-end message; the connection is being ended.
  virtual void deviceError(const std::string& message) = 0;
};

}  // namespace vhc
