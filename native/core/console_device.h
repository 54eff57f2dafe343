// The virtio-console device (virtio spec "Console Device", as Linux's virtio_console driver
// uses it) on top of the generic vhost-user transport: queue layout, config space, the
// multiport control protocol, and the data paths of every port.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/vhost_user.h"
#include "core/virtqueue.h"

namespace vhc {

// What the console reports to its host, on top of the connection life-cycle.
struct ConsoleEvents : BackendEvents {
  virtual void driverReady() = 0;
  virtual void portReady(uint32_t nr) = 0;
  virtual void guestOpen(uint32_t nr, bool open) = 0;
  // Guest output, in order; called once per buffer, so the sink should coalesce consecutive
  // calls for one port into one delivery.
  virtual void data(uint32_t nr, const uint8_t* bytes, size_t len) = 0;
  virtual void writable(uint32_t nr) = 0;
};

struct ConsoleConfig {
  uint32_t maxPorts = 1;  // max_nr_ports
  bool multiport = true;  // offer VIRTIO_CONSOLE_F_MULTIPORT
  uint16_t cols = 80, rows = 24;
  bool resizeColsFirst = false;  // RESIZE payload order; Linux <= 6.14 reads rows first
};

class ConsoleDevice : public VhostUserDevice {
 public:
  static constexpr uint32_t kMaxPorts = 127;  // vhost-user queue indexes are 8 bits
  static constexpr size_t kMaxNameLen = 255;
  static constexpr size_t kMaxPendingControl = 4096;
  // Descriptors one host write or one queue service may visit before it yields (counted by
  // the queue, zero-length and indirect ones included): what one call costs is bounded by
  // this plus one chain, whatever the queue size (vhost-user allows 32768).
  static constexpr uint64_t kDescriptorBudget = 4096;

  ConsoleDevice(const ConsoleConfig& config, ConsoleEvents& events);

  // --- host side ---
  bool addPort(uint32_t nr, const std::string* name, bool console, std::string& err);
  bool removePort(uint32_t nr, std::string& err);
  bool setHostOpen(uint32_t nr, bool open, std::string& err);
  // Host -> guest: copies what the posted rx buffers take; returns the count. 0 for a port
  // the guest has not opened (Linux would discard the data).
  size_t write(uint32_t nr, const uint8_t* data, size_t len);
  bool setOutputPaused(uint32_t nr, bool paused, std::string& err);
  void setConsoleSize(uint16_t cols, uint16_t rows);
  struct PortStats {
    uint64_t fromGuest = 0, toGuest = 0;
  };
  bool stats(uint32_t nr, PortStats& out) const;

  // --- VhostUserDevice ---
  uint64_t features() const override;
  unsigned queueCount() const override { return config_.multiport ? 2 * (config_.maxPorts + 1) : 2; }
  uint32_t configSize() const override { return 12; }
  void readConfig(uint32_t offset, uint8_t* out, uint32_t len) override;
  bool writeConfig(uint32_t offset, const uint8_t* data, uint32_t len) override;
  void attach(DeviceTransport* transport) override;
  void reset() override;
  void queueReady(unsigned index) override;
  void queueKicked(unsigned index) override;

 private:
  struct Port {
    uint32_t nr = 0;
    std::string name;
    bool hasName = false;
    bool console = false;
    bool hostOpen = false;
    bool guestOpen = false;
    bool ready = false;         // PORT_READY seen (single-port: queues up)
    bool paused = false;        // output paused by the host (generic ports only)
    bool wantWritable = false;  // a write came back short: report new rx buffers
    PortStats stats;
  };

  bool multiportActive() const;
  // Drops what the device knows of the driver's view of the ports (ready, guest-open) and the
  // control messages not yet delivered.
  void forgetPorts();
  Port* findPort(uint32_t nr);
  Port* portOfQueue(unsigned index);
  static unsigned rxQueueOf(uint32_t nr) { return nr == 0 ? 0 : 2 * nr + 2; }
  void serviceQueue(unsigned index);
  void drainOutput(unsigned index, Port* port);
  void handleControlOutput();
  void handleControl(uint32_t id, uint16_t event, uint16_t value);
  void sendControl(uint32_t id, uint16_t event, uint16_t value, const uint8_t* extra = nullptr, size_t extraLen = 0);
  void sendResize(const Port& port);
  void flushControl();
  void log(LogLevel level, const std::string& msg) { events_.log(level, msg); }
  // A line the guest can trigger at will: rate-limited per source (a queue index), with the
  // count of what was suppressed on the next line let through.
  void guestLog(unsigned source, LogLevel level, const char* fmt, ...) __attribute__((format(printf, 4, 5)));

  ConsoleConfig config_;
  ConsoleEvents& events_;
  DeviceTransport* t_ = nullptr;
  std::map<uint32_t, Port> ports_;
  bool driverReady_ = false;
  std::deque<std::vector<uint8_t>> control_;  // control messages waiting for guest buffers
  std::map<unsigned, LogLimiter> limiters_;   // per source of guest-triggered log lines
  Chain chain_;                               // scratch, reused to avoid allocations
};

}  // namespace vhc
