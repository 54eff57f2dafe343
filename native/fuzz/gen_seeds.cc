// Writes the seed inputs of the fuzz targets (session.h's encoding, through input.h's Output):
// the vhost-user sequences of QEMU 10.2 and 10.0 and of the test front-end, as recorded in
// /work/shared/qemu-rig/qemu-sequence.md (connect, DRIVER_OK start, Linux's virtio_console
// handshake on the rings, traffic both ways, vhost_dev_stop, reconnect), and plain rings for
// the virtqueue target. `npm run fuzz` merges them (-merge=1) into native/fuzz/corpus/<target>.
//   build-fuzz/gen_seeds DIR     (make -C native/fuzz seeds)
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fuzz/session.h"

using namespace vhcfuzz;

namespace {

struct Seed : Output {
  Config cfg;
  // Config bytes as Config::decode reads them.
  void config(unsigned preamble, unsigned sizeSel, bool multiport, bool eventIdx, bool indirect, uint32_t maxPorts) {
    cfg.preamble = preamble;
    static const uint32_t sizes[4] = {8, 64, 256, 1024};
    cfg.queueSize = sizes[sizeSel & 3];
    cfg.multiport = multiport;
    cfg.maxPorts = maxPorts;
    u8(static_cast<uint8_t>(preamble | sizeSel << 2 | (multiport ? 0x10 : 0) | (eventIdx ? 0x20 : 0) |
                            (indirect ? 0x40 : 0)));
    u8(static_cast<uint8_t>((maxPorts - 1) | 8 | 16));  // resize rows-first, ports host-open
  }
  void run(uint8_t rounds = 4) {
    u8(kOpRun);
    range(1, 8, rounds);
  }
  void postRx(unsigned q, uint32_t count, uint32_t len, bool indirect = false) {
    u8(kOpPostRx);
    u8(static_cast<uint8_t>(q));
    range(1, 64, count);
    range(0, 4096, len);
    u8(indirect);
  }
  void postTx(unsigned q, const std::string& text, bool indirect = false) {
    u8(kOpPostTx);
    u8(static_cast<uint8_t>(q));
    range(1, 32, static_cast<uint32_t>(text.size()));
    bytes(text.data(), text.size());
    range(1, 4, 1);
    u8(static_cast<uint8_t>(text.size() & 0x7c ? text.size() & 0x7c : 4));  // small readable segment
    u8(indirect);
  }
  void kick(unsigned q, uint8_t rounds = 2) {
    u8(kOpKick);
    u8(static_cast<uint8_t>(q));
    range(1, 4, rounds);
  }
  void control(uint32_t id, uint16_t event, uint16_t value) {
    u8(kOpControl);
    if (id == 0xffffffffu) u8(0xff);
    else u8(static_cast<uint8_t>(id));
    u8(static_cast<uint8_t>(event));
    u8(static_cast<uint8_t>(value));
  }
  void hostWrite(uint32_t nr, const std::string& text) {
    u8(kOpHost);
    u8(0);
    u8(static_cast<uint8_t>(nr));
    range(0, 2048, static_cast<uint32_t>(text.size()));
    bytes(text.data(), text.size());
    u8(0);
  }
  void hostOpen(uint32_t nr, bool open) {
    u8(kOpHost);
    u8(1);
    u8(static_cast<uint8_t>(nr));
    u8(open);
  }
  void addPort(uint32_t nr, bool named, bool console) {
    u8(kOpHost);
    u8(2);
    u8(static_cast<uint8_t>(nr));
    u8(named);
    u8(console);
    u8(static_cast<uint8_t>(nr));
  }
  void removePort(uint32_t nr) {
    u8(kOpHost);
    u8(3);
    u8(static_cast<uint8_t>(nr));
  }
  void pause(uint32_t nr, bool on) {
    u8(kOpHost);
    u8(4);
    u8(static_cast<uint8_t>(nr));
    u8(on);
  }
  void resize(uint16_t cols, uint16_t rows) {
    u8(kOpHost);
    u8(5);
    u8(0);
    u16(cols);
    u16(rows);
  }
  void stopStart(bool statusZero) {
    u8(kOpStopStart);
    u8(statusZero);
  }
  void disconnect(bool reconnect) {
    u8(kOpDisconnect);
    u8(reconnect);
  }
  void chain(unsigned q, std::vector<std::pair<uint32_t, bool>> segs, bool indirect) {
    u8(kOpChain);
    u8(static_cast<uint8_t>(q));
    range(1, cfg.queueSize + 2, static_cast<uint32_t>(segs.size()));
    for (auto& [len, writable] : segs) {
      if (len <= 0x7c && (len & 3) == 0) u8(static_cast<uint8_t>(len | writable));
      else {
        u8(static_cast<uint8_t>(0x80 | writable));
        range(0, 8192, len);
      }
    }
    u8(indirect);
  }
  void concurrent(uint32_t n) {
    u8(kOpConcurrent);
    range(0, 16, n);
  }

  // A raw vhost-user message (kOpMessage): fds are FdKind values (kFdQueueEventfd + queue).
  void message(uint32_t req, uint32_t flags, const void* payload, uint32_t len,
               std::vector<std::pair<uint8_t, uint8_t>> fds = {}, uint8_t split = 0, uint8_t attach = 0) {
    u8(kOpMessage);
    u8(static_cast<uint8_t>(req));
    u8(static_cast<uint8_t>(flags));
    range(0, 320, len);
    u8(0);  // size = len
    bytes(payload, len);
    u8(static_cast<uint8_t>(fds.size()));
    for (auto& [kind, arg] : fds) {
      u8(kind);
      if (kind == kFdQueueEventfd) u8(arg);
    }
    u8(split);
    u8(attach);
    if (split % 4 == 3) u16(5);
  }
  void msgU64(uint32_t req, uint32_t flags, uint64_t v, std::vector<std::pair<uint8_t, uint8_t>> fds = {},
              uint8_t split = 0, uint8_t attach = 0) {
    message(req, flags, &v, 8, std::move(fds), split, attach);
  }
  void msgState(uint32_t req, uint32_t flags, uint32_t index, uint32_t num) {
    uint32_t st[2] = {index, num};
    message(req, flags, st, 8);
  }

  // QEMU's whole sequence as raw messages (what preamble() sends, but mutable byte by byte).
  void rawQemu(bool v102, bool memTable, uint8_t split) {
    uint32_t fdFlags = v102 ? 9 : 1;
    GuestQueue g[kMaxQueues];
    unsigned nq = cfg.queues();
    for (unsigned i = 0; i < nq; ++i) g[i].init(i, cfg.queueSize);
    message(kGetFeatures, 1, nullptr, 0);
    message(kGetProtocolFeatures, 1, nullptr, 0);
    msgU64(kSetProtocolFeatures, 1, 0x1a209);
    message(kGetQueueNum, 1, nullptr, 0);
    message(kGetMaxMemSlots, 1, nullptr, 0);
    message(kSetOwner, 1, nullptr, 0);
    message(kGetFeatures, 1, nullptr, 0);
    for (unsigned i = 0; i < nq; ++i) {
      msgU64(kSetVringCall, fdFlags, i, {{kFdEventfd, 0}}, split, 1);
      msgU64(kSetVringErr, fdFlags, i, {{kFdEventfd, 0}});
    }
    uint32_t cfgReq[6] = {0, 12, 0};
    message(kGetConfig, 1, cfgReq, 24);
    msgU64(kSetFeatures, 1, 0x160000003ull & (cfg.multiport ? ~0ull : ~2ull));
    message(kGetStatus, 1, nullptr, 0);
    msgU64(kSetStatus, 1, 8);
    uint64_t region[5] = {0, kGuestBase, kMemSize, kUserBase, 0};
    if (memTable) {
      uint64_t table[5] = {1, kGuestBase, kMemSize, kUserBase, 0};
      message(kSetMemTable, 9, table, 40, {{kFdGuestMem, 0}});
    } else {
      message(kAddMemReg, 9, region, 40, {{kFdGuestMem, 0}}, split, 1);
    }
    for (unsigned i = 0; i < nq; ++i) {
      msgState(kSetVringNum, 1, i, g[i].num);
      msgState(kSetVringBase, 1, i, 0);
      uint64_t addr[5] = {i, kUserBase + g[i].descOff, kUserBase + g[i].usedOff, kUserBase + g[i].availOff,
                          kGuestBase + g[i].usedOff};
      message(kSetVringAddr, 1, addr, 40);
      msgU64(kSetVringKick, fdFlags, i, {{kFdQueueEventfd, static_cast<uint8_t>(i)}});
      msgU64(kSetVringCall, fdFlags, i, {{kFdEventfd, 0}});
    }
    for (unsigned i = 0; i < nq; ++i) msgState(kSetVringEnable, 9, i, 1);
    run(4);
  }
  void rawStop() {
    unsigned nq = cfg.queues();
    for (unsigned i = 0; i < nq; ++i) msgState(kSetVringEnable, 9, i, 0);
    for (unsigned i = 0; i < nq; ++i) msgState(kGetVringBase, 1, i, 0);
    msgU64(kSetStatus, 1, 0);
  }

  // Linux's virtio_console probe and first traffic on the rings (qemu-sequence.md step 4).
  void linuxBoot(bool indirect = false) {
    uint32_t fill = cfg.queueSize < 64 ? cfg.queueSize : 64;
    if (!cfg.multiport) {
      postRx(0, fill, 4096, indirect);
      kick(0);
      postTx(1, "E2E-MARKER hvc0", indirect);
      kick(1);
      postTx(1, "\r\n");
      kick(1);
      hostWrite(0, "typed on the host\n");
      run();
      return;
    }
    postRx(2, fill, 4096, indirect);
    kick(2);
    control(0xffffffffu, 0, 1);  // DEVICE_READY
    run();
    for (uint32_t nr = 0; nr < cfg.maxPorts; ++nr) {
      postRx(nr == 0 ? 0 : 2 * nr + 2, fill / 2, 4096, indirect);
      kick(nr == 0 ? 0 : 2 * nr + 2);
      control(nr, 3, 1);  // PORT_READY
      run();
    }
    control(0, 6, 1);  // PORT_OPEN 0 (hvc)
    run();
    if (cfg.maxPorts > 1) {
      control(1, 6, 1);  // open(/dev/vport0p1)
      run();
      postTx(5, "twenty bytes of data", indirect);
      kick(5);
    }
    postTx(1, "E2E-MARKER hvc0");
    kick(1);
    hostWrite(0, "host to console\n");
    if (cfg.maxPorts > 1) hostWrite(1, "host to port one");
    postRx(2, 8, 4096);
    kick(2);
    run();
  }
};

void save(const std::string& dir, const std::string& name, const Seed& s) {
  mkdir(dir.c_str(), 0755);
  std::string path = dir + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::fwrite(s.data().data(), 1, s.data().size(), f);
  std::fclose(f);
}

void deviceSeeds(const std::string& dir) {
  int n = 0;
  for (unsigned preamble : {1u, 2u, 3u})
    for (bool multiport : {true, false})
      for (unsigned sizeSel : {0u, 1u}) {
        Seed s;
        s.config(preamble, sizeSel, multiport, preamble != 2, preamble == 3, multiport ? 2 : 1);
        s.linuxBoot(preamble == 3);
        s.stopStart(true);  // QMP stop + cont
        s.run();
        s.hostWrite(0, "after cont\n");
        s.postTx(1, "after cont");
        s.kick(1);
        if (multiport) {
          s.hostWrite(1, "port one after cont");
          s.resize(132, 43);
          s.run();
          s.pause(1, true);
          s.postTx(5, "while paused");
          s.kick(5);
          s.pause(1, false);
          s.removePort(1);
          s.run();
          s.addPort(1, true, false);
          s.run();
          s.control(1, 3, 1);
          s.run();
          s.control(1, 6, 0);
          s.run();
          s.control(0xffffffffu, 0, 1);  // a second DEVICE_READY: the guest rebooted
          s.run();
        }
        s.chain(multiport ? 4 : 0, {{0, true}, {0, true}, {0, false}}, false);  // no usable bytes
        s.kick(multiport ? 4 : 0);
        s.hostWrite(multiport ? 1 : 0, "x");
        // The guest re-posts zero-length rx buffers from inside the device's data callback
        // (its vCPU runs meanwhile): one concurrent action, read when the callback fires.
        s.concurrent(1);
        s.postTx(1, "from a busy guest");
        s.kick(1);
        s.u8(0);
        s.u8(0);
        s.range(1, 64, 8);
        s.range(0, 4096, 0);
        s.u8(0);            // PostRx q0, 8 x 0 bytes
        s.postRx(0, 4, 0);  // zero-length rx buffers
        s.kick(0);
        s.disconnect(true);  // QEMU restarts
        s.linuxBoot();
        save(dir, "qemu-" + std::to_string(++n), s);
      }
}

void vhostUserSeeds(const std::string& dir) {
  int n = 0;
  // The whole sequence as raw messages: 10.2 (NEED_REPLY on fd requests), 10.0, SET_MEM_TABLE.
  for (int variant = 0; variant < 4; ++variant) {
    Seed s;
    s.config(0, variant == 3 ? 2 : 1, variant != 2, true, false, 2);
    s.rawQemu(variant != 1, variant == 2, variant == 3 ? 2 : 1);
    s.linuxBoot();
    s.rawStop();
    s.run();
    s.disconnect(false);
    save(dir, "raw-" + std::to_string(++n), s);
  }
  // The built-in preamble, then single odd messages of every kind.
  for (unsigned preamble : {1u, 2u, 3u}) {
    Seed s;
    s.config(preamble, 1, true, true, true, 2);
    s.linuxBoot();
    uint32_t cfgReq[6] = {8, 4, 0, 'X'};
    s.message(kSetConfig, 9, cfgReq, 16);  // emergency write
    uint32_t get[6] = {0, 12, 0};
    s.message(kGetConfig, 1, get, 24, {}, 2, 0);  // byte by byte
    uint64_t region[5] = {0, kGuestBase, kMemSize, kUserBase, 0};
    s.message(kRemMemReg, 9, region, 40);
    s.message(kAddMemReg, 9, region, 40, {{kFdSealedMemfd, 0}}, 1, 1);  // fd with the payload
    s.msgU64(kSetVringCall, 9, 1, {{kFdPipeWriteFull, 0}});
    s.msgU64(kSetVringErr, 9, 1, {{kFdEventfdBlockingFull, 0}});
    s.msgU64(kSetVringKick, 9, 3, {{kFdSocket, 0}});
    s.msgU64(kSetVringKick, 9, 0x101, {});
    s.message(kSetBackendReqFd, 9, nullptr, 0, {{kFdSocket, 0}});
    s.message(kResetDevice, 9, nullptr, 0);
    s.msgU64(kSetStatus, 9, 0);
    s.message(kGetVringBase, 1, (const uint32_t[]){1, 0}, 8);
    std::vector<std::pair<uint8_t, uint8_t>> many(9, {kFdEventfd, 0});
    s.msgU64(kSetVringCall, 1, 0, many, 2, 5);  // 9 fds on one byte of a split message
    s.run();
    save(dir, "odd-" + std::to_string(++n), s);
  }
}

void ringSeeds(const std::string& dir) {
  // A ring of 8 with direct chains (pairs: readable -> writable), an indirect chain, and
  // drain / flush / rearm rounds. Field order as fuzz_virtqueue.cc reads it.
  for (int variant = 0; variant < 3; ++variant) {
    Seed s;
    s.u8(3);             // num 8
    s.u8(variant == 1);  // EVENT_IDX
    for (uint16_t i = 0; i < 8; ++i) {
      bool ind = variant == 2 && i == 2;
      s.u8(0);
      s.u16(i);
      s.u8(0);  // desc i, address mode 0 (tables area)
      s.u8(0);
      s.u8(ind ? 64 : 16);                                   // small len
      s.u8(ind ? 4 : (i % 2 ? 2 : 1));                       // NEXT, WRITE or INDIRECT
      s.u16(static_cast<uint16_t>(i + 1));                   // next
      s.u16(static_cast<uint16_t>(ind ? 40 : 100 + i * 8));  // address in 16-byte units
    }
    for (uint16_t k = 0; k < 4; ++k) {  // indirect table at slot 40
      s.u8(1);
      s.u16(static_cast<uint16_t>(40 + k));
      s.u8(0);
      s.u8(0);
      s.u8(32);
      s.u8(k < 3 ? 1 : 3);
      s.u8(static_cast<uint8_t>(k + 1));
      s.u16(static_cast<uint16_t>(200 + 4 * k));
    }
    s.u8(2);
    s.u8(2);
    s.u16(0);
    s.u16(2);
    s.u16(6);  // publish heads 0, 2, 6
    s.u8(3);
    s.u8(8);
    s.u8(0);
    s.u8(0);
    s.u8(0);  // drain (one flag byte per chain)
    s.u8(4);
    s.u8(5);  // flush, rearm
    s.u8(2);
    s.u8(0);
    s.u16(4);  // publish head 4
    s.u8(3);
    s.u8(8);
    s.u8(0);
    s.u8(4);
    save(dir, "ring-" + std::to_string(variant + 1), s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "seeds";
  mkdir(dir.c_str(), 0755);
  deviceSeeds(dir + "/fuzz_device");
  vhostUserSeeds(dir + "/fuzz_vhost_user");
  deviceSeeds(dir + "/fuzz_vhost_user");  // the built-in preamble paths too
  ringSeeds(dir + "/fuzz_virtqueue");
  std::printf("seeds written to %s\n", dir.c_str());
  return 0;
}
