#include "core/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "core/log.h"

namespace vhc {

namespace {
// [start, start+size) contains [addr, addr+len), written so nothing can overflow.
bool contains(uint64_t start, uint64_t size, uint64_t addr, uint64_t len) {
  if (addr < start) return false;
  uint64_t off = addr - start;
  return off <= size && len <= size - off;
}
}  // namespace

bool GuestMemory::add(const RegionDesc& d, int fd, std::string& err) {
  struct FdCloser {
    int fd;
    ~FdCloser() { if (fd >= 0) ::close(fd); }
  } closer{fd};
  if (regions_.size() >= kMaxRegions) {
    err = strfmt("too many memory regions (max %u)", kMaxRegions);
    return false;
  }
  if (d.size == 0 || d.guestAddr + d.size < d.guestAddr || d.userAddr + d.size < d.userAddr ||
      d.mmapOffset + d.size < d.mmapOffset || d.mmapOffset + d.size > SIZE_MAX) {
    err = strfmt("bad memory region: guest 0x%llx size 0x%llx user 0x%llx offset 0x%llx",
                 (unsigned long long)d.guestAddr, (unsigned long long)d.size,
                 (unsigned long long)d.userAddr, (unsigned long long)d.mmapOffset);
    return false;
  }
  // Touching a mapping beyond the end of its file raises SIGBUS, which would kill the
  // daemon: a region must lie within its file as it is now.
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      d.mmapOffset + d.size > static_cast<uint64_t>(st.st_size)) {
    err = strfmt("memory region guest 0x%llx size 0x%llx at offset 0x%llx extends beyond the end of its file "
                 "(0x%llx bytes)", (unsigned long long)d.guestAddr, (unsigned long long)d.size,
                 (unsigned long long)d.mmapOffset, (unsigned long long)st.st_size);
    return false;
  }
  // Map from file offset 0 so an unaligned mmap_offset still works; the region starts
  // mmapOffset bytes into the mapping.
  size_t len = static_cast<size_t>(d.mmapOffset + d.size);
  void* map = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (map == MAP_FAILED) {
    err = strfmt("cannot map memory region guest 0x%llx size 0x%llx: %s",
                 (unsigned long long)d.guestAddr, (unsigned long long)d.size, strerror(errno));
    return false;
  }
  regions_.push_back({d, map, len, static_cast<uint8_t*>(map) + d.mmapOffset});
  ++generation_;
  return true;
}

bool GuestMemory::remove(const RegionDesc& d, std::string& err) {
  for (auto it = regions_.begin(); it != regions_.end(); ++it) {
    if (it->desc.guestAddr == d.guestAddr && it->desc.size == d.size) {
      ::munmap(it->map, it->mapLen);
      regions_.erase(it);
      ++generation_;
      return true;
    }
  }
  err = strfmt("no memory region at guest 0x%llx size 0x%llx",
               (unsigned long long)d.guestAddr, (unsigned long long)d.size);
  return false;
}

void GuestMemory::clear() {
  for (auto& r : regions_) ::munmap(r.map, r.mapLen);
  if (!regions_.empty()) ++generation_;
  regions_.clear();
}

uint8_t* GuestMemory::lookup(uint64_t addr, uint64_t len, bool user) const {
  for (const auto& r : regions_) {
    uint64_t start = user ? r.desc.userAddr : r.desc.guestAddr;
    if (contains(start, r.desc.size, addr, len)) return r.host + (addr - start);
  }
  return nullptr;
}

}  // namespace vhc
