#include "core/log.h"

#include <time.h>

#include <cstdio>
#include <vector>

namespace vhc {

const char* logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "info";
}

std::string strfmt(const char* fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return fmt;
  if (static_cast<size_t>(n) < sizeof small) return std::string(small, static_cast<size_t>(n));
  std::vector<char> big(static_cast<size_t>(n) + 1);
  va_start(ap, fmt);
  std::vsnprintf(big.data(), big.size(), fmt, ap);
  va_end(ap);
  return std::string(big.data(), static_cast<size_t>(n));
}

uint64_t LogLimiter::now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool LogLimiter::admit(uint64_t& suppressed) {
  uint64_t t = now();
  if (last_ != 0) {
    tokens_ += static_cast<double>(t - last_) * perSecond_ / 1e9;
    if (tokens_ > burst_) tokens_ = burst_;
  }
  last_ = t;
  if (tokens_ < 1) {
    ++suppressed_;
    return false;
  }
  tokens_ -= 1;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace vhc
