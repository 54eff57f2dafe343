// Guest memory is a file the front-end shares and can shrink at any time (ftruncate on a memfd
// or a hugetlbfs file); touching a mapped page beyond the new end of file raises SIGBUS, which
// would kill the daemon and every VM it serves. Seals would prevent it, but hugetlbfs-backed
// memory (memory-backend-file, common with vhost-user) has none, so the daemon survives it
// instead: each guest mapping is registered here, and a SIGBUS whose address lies in one
// replaces that whole mapping with anonymous zero pages (MAP_FIXED), marks it poisoned and
// returns, so the faulting access completes on harmless memory. The owner of the mapping sees
// the poison and ends that front-end's connection. A SIGBUS anywhere else is passed on to the
// handler that was installed before (Node's or the default, which ends the process as before).
#pragma once

#include <cstddef>

namespace vhc {

class SigbusGuard {
 public:
  // Registers [addr, addr + len); installs the process-wide handler on first use. Inactive
  // (and never poisoned) if the registry is full, which `active()` reports.
  SigbusGuard(void* addr, size_t len);
  ~SigbusGuard();
  SigbusGuard(const SigbusGuard&) = delete;
  SigbusGuard& operator=(const SigbusGuard&) = delete;
  SigbusGuard(SigbusGuard&& other) noexcept;
  SigbusGuard& operator=(SigbusGuard&& other) noexcept;

  bool active() const { return slot_ >= 0; }
  // True once a SIGBUS hit the range (it now holds zero pages of no one's file).
  bool poisoned() const;

  // How many SIGBUS the guard absorbed in this process (for tests and logs).
  static unsigned long absorbed();

 private:
  void release();
  int slot_ = -1;
};

}  // namespace vhc
