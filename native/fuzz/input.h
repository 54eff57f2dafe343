// FuzzedDataProvider-style decoding of a fuzz input, front to back, and the matching encoder
// the seed generator uses (gen_seeds.cc), so a seed is written exactly the way it is read.
// Reads past the end return zeros: every input decodes to some run, and libFuzzer's mutations
// (insert, erase, copy, compare-guided) keep their meaning because each op is self-delimiting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace vhcfuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool empty() const { return pos_ >= n_; }
  size_t remaining() const { return pos_ < n_ ? n_ - pos_ : 0; }
  uint8_t u8() { return pos_ < n_ ? p_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
  bool flag() { return u8() & 1; }
  // A value in [lo, hi] (inclusive), from as few bytes as the range needs.
  uint32_t range(uint32_t lo, uint32_t hi) {
    uint32_t span = hi - lo;
    uint32_t v = span < 256 ? u8() : span < 65536 ? u16() : u32();
    return span == UINT32_MAX ? v : lo + v % (span + 1);
  }
  // Up to `len` bytes (fewer at the end of the input).
  std::vector<uint8_t> bytes(size_t len) {
    size_t take = len < remaining() ? len : remaining();
    std::vector<uint8_t> out(p_ + pos_, p_ + pos_ + take);
    pos_ += take;
    return out;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
};

class Output {
 public:
  void u8(uint8_t v) { b_.push_back(v); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v));
    u8(static_cast<uint8_t>(v >> 8));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v));
    u16(static_cast<uint16_t>(v >> 16));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v));
    u32(static_cast<uint32_t>(v >> 32));
  }
  // The inverse of Input::range for a value already in [lo, hi].
  void range(uint32_t lo, uint32_t hi, uint32_t v) {
    uint32_t span = hi - lo, x = v - lo;
    if (span < 256) u8(static_cast<uint8_t>(x));
    else if (span < 65536) u16(static_cast<uint16_t>(x));
    else u32(x);
  }
  void bytes(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    b_.insert(b_.end(), b, b + n);
  }
  const std::vector<uint8_t>& data() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

}  // namespace vhcfuzz
