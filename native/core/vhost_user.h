// The back-end side of the vhost-user protocol (QEMU docs/interop/vhost-user.rst), generic
// over the device: it knows messages, rings, memory and fds, and nothing about consoles.
// A device plugs in through VhostUserDevice and uses the connection through DeviceTransport.
//
// The front-end is semi-trusted: every message is checked (header, size, fds, indexes) and a
// malformed one ends this connection with a log line naming the request and the fault.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "core/guest_memory.h"
#include "core/log.h"
#include "core/unique.h"
#include "core/virtqueue.h"

namespace vhc {

// Virtio feature bits the transport itself understands.
constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
constexpr uint64_t kFeatureEventIdx = 1ull << 29;
constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;  // vhost-user's own bit
constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// What a device may use from the connection it is attached to.
class DeviceTransport {
 public:
  virtual ~DeviceTransport() = default;
  // The queue if it is ready to be used (started, enabled, memory mapped), else nullptr.
  virtual Virtqueue* queue(unsigned index) = 0;
  virtual uint64_t ackedFeatures() const = 0;
  // VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the back-end channel; false if there is none.
  virtual bool notifyConfigChange() = 0;
  // A guest-side fault (broken ring): log, report and end the connection soon.
  virtual void fail(const std::string& why) = 0;
};

class VhostUserDevice {
 public:
  virtual ~VhostUserDevice() = default;
  virtual uint64_t features() const = 0;  // including the transport bits above it supports
  virtual unsigned queueCount() const = 0;
  virtual uint32_t configSize() const = 0;
  virtual void readConfig(uint32_t offset, uint8_t* out, uint32_t len) = 0;
  virtual bool writeConfig(uint32_t offset, const uint8_t* data, uint32_t len) = 0;
  // A connection begins (transport) or ends (nullptr). Either way the device starts afresh.
  virtual void attach(DeviceTransport* transport) = 0;
  // The front-end reset the device (RESET_DEVICE, RESET_OWNER, SET_STATUS 0).
  virtual void reset() = 0;
  // Queue became usable (it may already hold buffers), or its kick fd fired.
  virtual void queueReady(unsigned index) = 0;
  virtual void queueKicked(unsigned index) = 0;
};

// One front-end connection: the socket, its memory, its rings and every fd it sent us.
class VhostUserConnection : public DeviceTransport {
 public:
  // Called (deferred, never from inside a handler) when the connection must end.
  using EndFn = std::function<void(const std::string& reason, bool error)>;

  VhostUserConnection(UniqueFd fd, VhostUserDevice& device, EventLoop& loop, BackendEvents& events, EndFn onEnd);
  ~VhostUserConnection() override;
  VhostUserConnection(const VhostUserConnection&) = delete;
  VhostUserConnection& operator=(const VhostUserConnection&) = delete;

  // Reads and handles what the socket has (called when it is readable).
  void onReadable();
  // Ends the connection if it is dead already (EOF queued); true if it is still alive.
  bool checkAlive();

  Virtqueue* queue(unsigned index) override;
  uint64_t ackedFeatures() const override { return acked_; }
  bool notifyConfigChange() override;
  void fail(const std::string& why) override { end(why, true); }

  const GuestMemory& memory() const { return mem_; }
  // Why end() was called (valid once checkAlive() returned false).
  const std::string& endReason() const { return endReason_; }
  bool endError() const { return endError_; }

 private:
  struct Header {
    uint32_t request, flags, size;
  };
  struct Fds;  // the fds of the message being handled: closed unless taken
  enum class Result { Ok, Failed, Fatal };

  void end(const std::string& reason, bool error);
  bool readMessages(std::string& reason, bool& error);
  bool checkHeader(std::string& err) const;
  Result dispatch(Fds& fds, std::string& err);
  bool reply(const void* payload, uint32_t size);
  bool replyU64(uint64_t v) { return reply(&v, sizeof v); }
  void onKick(unsigned index);
  // Ends the connection if a SIGBUS was absorbed in its guest memory.
  void checkMemory();
  void maybeStart(unsigned index);
  void stopQueue(Virtqueue& q);
  void resetDevice();
  Virtqueue* queueArg(uint32_t index, std::string& err);

  Result handleMemTable(Fds& fds, std::string& err);
  Result handleMemReg(bool add, Fds& fds, std::string& err);
  Result handleVringFd(Fds& fds, std::string& err);
  Result handleGetConfig(std::string& err);
  Result handleSetConfig(std::string& err);
  void warn(const std::string& line);  // rate-limited
  void trace(size_t fdCount);          // the request being handled, at debug level

  const UniqueFd fd_;  // declared first: closed last, after everything it carried
  VhostUserDevice& device_;
  EventLoop& loop_;
  BackendEvents& events_;
  EndFn onEnd_;
  bool ended_ = false;
  std::string endReason_;
  bool endError_ = false;

  GuestMemory mem_;
  std::vector<std::unique_ptr<Virtqueue>> queues_;
  uint64_t acked_ = 0;
  uint64_t protocolAcked_ = 0;
  uint8_t status_ = 0;
  LogLimiter warnLimit_;            // warn lines a front-end can trigger per message
  LogLimiter traceLimit_{512, 64};  // the debug trace of every request
  UniqueFd backendFd_;

  // The message being assembled: read exactly header then payload, so every fd that arrives
  // belongs to this message.
  Header hdr_{};
  size_t hdrHave_ = 0, payloadHave_ = 0;
  std::vector<uint8_t> payload_;
  std::vector<UniqueFd> pendingFds_;  // at most kMaxFds per message, however it is split
};

}  // namespace vhc
