// Guest memory as the front-end shares it: regions of memfd/hugetlbfs files, each mapped once.
// Ring addresses arrive as front-end virtual addresses (SET_VRING_ADDR), descriptor buffers as
// guest-physical addresses; both are translated here, and a range is valid only if it lies
// wholly inside one region (the guest controls both ends, so every sum is overflow-checked).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sigbus_guard.h"
#include "core/unique.h"

namespace vhc {

// One region as vhost-user describes it (VhostUserMemoryRegion).
struct RegionDesc {
  uint64_t guestAddr;  // guest-physical start
  uint64_t size;
  uint64_t userAddr;    // the front-end's virtual address of the same bytes
  uint64_t mmapOffset;  // where the region starts inside the fd
};

class GuestMemory {
 public:
  static constexpr unsigned kMaxRegions = 32;  // what GET_MAX_MEM_SLOTS reports

  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory() { clear(); }

  // Maps the region's bytes of `fd` (closed when done, success or not). False with `err` set
  // on a bad region.
  bool add(const RegionDesc& desc, UniqueFd fd, std::string& err);
  // Unmaps the region with this guest address, user address and size (vhost-user
  // REM_MEM_REG; the mmap offset is ignored). False if there is none.
  bool remove(const RegionDesc& desc, std::string& err);
  void clear();
  // True if the front-end shrank a region's file under us (a SIGBUS was absorbed): the
  // region now reads as zeros and the connection must end.
  bool poisoned() const;

  // Host pointer for [addr, addr+len) or nullptr if that range is not inside one region.
  uint8_t* fromGuest(uint64_t addr, uint64_t len) const { return lookup(addr, len, false); }
  uint8_t* fromUser(uint64_t addr, uint64_t len) const { return lookup(addr, len, true); }

  size_t regionCount() const { return regions_.size(); }
  // Bumped on every change, so cached ring pointers know to translate again.
  uint64_t generation() const { return generation_; }

 private:
  struct Region {
    RegionDesc desc;
    Mapping map;        // from mmapOffset rounded down to the file's page size
    SigbusGuard guard;  // declared after map: withdrawn before the unmap
    uint8_t* host;      // the region's first byte inside map
  };
  uint8_t* lookup(uint64_t addr, uint64_t len, bool user) const;

  std::vector<Region> regions_;
  uint64_t generation_ = 0;
};

}  // namespace vhc
