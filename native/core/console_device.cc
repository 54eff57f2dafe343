#include "core/console_device.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace vhc {

namespace {

constexpr uint64_t kFeatureSize = 1ull << 0, kFeatureMultiport = 1ull << 1, kFeatureEmergWrite = 1ull << 2;

// Control events (virtio spec 5.3.6.2; names as in Linux).
enum ControlEvent : uint16_t {
  kDeviceReady = 0,
  kPortAdd = 1,
  kPortRemove = 2,
  kPortReady = 3,
  kConsolePort = 4,
  kResize = 5,
  kPortOpen = 6,
  kPortName = 7,
};
constexpr unsigned kCtrlRx = 2, kCtrlTx = 3;
constexpr size_t kControlHeader = 8;  // le32 id, le16 event, le16 value

constexpr unsigned kEmergSource = 1000;  // limiter key of emergency writes (not a queue)
// Guest output gathered per service call before it is handed over (bounds the memory one
// wake-up can pin), and the most one buffer chain may carry: Linux writes at most 32 KiB per
// port buffer and a page per console buffer, so a chain far beyond that is a hostile guest
// pointing many descriptors at the same memory.
constexpr uint64_t kBatchBytes = 4u << 20;
constexpr uint64_t kMaxChainBytes = 4u << 20;

void putLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void putLe32(uint8_t* p, uint32_t v) {
  putLe16(p, static_cast<uint16_t>(v));
  putLe16(p + 2, static_cast<uint16_t>(v >> 16));
}

// Copies up to `len` bytes into the device-writable buffers of `chain`; returns the count.
size_t fillChain(const Chain& chain, const uint8_t* data, size_t len) {
  size_t done = 0;
  for (const Segment& s : chain.segs) {
    if (!s.writable || done == len) continue;
    size_t n = std::min<size_t>(s.len, len - done);
    std::memcpy(s.ptr, data + done, n);
    done += n;
  }
  return done;
}

}  // namespace

ConsoleDevice::ConsoleDevice(const ConsoleConfig& config, ConsoleEvents& events) : config_(config), events_(events) {}

uint64_t ConsoleDevice::features() const {
  return kFeatureSize | (config_.multiport ? kFeatureMultiport : 0) | kFeatureEmergWrite | kFeatureVersion1 |
         kFeatureEventIdx | kFeatureIndirectDesc | kFeatureProtocolFeatures;
}

bool ConsoleDevice::multiportActive() const {
  // A driver that sent DEVICE_READY negotiated MULTIPORT; it still has while a reset (SET_STATUS
  // 0 in a stop) has cleared the acked features until the next SET_FEATURES, so control
  // messages meanwhile (a host opening a port) are queued for it, not dropped.
  return t_ && ((t_->ackedFeatures() & kFeatureMultiport) || driverReady_);
}

ConsoleDevice::Port* ConsoleDevice::findPort(uint32_t nr) {
  auto it = ports_.find(nr);
  return it == ports_.end() ? nullptr : &it->second;
}

ConsoleDevice::Port* ConsoleDevice::portOfQueue(unsigned index) {
  if (index < 2) return findPort(0);
  if (index < 4) return nullptr;
  return findPort((index - 2) / 2);
}

// ---------------------------------------------------------------- host side

bool ConsoleDevice::addPort(uint32_t nr, const std::string* name, bool console, std::string& err) {
  if (nr >= config_.maxPorts)
    return err = strfmt("port %u: nr is not below max_nr_ports %u", nr, config_.maxPorts), false;
  if (!config_.multiport && nr != 0)
    return err = strfmt("port %u: without multiport the device has only port 0", nr), false;
  if (!config_.multiport && !console) return err = "port 0: without multiport the only port is the console", false;
  if (ports_.count(nr)) return err = strfmt("port %u already exists", nr), false;
  if (name) {
    if (name->empty() || name->size() > kMaxNameLen || name->find('\0') != std::string::npos)
      return err = strfmt("port %u: name '%s' must be 1..%zu bytes without NUL", nr, name->c_str(), kMaxNameLen), false;
    for (const auto& [otherNr, other] : ports_)
      if (other.hasName && other.name == *name)
        return err = strfmt("port %u: name '%s' is already used by port %u", nr, name->c_str(), otherNr), false;
  }
  Port& p = ports_[nr];
  p.nr = nr;
  p.hasName = name != nullptr;
  if (name) p.name = *name;
  p.console = console;
  // A port added at run time is announced now; at start-up DEVICE_READY announces all.
  if (multiportActive() && driverReady_) sendControl(nr, kPortAdd, 1);
  return true;
}

bool ConsoleDevice::removePort(uint32_t nr, std::string& err) {
  if (!ports_.count(nr)) return err = strfmt("port %u does not exist", nr), false;
  if (multiportActive() && driverReady_) sendControl(nr, kPortRemove, 1);
  ports_.erase(nr);
  return true;
}

bool ConsoleDevice::setHostOpen(uint32_t nr, bool open, std::string& err) {
  Port* p = findPort(nr);
  if (!p) return err = strfmt("port %u does not exist", nr), false;
  if (p->hostOpen == open) return true;
  p->hostOpen = open;
  if (multiportActive() && p->ready) sendControl(nr, kPortOpen, open ? 1 : 0);
  return true;
}

bool ConsoleDevice::setOutputPaused(uint32_t nr, bool paused, std::string& err) {
  Port* p = findPort(nr);
  if (!p) return err = strfmt("port %u does not exist", nr), false;
  p->paused = paused;
  if (!paused) serviceQueue(rxQueueOf(nr) + 1);  // take what the guest queued meanwhile
  return true;
}

bool ConsoleDevice::stats(uint32_t nr, PortStats& out) const {
  auto it = ports_.find(nr);
  if (it == ports_.end()) return false;
  out = it->second.stats;
  return true;
}

size_t ConsoleDevice::write(uint32_t nr, const uint8_t* data, size_t len) {
  Port* p = findPort(nr);
  if (!p || !p->guestOpen || !t_ || len == 0) return 0;
  unsigned index = rxQueueOf(nr);
  Virtqueue* q = t_->queue(index);
  if (!q) {
    p->wantWritable = true;
    return 0;
  }
  size_t done = 0;
  const uint64_t start = q->visited();
  bool spent = false;
  int r = 0;
  for (;;) {
    while (done < len && (r = q->pop(chain_)) == 1) {
      size_t n = fillChain(chain_, data + done, len - done);
      if (n == 0) {
        // It would take nothing and cost a pop: a guest re-posting such buffers as fast as
        // they come back would keep this write going for ever.
        r = q->fault(strfmt("receive chain %u has no device-writable bytes", chain_.head));
        break;
      }
      q->push(chain_.head, static_cast<uint32_t>(n));
      done += n;
      if (q->visited() - start >= kDescriptorBudget) {
        spent = true;
        break;
      }
    }
    if (r < 0 || spent || done == len || !q->rearm()) break;
  }
  // The queue is broken and the connection is being ended: the chains filled so far were
  // never published (no flush), so the guest got none of this write; say so to the host.
  if (r < 0) return 0;
  q->flush();  // one used-index update and at most one interrupt per write
  if (done < len) {
    p->wantWritable = true;
    // Out of budget with buffers left: come back from the loop to report them writable.
    if (spent) q->kickSelf();
  }
  p->stats.toGuest += done;
  return done;
}

void ConsoleDevice::setConsoleSize(uint16_t cols, uint16_t rows) {
  config_.cols = cols;
  config_.rows = rows;
  if (!t_) return;
  if (multiportActive()) {
    // Multiport Linux ignores config interrupts: the size travels as RESIZE messages.
    for (const auto& [nr, p] : ports_)
      if (p.console && p.ready) sendResize(p);
  } else if (!t_->notifyConfigChange()) {
    log(LogLevel::Debug, "console size changed but the front-end has no back-end channel to be told");
  }
}

// ---------------------------------------------------------------- config space

void ConsoleDevice::readConfig(uint32_t offset, uint8_t* out, uint32_t len) {
  uint8_t cfg[12] = {};
  putLe16(cfg, config_.cols);
  putLe16(cfg + 2, config_.rows);
  putLe32(cfg + 4, config_.maxPorts);
  // emerg_wr (8..11) reads as 0
  std::memcpy(out, cfg + offset, len);  // the transport checked offset + len <= 12
}

bool ConsoleDevice::writeConfig(uint32_t offset, const uint8_t* data, uint32_t len) {
  // Only emerg_wr is writable: its low byte is one character of console output.
  if (offset != 8 || len == 0) return false;
  Port* target = findPort(0);
  if (!target || !target->console)
    for (auto& [nr, p] : ports_)
      if (p.console) {
        target = &p;
        break;
      }
  if (!target) {
    guestLog(kEmergSource, LogLevel::Debug, "emergency write with no console port: dropped");
    return true;
  }
  target->stats.fromGuest += 1;
  events_.data(target->nr, data, 1);
  return true;
}

// ---------------------------------------------------------------- connection life-cycle

void ConsoleDevice::attach(DeviceTransport* transport) {
  driverReady_ = false;
  forgetPorts();
  limiters_.clear();
  t_ = transport;
}

void ConsoleDevice::reset() {
  // Nothing of the driver's view is dropped: a front-end resets the device when it stops it
  // (QEMU's vhost_dev_stop may end with SET_STATUS 0) and the same guest driver goes on after
  // the restart without announcing its ports again. A new driver announces itself with
  // DEVICE_READY, which starts the ports over (handleControl); a new connection does too.
}

void ConsoleDevice::forgetPorts() {
  control_.clear();
  for (auto& [nr, p] : ports_) {
    p.ready = false;
    p.wantWritable = false;
    if (p.guestOpen) {
      p.guestOpen = false;
      events_.guestOpen(nr, false);
    }
  }
}

void ConsoleDevice::queueReady(unsigned index) {
  // Without multiport there is no handshake: port 0 is the console as soon as its queues run.
  if (!multiportActive() && index < 2) {
    Port* p = findPort(0);
    if (p && !p->ready) {
      p->ready = true;
      events_.portReady(0);
      p->guestOpen = true;
      events_.guestOpen(0, true);
    }
  }
  serviceQueue(index);
}

void ConsoleDevice::queueKicked(unsigned index) { serviceQueue(index); }

void ConsoleDevice::serviceQueue(unsigned index) {
  if (!t_ || !t_->queue(index)) return;
  bool multiport = multiportActive();
  if (multiport && index == kCtrlRx) return flushControl();
  if (multiport && index == kCtrlTx) return handleControlOutput();
  Port* port = portOfQueue(index);
  if (index % 2 == 1) return drainOutput(index, port);
  // An rx queue: the guest posted buffers.
  if (port && port->wantWritable) {
    port->wantWritable = false;
    events_.writable(port->nr);
  }
}

// ---------------------------------------------------------------- guest -> host

void ConsoleDevice::drainOutput(unsigned index, Port* port) {
  // A paused generic port is left alone: the guest's writes block until the host resumes.
  // The console is never held: Linux busy-waits for each console buffer.
  if (port && port->paused && !port->console) return;
  Virtqueue* q = t_->queue(index);
  const uint64_t start = q->visited();
  bool spent = false;
  uint64_t bytes = 0;
  int r = 0;
  for (;;) {
    while (!spent && (r = q->pop(chain_)) == 1) {
      spent = q->visited() - start >= kDescriptorBudget;
      uint64_t chainBytes = 0;
      for (const Segment& s : chain_.segs) chainBytes += s.writable ? 0 : s.len;
      if (chainBytes > kMaxChainBytes)
        return t_->fail(strfmt("queue %u: chain %u carries %llu bytes, more than the %llu a console buffer may", index,
                               chain_.head, (unsigned long long)chainBytes, (unsigned long long)kMaxChainBytes));
      if (chainBytes == 0) {
        q->fault(strfmt("transmit chain %u carries no bytes", chain_.head));
        return;
      }
      for (const Segment& s : chain_.segs) {
        if (s.writable || !port) continue;  // data for a port that is gone is dropped
        port->stats.fromGuest += s.len;
        events_.data(port->nr, s.ptr, s.len);
      }
      q->push(chain_.head, 0);
      bytes += chainBytes;
      if (bytes >= kBatchBytes) spent = true;
    }
    if (r < 0) return;
    q->flush();
    if (spent) return q->kickSelf();
    if (!q->rearm()) return;
  }
}

void ConsoleDevice::handleControlOutput() {
  Virtqueue* q = t_->queue(kCtrlTx);
  const uint64_t start = q->visited();
  bool spent = false;
  int r = 0;
  for (;;) {
    while (!spent && (r = q->pop(chain_)) == 1) {
      spent = q->visited() - start >= kDescriptorBudget;
      uint8_t msg[kControlHeader];
      size_t have = 0;
      for (const Segment& s : chain_.segs) {
        if (s.writable || have == sizeof msg) continue;
        size_t n = std::min<size_t>(s.len, sizeof msg - have);
        std::memcpy(msg + have, s.ptr, n);
        have += n;
      }
      if (have == 0) {
        q->fault(strfmt("control chain %u carries no bytes", chain_.head));
        return;
      }
      q->push(chain_.head, 0);
      if (have < sizeof msg) {
        guestLog(kCtrlTx, LogLevel::Warn, "control message of %zu bytes is shorter than %zu: ignored", have,
                 sizeof msg);
        continue;
      }
      uint32_t id;
      uint16_t event, value;
      std::memcpy(&id, msg, 4);
      std::memcpy(&event, msg + 4, 2);
      std::memcpy(&value, msg + 6, 2);
      handleControl(id, event, value);
      if (!t_ || !t_->queue(kCtrlTx)) return;  // the connection failed meanwhile
    }
    if (r < 0) return;
    q->flush();
    if (spent) return q->kickSelf();
    if (!q->rearm()) return;
  }
}

void ConsoleDevice::guestLog(unsigned source, LogLevel level, const char* fmt, ...) {
  uint64_t suppressed = 0;
  if (!limiters_[source].admit(suppressed)) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::string line = buf;
  if (suppressed) line += strfmt(" (%llu similar messages suppressed)", (unsigned long long)suppressed);
  log(level, line);
}

void ConsoleDevice::handleControl(uint32_t id, uint16_t event, uint16_t value) {
  Port* p = event == kDeviceReady ? nullptr : findPort(id);
  switch (event) {
    case kDeviceReady:
      if (value != 1)
        return guestLog(kCtrlTx, LogLevel::Error, "guest driver reports that device set-up failed (DEVICE_READY 0)");
      if (driverReady_) {
        // Linux sends DEVICE_READY once per probe: a second one is a new driver instance (the
        // guest rebooted behind a front-end that only stopped and restarted the rings), so the
        // old driver's port states and undelivered messages are stale.
        guestLog(kCtrlTx, LogLevel::Info, "guest driver initialised the device again: its ports start over");
        forgetPorts();
      }
      driverReady_ = true;
      events_.driverReady();
      for (const auto& [nr, port] : ports_) sendControl(nr, kPortAdd, 1);
      return;
    case kPortReady:
      if (!p) return guestLog(kCtrlTx, LogLevel::Warn, "guest sent PORT_READY for unknown port %u", id);
      if (value != 1) return guestLog(kCtrlTx, LogLevel::Error, "guest failed to add port %u (PORT_READY 0)", id);
      // The order QEMU uses: CONSOLE_PORT, PORT_NAME, PORT_OPEN; then the console's size,
      // which Linux only accepts once the port is a console.
      p->ready = true;
      if (p->console) sendControl(id, kConsolePort, 1);
      if (p->hasName) {
        std::string withNul = p->name;
        withNul.push_back('\0');
        sendControl(id, kPortName, 1, reinterpret_cast<const uint8_t*>(withNul.data()), withNul.size());
      }
      if (p->hostOpen) sendControl(id, kPortOpen, 1);
      if (p->console) sendResize(*p);
      events_.portReady(id);
      return;
    case kPortOpen: {
      if (!p) return guestLog(kCtrlTx, LogLevel::Warn, "guest sent PORT_OPEN for unknown port %u", id);
      bool open = value != 0;
      if (p->guestOpen == open) return;
      p->guestOpen = open;
      events_.guestOpen(id, open);
      return;
    }
    default:
      return guestLog(kCtrlTx, LogLevel::Debug, "ignored control event %u (value %u) for port %u", event, value, id);
  }
}

// ---------------------------------------------------------------- host -> guest control

void ConsoleDevice::sendResize(const Port& port) {
  uint8_t size[4];
  putLe16(size, config_.resizeColsFirst ? config_.cols : config_.rows);
  putLe16(size + 2, config_.resizeColsFirst ? config_.rows : config_.cols);
  sendControl(port.nr, kResize, 0, size, sizeof size);
}

void ConsoleDevice::sendControl(uint32_t id, uint16_t event, uint16_t value, const uint8_t* extra, size_t extraLen) {
  if (control_.size() >= kMaxPendingControl) {
    guestLog(kCtrlRx, LogLevel::Error,
             "control queue full (%zu messages waiting for guest buffers): dropped event %u for port %u",
             control_.size(), event, id);
    return;
  }
  std::vector<uint8_t> msg(kControlHeader + extraLen);
  putLe32(msg.data(), id);
  putLe16(msg.data() + 4, event);
  putLe16(msg.data() + 6, value);
  if (extraLen) std::memcpy(msg.data() + kControlHeader, extra, extraLen);
  control_.push_back(std::move(msg));
  flushControl();
}

void ConsoleDevice::flushControl() {
  Virtqueue* q = t_ ? t_->queue(kCtrlRx) : nullptr;
  if (!q) return;  // sent when the guest posts control buffers
  const uint64_t start = q->visited();
  bool spent = false;
  int r = 0;
  for (;;) {
    while (!control_.empty() && !spent && (r = q->pop(chain_)) == 1) {
      spent = q->visited() - start >= kDescriptorBudget;
      const std::vector<uint8_t>& msg = control_.front();
      size_t n = fillChain(chain_, msg.data(), msg.size());
      if (n == 0) {
        r = q->fault(strfmt("control receive chain %u has no device-writable bytes", chain_.head));
        break;
      }
      if (n < msg.size())
        guestLog(kCtrlRx, LogLevel::Warn, "control buffer of %zu bytes truncated a %zu-byte message", n, msg.size());
      q->push(chain_.head, static_cast<uint32_t>(n));
      control_.pop_front();
    }
    if (r < 0 || spent || control_.empty() || !q->rearm()) break;
  }
  if (r < 0) return;
  q->flush();
  if (spent && !control_.empty()) q->kickSelf();  // the rest from a later loop turn
}

}  // namespace vhc
