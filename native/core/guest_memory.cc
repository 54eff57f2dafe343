#include "core/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
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

constexpr long kHugetlbfsMagic = 0x958458f6;

// The granularity mmap offsets of this file must have: the huge page size on hugetlbfs, else
// the system page size.
uint64_t mapAlignment(int fd, const struct stat& st) {
  uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  struct statfs fs;
  if (::fstatfs(fd, &fs) == 0 && static_cast<long>(fs.f_type) == kHugetlbfsMagic && st.st_blksize > 0 &&
      (static_cast<uint64_t>(st.st_blksize) & (static_cast<uint64_t>(st.st_blksize) - 1)) == 0)
    return static_cast<uint64_t>(st.st_blksize);
  return page;
}
}  // namespace

bool GuestMemory::add(const RegionDesc& d, UniqueFd fd, std::string& err) {
  if (regions_.size() >= kMaxRegions) {
    err = strfmt("too many memory regions (max %u)", kMaxRegions);
    return false;
  }
  if (d.size == 0 || d.guestAddr + d.size < d.guestAddr || d.userAddr + d.size < d.userAddr ||
      d.mmapOffset + d.size < d.mmapOffset || d.mmapOffset + d.size > SIZE_MAX) {
    err =
        strfmt("bad memory region: guest 0x%llx size 0x%llx user 0x%llx offset 0x%llx", (unsigned long long)d.guestAddr,
               (unsigned long long)d.size, (unsigned long long)d.userAddr, (unsigned long long)d.mmapOffset);
    return false;
  }
  // Touching a mapping beyond the end of its file raises SIGBUS: a region must lie within its
  // file as it is now. (Shrinking it later is caught by the SIGBUS guard.)
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    err = strfmt("memory region guest 0x%llx: fstat: %s", (unsigned long long)d.guestAddr, strerror(errno));
    return false;
  }
  if (S_ISREG(st.st_mode) && d.mmapOffset + d.size > static_cast<uint64_t>(st.st_size)) {
    err = strfmt(
        "memory region guest 0x%llx size 0x%llx at offset 0x%llx extends beyond the end of its file "
        "(0x%llx bytes)",
        (unsigned long long)d.guestAddr, (unsigned long long)d.size, (unsigned long long)d.mmapOffset,
        (unsigned long long)st.st_size);
    return false;
  }
  // Map only the region: from its offset rounded down to what mmap accepts, so the unused
  // prefix of the file is not mapped and two regions of one file do not map each other.
  uint64_t align = mapAlignment(fd.get(), st);
  uint64_t start = d.mmapOffset & ~(align - 1);
  uint64_t lead = d.mmapOffset - start;
  // Whole pages of the file's page size: munmap of a hugetlbfs mapping needs it.
  uint64_t span = lead + d.size;
  if (span > UINT64_MAX - (align - 1)) {
    err = strfmt("memory region guest 0x%llx: size 0x%llx too large", (unsigned long long)d.guestAddr,
                 (unsigned long long)d.size);
    return false;
  }
  size_t len = static_cast<size_t>((span + align - 1) & ~(align - 1));
  Mapping map =
      Mapping::map(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), static_cast<off_t>(start));
  if (!map) {
    err = strfmt("cannot map memory region guest 0x%llx size 0x%llx: %s", (unsigned long long)d.guestAddr,
                 (unsigned long long)d.size, strerror(errno));
    return false;
  }
  SigbusGuard guard(map.get(), map.size());
  if (!guard.active()) {
    err = strfmt("cannot map memory region guest 0x%llx: too many guest memory regions in this process",
                 (unsigned long long)d.guestAddr);
    return false;
  }
  uint8_t* host = static_cast<uint8_t*>(map.get()) + lead;
  regions_.push_back({d, std::move(map), std::move(guard), host});
  ++generation_;
  return true;  // fd is closed here: the mapping keeps the file
}

bool GuestMemory::remove(const RegionDesc& d, std::string& err) {
  for (auto it = regions_.begin(); it != regions_.end(); ++it) {
    if (it->desc.guestAddr == d.guestAddr && it->desc.size == d.size && it->desc.userAddr == d.userAddr) {
      regions_.erase(it);
      ++generation_;
      return true;
    }
  }
  err = strfmt("no memory region at guest 0x%llx size 0x%llx user 0x%llx", (unsigned long long)d.guestAddr,
               (unsigned long long)d.size, (unsigned long long)d.userAddr);
  return false;
}

void GuestMemory::clear() {
  if (!regions_.empty()) ++generation_;
  regions_.clear();
}

bool GuestMemory::poisoned() const {
  for (const auto& r : regions_)
    if (r.guard.poisoned()) return true;
  return false;
}

uint8_t* GuestMemory::lookup(uint64_t addr, uint64_t len, bool user) const {
  for (const auto& r : regions_) {
    uint64_t start = user ? r.desc.userAddr : r.desc.guestAddr;
    if (contains(start, r.desc.size, addr, len)) return r.host + (addr - start);
  }
  return nullptr;
}

}  // namespace vhc
