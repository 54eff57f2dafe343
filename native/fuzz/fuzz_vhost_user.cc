// libFuzzer target: the vhost-user message stream with fds. An optional valid QEMU preamble
// (10.2, 10.0 or the test front-end's order), then raw messages whose header, payload, fds
// (sealed/unsealed memfd, blocking/saturated eventfd, pipe ends, socket, /dev/null) and split
// into recvmsg pieces come from the input, interleaved with guest ring traffic, kicks,
// memory truncation and disconnects. See session.h for the input layout and the invariants.
#include "fuzz/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vhcfuzz::FdCheck fdCheck(1);
  vhcfuzz::Input in(data, size);
  {
    vhcfuzz::Session s(in, /*raw messages*/ true);
    s.run();
  }
  return 0;
}
