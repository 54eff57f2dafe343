// libFuzzer target: the console device with guest memory and the host API interleaved. The
// front-end always speaks QEMU's sequence (preamble, stop/start, disconnect/reconnect); the
// input drives a deterministic guest (rx/tx/control buffers, arbitrary chains, indirect
// tables, zero-length descriptors, scribbles, kicks, and actions from inside the device's
// callbacks, i.e. between pops) and the host calls (write, setHostOpen, addPort, removePort,
// setOutputPaused, setConsoleSize, stats). See session.h for the invariants.
#include "fuzz/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vhcfuzz::FdCheck fdCheck(1);
  vhcfuzz::Input in(data, size);
  {
    vhcfuzz::Session s(in, /*raw messages*/ false);
    s.run();
  }
  return 0;
}
