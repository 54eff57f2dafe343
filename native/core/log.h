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

// A token bucket for log lines a guest (or front-end) can trigger at will: `burst` lines at
// once, then `perSecond` lines a second. Lines over the budget are counted, not formatted; the
// next line let through says how many were suppressed. One limiter per source (device queue).
class LogLimiter {
 public:
  explicit LogLimiter(unsigned burst = 10, unsigned perSecond = 1)
      : burst_(burst), perSecond_(perSecond), tokens_(burst) {}
  // True if a line may be logged now; `suppressed` is then the count dropped since the last one.
  bool admit(uint64_t& suppressed);
  // For tests: the clock in nanoseconds (CLOCK_MONOTONIC by default).
  static uint64_t now();

 private:
  unsigned burst_, perSecond_;
  double tokens_;
  uint64_t last_ = 0;
  uint64_t suppressed_ = 0;
};

// Connection life-cycle, as seen by the host. Console-specific events extend this.
struct BackendEvents : LogSink {
  virtual void connected() = 0;
  virtual void disconnected(const std::string& reason) = 0;
  // A broken ring or a malformed front-end message; the connection is being ended.
  virtual void deviceError(const std::string& message) = 0;
};

}  // namespace vhc
