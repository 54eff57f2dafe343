// Owners of the two kinds of OS resources the core holds: file descriptors and memory
// mappings. Every fd and every mapping lives in exactly one of these, so every path (error
// returns, a connection torn down mid-message, a replaced queue fd) closes and unmaps by
// construction. Both are move-only.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

namespace vhc {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes what is held (if anything) and takes `fd`.
  void reset(int fd = -1) {
    int old = std::exchange(fd_, fd);
    if (old >= 0) ::close(old);
  }

 private:
  int fd_ = -1;
};

class Mapping {
 public:
  Mapping() = default;
  ~Mapping() { reset(); }
  Mapping(Mapping&& other) noexcept : addr_(std::exchange(other.addr_, nullptr)), len_(std::exchange(other.len_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      addr_ = std::exchange(other.addr_, nullptr);
      len_ = std::exchange(other.len_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // mmap(2) of `len` bytes of `fd` at `offset` (page-aligned); an invalid Mapping (errno set)
  // if that fails.
  static Mapping map(size_t len, int prot, int flags, int fd, off_t offset) {
    Mapping m;
    void* p = ::mmap(nullptr, len, prot, flags, fd, offset);
    if (p != MAP_FAILED) {
      m.addr_ = p;
      m.len_ = len;
    }
    return m;
  }

  bool valid() const { return addr_ != nullptr; }
  explicit operator bool() const { return valid(); }
  void* get() const { return addr_; }
  size_t size() const { return len_; }
  void reset() {
    if (addr_) ::munmap(addr_, len_);
    addr_ = nullptr;
    len_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace vhc
