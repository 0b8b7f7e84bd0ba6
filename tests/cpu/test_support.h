// tests/cpu/test_support.h: small host-side helpers shared by test_quantize.cpp and
// test_reference.cpp.
//
//   Rng        a splitmix64 generator: the same numbers on every platform and standard library.
//   Tensor16   a bf16/f16 host tensor holding logical [B, H, N, D] in HND or NHD order, optionally
//              padded (extra elements between tokens, heads and batches, and before the first
//              element) so that its TensorView is a strided slice of a larger buffer. Padding is
//              filled with a NaN bit pattern (kPoison16) so that a write outside the view, or an
//              element left unwritten, is detectable bit for bit.
//   TensorF32  the same for an f32 LSE tensor [B, H, N].
// Nothing here computes attention; the tests' own oracles live in the test files.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/numerics.h"
#include "cpu/reference.h"
#include "sageattn/types.h"

namespace sageattn::test {

// ------------------------------------------------------------------------------------ random
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0xD1B54A32D192ED03ull) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  double normal() {  // Box-Muller, one value per call
    const double u1 = uniform() + 0x1.0p-54;
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

inline std::vector<float> normal_floats(int64_t n, uint64_t seed, double stddev = 1.0) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (float& e : x) e = static_cast<float>(stddev * rng.normal());
  return x;
}

// ------------------------------------------------------------------------------ 16-bit codecs
inline uint16_t encode16(DType dtype, float x) {
  return dtype == DType::kBF16 ? num::bf16_from_float(x) : num::fp16_from_float(x);
}
inline float decode16(DType dtype, uint16_t bits) {
  return dtype == DType::kBF16 ? num::bf16_to_float(bits) : num::fp16_to_float(bits);
}
// x rounded to the nearest value of `dtype` (as float).
inline std::vector<float> round_to(DType dtype, std::vector<float> x) {
  for (float& e : x) e = decode16(dtype, encode16(dtype, e));
  return x;
}

// A NaN in both bf16 (exponent 0xFF) and f16 (exponent 0x1F), distinct from the canonical NaN
// 0x7FFF that the library's encoders produce.
inline constexpr uint16_t kPoison16 = 0x7FA5;
inline constexpr uint32_t kPoison32 = 0x7FC0DEADu;  // an f32 NaN with a recognizable payload
inline float poison_f32() {
  float f;
  std::memcpy(&f, &kPoison32, sizeof f);
  return f;
}
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// ---------------------------------------------------------------------------- host tensors
// Extra elements a strided view skips: after each token row, after each head, after each batch,
// and before the first element.
struct Padding {
  int64_t token = 0, head = 0, batch = 0, offset = 0;
};

// Logical [B, H, N, D] 16-bit tensor in `layout` (HND: [B, H, N, D]; NHD: [B, N, H, D] in memory).
struct Tensor16 {
  DType dtype = DType::kBF16;
  Layout layout = Layout::kHND;
  int64_t b = 0, h = 0, n = 0, d = 0;
  Padding pad;
  int64_t stride_b = 0, stride_h = 0, stride_n = 0;
  std::vector<uint16_t> storage;

  int64_t offset(int64_t ib, int64_t ih, int64_t in, int64_t id) const {
    return pad.offset + ib * stride_b + ih * stride_h + in * stride_n + id;
  }
  uint16_t bits(int64_t ib, int64_t ih, int64_t in, int64_t id) const {
    return storage[offset(ib, ih, in, id)];
  }
  float get(int64_t ib, int64_t ih, int64_t in, int64_t id) const {
    return decode16(dtype, bits(ib, ih, in, id));
  }
  // The view the public API takes, dims in the order of `layout`.
  TensorView view() {
    uint16_t* base = storage.data() + pad.offset;
    if (layout == Layout::kHND)
      return make_view(base, dtype, {b, h, n, d}, {stride_b, stride_h, stride_n, 1});
    return make_view(base, dtype, {b, n, h, d}, {stride_b, stride_n, stride_h, 1});
  }
  // The same memory seen as an HND view whatever the layout (a strided view is a strided view).
  TensorView hnd_view() {
    return make_view(storage.data() + pad.offset, dtype, {b, h, n, d},
                     {stride_b, stride_h, stride_n, 1});
  }
  // Sequence `ib` as the reference's SeqView.
  cpu::SeqView seq(int64_t ib) const {
    cpu::SeqView s;
    s.data = const_cast<uint16_t*>(storage.data()) + pad.offset + ib * stride_b;
    s.dtype = dtype;
    s.heads = h;
    s.tokens = n;
    s.dim = d;
    s.stride_h = stride_h;
    s.stride_n = stride_n;
    return s;
  }
  // Logical [B, H, N, D] bits / values, whatever the layout.
  std::vector<uint16_t> logical_bits() const {
    std::vector<uint16_t> r;
    r.reserve(b * h * n * d);
    for (int64_t ib = 0; ib < b; ++ib)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t in = 0; in < n; ++in)
          for (int64_t id = 0; id < d; ++id) r.push_back(bits(ib, ih, in, id));
    return r;
  }
  std::vector<double> logical_doubles() const {
    std::vector<double> r;
    r.reserve(b * h * n * d);
    for (uint16_t u : logical_bits()) r.push_back(decode16(dtype, u));
    return r;
  }
  // Storage positions that are not elements of the tensor and no longer hold `fill`.
  int64_t touched_padding(uint16_t fill = kPoison16) const {
    std::vector<char> own(storage.size(), 0);
    for (int64_t ib = 0; ib < b; ++ib)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t in = 0; in < n; ++in)
          for (int64_t id = 0; id < d; ++id) own[offset(ib, ih, in, id)] = 1;
    int64_t touched = 0;
    for (size_t i = 0; i < storage.size(); ++i)
      if (!own[i] && storage[i] != fill) ++touched;
    return touched;
  }
  // Elements (not padding) that still hold `fill`: never written.
  int64_t unwritten(uint16_t fill = kPoison16) const {
    int64_t count = 0;
    for (uint16_t u : logical_bits()) count += u == fill;
    return count;
  }
};

// An uninitialized-looking tensor: every storage position (elements and padding) holds `fill`.
inline Tensor16 make_tensor16(DType dtype, Layout layout, int64_t b, int64_t h, int64_t n,
                              int64_t d, Padding pad = {}, uint16_t fill = kPoison16) {
  Tensor16 t;
  t.dtype = dtype;
  t.layout = layout;
  t.b = b, t.h = h, t.n = n, t.d = d;
  t.pad = pad;
  if (layout == Layout::kHND) {
    t.stride_n = d + pad.token;
    t.stride_h = n * t.stride_n + pad.head;
    t.stride_b = h * t.stride_h + pad.batch;
  } else {
    t.stride_h = d + pad.head;
    t.stride_n = h * t.stride_h + pad.token;
    t.stride_b = n * t.stride_n + pad.batch;
  }
  t.storage.assign(pad.offset + b * t.stride_b + 1, fill);  // +1: never a zero-size buffer
  return t;
}

// A tensor holding x (logical [B, H, N, D], row-major) rounded to `dtype`.
inline Tensor16 tensor16_from(const std::vector<float>& x, DType dtype, Layout layout, int64_t b,
                              int64_t h, int64_t n, int64_t d, Padding pad = {}) {
  Tensor16 t = make_tensor16(dtype, layout, b, h, n, d, pad);
  int64_t i = 0;
  for (int64_t ib = 0; ib < b; ++ib)
    for (int64_t ih = 0; ih < h; ++ih)
      for (int64_t in = 0; in < n; ++in)
        for (int64_t id = 0; id < d; ++id)
          t.storage[t.offset(ib, ih, in, id)] = encode16(dtype, x[i++]);
  return t;
}

// f32 [B, H, N] (an LSE tensor) with explicit strides; padding positions hold kPoison32.
struct TensorF32 {
  int64_t b = 0, h = 0, n = 0;
  int64_t stride_b = 0, stride_h = 0, stride_n = 0;
  std::vector<float> storage;

  int64_t offset(int64_t ib, int64_t ih, int64_t in) const {
    return ib * stride_b + ih * stride_h + in * stride_n;
  }
  float get(int64_t ib, int64_t ih, int64_t in) const { return storage[offset(ib, ih, in)]; }
  TensorView view() {
    return make_view(storage.data(), DType::kF32, {b, h, n}, {stride_b, stride_h, stride_n});
  }
  std::vector<float> logical() const {
    std::vector<float> r;
    for (int64_t ib = 0; ib < b; ++ib)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t in = 0; in < n; ++in) r.push_back(get(ib, ih, in));
    return r;
  }
  int64_t touched_padding() const {
    std::vector<char> own(storage.size(), 0);
    for (int64_t ib = 0; ib < b; ++ib)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t in = 0; in < n; ++in) own[offset(ib, ih, in)] = 1;
    int64_t touched = 0;
    for (size_t i = 0; i < storage.size(); ++i)
      if (!own[i] && f32_bits(storage[i]) != kPoison32) ++touched;
    return touched;
  }
  int64_t unwritten() const {
    int64_t count = 0;
    for (float f : logical()) count += f32_bits(f) == kPoison32;
    return count;
  }
};

// A contiguous or padded LSE tensor (padding after each token, head and batch), all poisoned.
inline TensorF32 make_lse(int64_t b, int64_t h, int64_t n, int64_t pad_token = 0,
                          int64_t pad_head = 0, int64_t pad_batch = 0) {
  TensorF32 t;
  t.b = b, t.h = h, t.n = n;
  t.stride_n = 1 + pad_token;
  t.stride_h = n * t.stride_n + pad_head;
  t.stride_b = h * t.stride_h + pad_batch;
  t.storage.assign(b * t.stride_b + 1, poison_f32());
  return t;
}

// Bitwise equality of float vectors (so that -inf == -inf and a NaN payload counts), returning the
// number of positions that differ.
inline int64_t count_bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return -1;
  int64_t m = 0;
  for (size_t i = 0; i < a.size(); ++i) m += f32_bits(a[i]) != f32_bits(b[i]);
  return m;
}
inline int64_t count_bit_mismatches(const std::vector<uint16_t>& a,
                                    const std::vector<uint16_t>& b) {
  if (a.size() != b.size()) return -1;
  int64_t m = 0;
  for (size_t i = 0; i < a.size(); ++i) m += a[i] != b[i];
  return m;
}

}  // namespace sageattn::test
