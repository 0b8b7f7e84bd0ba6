// fuzz/fuzz_attention.cpp: a libFuzzer target over the public host API, on the CPU backend.
//
// Each input is decoded into one call of sageattn::attention (dense) or
// sageattn::attention_varlen on host tensors: batch, query and KV heads (GQA), lengths, head dim
// (invalid ones too), HND / NHD, strides (padded, permuted, negative, zero = broadcast or
// overlapping, raw, huge on empty tensors), every option (invalid enum values too), an optional
// LSE, cu_seqlens (monotone or not, wrong ends, lengths above max_seqlen), null data, wrong
// dtypes, ranks and devices. Every buffer is allocated at exactly the size its view spans, so
// AddressSanitizer sees any access outside a view; bytes inside that span but outside the view
// (padding) hold a NaN, so reading them shows up in the output.
//
// From how it built the call the harness knows whether the call is valid, certainly invalid, or
// either, and checks (any failure prints the reason and aborts):
//  1. the call returns, or throws sageattn::Error with code invalid_argument or unsupported;
//     any other exception or code is a bug;
//  2. a valid call succeeds; a call with a certainly invalid argument throws;
//  3. after a throw: out and lse byte-identical to their poison, q / k / v / cu_seqlens unchanged;
//  4. after success: inputs unchanged; no byte of out / lse outside the views written; rows that
//     see no key are exactly 0 with LSE -inf; for finite, moderate inputs and scale every output
//     is finite and every visible LSE finite; where moreover every base-2 logit is below 2^18,
//     each output channel lies within the range of the visible V values, widened by 20% of the
//     channel's largest |V| (the fp8 / fp16 quantization error bound of docs/NUMERICS.md, with
//     margin);
//  5. consistency: the same call on contiguous HND copies gives bit-identical out and LSE
//     (strides and layout change nothing; also determinism), a varlen call equals dense calls on
//     each sequence bit for bit, and the workspace-size queries agree with the call.
//
// Built two ways (fuzz/CMakeLists.txt): with -fsanitize=fuzzer (clang) as the fuzzer, and with
// SAGEATTN_FUZZ_REPLAY as `fuzz_replay`, a plain program that runs files or directories of inputs
// through the same checks (the ctest regression guard over fuzz/corpus) and writes seeds.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#ifdef SAGEATTN_FUZZ_REPLAY
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#endif

#include "common/numerics.h"
#include "sageattn/attention.h"

namespace {

namespace sa = sageattn;
using sa::AttentionOptions;
using sa::DType;
using sa::TensorView;

// Bounds that keep one input fast (a few ms with sanitizers): a view of more elements, or whose
// strides span more, gets null data (the call must then be rejected).
constexpr int64_t kMaxElems = 1 << 14;
constexpr int64_t kMaxSpan = 1 << 16;
// Tame inputs: |x| <= kTameMax and |scale| <= 100 keep every logit and sum far from fp32 and
// fp16 limits, so the outputs must be finite.
constexpr float kTameMax = 1.0e4f;
constexpr uint16_t kNaN16 = 0x7FA5;  // a NaN in both f16 and bf16: the padding of q / k / v
constexpr float kHullSlack = 0.2f;   // output range slack, in units of the channel's max |V|

const char* g_input_name = nullptr;  // the replay driver's current file, for messages

// What the inputs exercised (the replay driver prints it: a corpus of rejected calls only would
// prove little).
struct Stats {
  long inputs = 0, rejected = 0, accepted = 0, accepted_varlen = 0, value_checked = 0,
       range_checked = 0;
} g_stats;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_attention: property violated%s%s: %s\n",
               g_input_name ? " by " : "", g_input_name ? g_input_name : "", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// -------------------------------------------------------------------------------- input bytes
// Reads the fuzzer's bytes in order; past the end every read is 0, which decodes to a small
// valid dense call, so short inputs stay meaningful.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(u8()) << (8 * i);
    return v;
  }
  int pick(int n) { return u8() % n; }
  template <typename T, size_t N>
  T from(const T (&table)[N]) { return table[u8() % N]; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// splitmix64: the values of the tensors, from a seed in the input.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double normal() {  // sum of 4 uniforms, centred and scaled: cheap, bounded, roughly N(0, 1)
    return (uniform() + uniform() + uniform() + uniform() - 2.0) * 1.7320508;
  }

 private:
  uint64_t s_;
};

// ------------------------------------------------------------------------- expected outcome
// Built up while decoding: any certainly invalid argument makes the call invalid; a few
// mutations the API may accept or reject make it "either".
struct Expect {
  bool invalid = false;
  bool either = false;
  std::string why;  // the first invalid argument, for messages and seed names
  // Shape and dtype mutations break agreement between tensors: two of them could agree again
  // (q, k, v and out all one token longer), so a call gets at most one.
  bool relative_mutation = false;
  void bad(const char* reason) {
    if (!invalid) why = reason;
    invalid = true;
  }
};

// ---------------------------------------------------------------------------- one argument
// One tensor argument: the view passed to the API and the exact-size memory behind it.
struct Arg {
  const char* name = "";
  TensorView view;
  std::unique_ptr<uint8_t[]> mem;  // exactly `bytes` long (0 allowed), or null
  int64_t bytes = 0;
  int64_t elem = 2;                // bytes per element as the harness stores them
  int64_t origin = 0;              // element index of view.data inside mem
  std::vector<uint8_t> before;     // mem as it was just before the call
  bool well_formed = true;         // rank, shape and dtype as intended (accessors may be used)
  // Logical coordinates -> view dims (-1: absent): batch, head, token, channel.
  int dim_b = -1, dim_h = -1, dim_n = -1, dim_d = -1;

  int64_t offset(int64_t b, int64_t h, int64_t n, int64_t d) const {
    int64_t o = 0;
    if (dim_b >= 0) o += b * view.stride[dim_b];
    if (dim_h >= 0) o += h * view.stride[dim_h];
    if (dim_n >= 0) o += n * view.stride[dim_n];
    if (dim_d >= 0) o += d * view.stride[dim_d];
    return o;
  }
  uint8_t* at(int64_t b, int64_t h, int64_t n, int64_t d) const {
    return mem.get() + (origin + offset(b, h, n, d)) * elem;
  }
  uint16_t get16(int64_t b, int64_t h, int64_t n, int64_t d) const {
    uint16_t x;
    std::memcpy(&x, at(b, h, n, d), sizeof x);
    return x;
  }
  uint32_t get32(int64_t b, int64_t h, int64_t n) const {
    uint32_t x;
    std::memcpy(&x, at(b, h, n, 0), sizeof x);
    return x;
  }
  void snapshot() {
    before.assign(mem.get(), mem.get() + bytes);
  }
  bool unchanged() const {
    return bytes == 0 || std::memcmp(mem.get(), before.data(), static_cast<size_t>(bytes)) == 0;
  }
};

// Element count of a view with a sane rank; false when a size is negative or the count overflows.
bool count_elems(const TensorView& t, int64_t& count) {
  count = 1;
  for (int i = 0; i < t.ndim; ++i)
    if (t.shape[i] < 0 || __builtin_mul_overflow(count, t.shape[i], &count)) return false;
  return true;
}

// Offsets [lo, hi] (elements, relative to data) a non-empty view touches; false on overflow.
bool view_span(const TensorView& t, int64_t& lo, int64_t& hi) {
  lo = hi = 0;
  for (int i = 0; i < t.ndim; ++i) {
    int64_t reach;
    if (__builtin_mul_overflow(t.shape[i] - 1, t.stride[i], &reach)) return false;
    if (__builtin_add_overflow(reach < 0 ? lo : hi, reach, reach < 0 ? &lo : &hi)) return false;
  }
  return true;
}

// Strides for `t.shape` (rank t.ndim) in one of several memory arrangements. `unit_last` keeps
// the last dim innermost with stride 1 (q / k / v / out; lse may have any strides).
void choose_strides(Reader& r, TensorView& t, bool unit_last) {
  const int n = t.ndim;
  bool empty = false;
  for (int i = 0; i < n; ++i) empty = empty || t.shape[i] == 0;
  // An empty view may have any strides: give it huge ones half of the time.
  const int mode = empty && r.pick(2) ? 7 : r.pick(8);
  int order[sa::kMaxDims] = {0, 1, 2, 3};  // memory order, outermost first
  for (int i = 0; i < n; ++i) order[i] = i;
  const int free_dims = unit_last ? n - 1 : n;
  if (mode == 3 || mode == 4 || (!unit_last && mode == 2)) {  // permute the dims' memory order
    for (int i = free_dims - 1; i > 0; --i) std::swap(order[i], order[r.pick(i + 1)]);
  }
  int64_t running = 1;
  for (int k = n - 1; k >= 0; --k) {
    const int d = order[k];
    t.stride[d] = running;
    const int64_t pad = (mode >= 2 && mode <= 4) ? r.pick(4) : 0;
    // running * (size + pad), saturated: a batch of 2^40 inside other dims cannot be backed
    // anyway, and its strides only have to be numbers.
    if (__builtin_mul_overflow(running, std::max<int64_t>(t.shape[d], 1) + pad, &running))
      running = std::numeric_limits<int64_t>::max() / 4;
  }
  if (mode == 4) {  // negative strides on some dims
    const int mask = r.u8();
    for (int i = 0; i < free_dims; ++i)
      if (mask & (1 << i)) t.stride[i] = -t.stride[i];
  } else if (mode == 5) {  // zero strides: broadcast inputs, overlapping outputs
    const int mask = r.u8() | 1;
    for (int i = 0; i < free_dims; ++i)
      if (mask & (1 << i)) t.stride[i] = 0;
  } else if (mode == 6) {  // small raw strides, any sign, overlaps allowed
    for (int i = 0; i < free_dims; ++i) t.stride[i] = static_cast<int8_t>(r.u8()) * (1 + r.pick(8));
  } else if (mode == 7) {  // huge raw strides: only an empty view can be backed
    static const int64_t kHuge[] = {int64_t(1) << 40, -(int64_t(1) << 40), int64_t(1) << 62,
                                    std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min(), 3, -7};
    for (int i = 0; i < free_dims; ++i) t.stride[i] = r.from(kHuge);
  }
}

// Applies at most one mutation to an argument; each makes the call certainly invalid, except
// null data on an empty view.
void maybe_mutate(Reader& r, Arg& a, Expect& e, bool unit_last) {
  const uint8_t m = r.u8();
  if (m < 216) return;
  TensorView& t = a.view;
  switch (m % 8) {
    case 0: {  // rank
      static const int kRanks[] = {0, 1, 2, 3, 4, 5, -1, 100};
      int nd = r.from(kRanks);
      if (nd == t.ndim) nd = t.ndim + 1;
      t.ndim = nd;
      a.well_formed = false;
      e.bad("ndim");
      return;
    }
    case 1: {  // one size changed: negative, off by one, or huge
      if (t.ndim <= 0 || e.relative_mutation) return;
      e.relative_mutation = true;
      static const int64_t kDelta[] = {1, -1, 8, -100, int64_t(1) << 40,
                                       std::numeric_limits<int64_t>::max() / 2,
                                       std::numeric_limits<int64_t>::min() / 2};
      const int i = r.pick(t.ndim);
      t.shape[i] = t.shape[i] + r.from(kDelta);
      a.well_formed = false;
      e.bad("shape");
      return;
    }
    case 2: {  // dtype
      static const int8_t kDtypes[] = {0, 1, 2, 3, 4, 5, 6, -1, 77};
      const int8_t d = r.from(kDtypes);
      if (d == static_cast<int8_t>(t.dtype) || e.relative_mutation) return;
      e.relative_mutation = true;
      t.dtype = static_cast<DType>(d);
      a.well_formed = false;
      e.bad("dtype");
      return;
    }
    case 3: {  // device: a GPU ordinal on a CPU-only build, or a bad value
      static const int kDevices[] = {0, 1, -2, 1000};
      t.device = r.from(kDevices);
      e.bad("device");
      return;
    }
    case 4:
    case 5: {  // last stride not 1 (lse may have any strides)
      if (!unit_last || t.ndim <= 0 || t.shape[t.ndim - 1] <= 1) return;
      static const int64_t kStrides[] = {0, 2, -1, 3};
      t.stride[t.ndim - 1] = r.from(kStrides);
      e.bad("last-stride");
      return;
    }
    default: {  // null data (only invalid when the view has elements)
      a.view.data = reinterpret_cast<void*>(uintptr_t{1});  // marker: resolved in back()
      return;
    }
  }
}

// Allocates the exact span of a view (when it may have any) and points view.data into it.
// Records an invalid expectation when a non-empty view cannot be backed (it gets null data).
void back(Reader& r, Arg& a, Expect& e, DType stored) {
  TensorView& t = a.view;
  const bool want_null = t.data == reinterpret_cast<void*>(uintptr_t{1});
  t.data = nullptr;
  a.elem = static_cast<int64_t>(std::max<size_t>(sa::dtype_size(stored), 1));
  if (t.ndim < 0 || t.ndim > sa::kMaxDims) {  // an impossible rank: some memory, never read
    a.bytes = 64;
    a.mem.reset(new uint8_t[64]());
    t.data = a.mem.get();
    return;
  }
  int64_t count = 0;
  const bool counted = count_elems(t, count);
  if (counted && count == 0) {  // empty: null, or a zero-size allocation any access would hit
    if (!want_null && r.pick(2) == 0) {
      a.mem.reset(new uint8_t[0]);
      t.data = a.mem.get();
    }
    return;
  }
  int64_t lo = 0, hi = 0, span = 0;
  const bool fits = counted && count <= kMaxElems && view_span(t, lo, hi) &&
                    !__builtin_sub_overflow(hi, lo, &span) && span < kMaxSpan;
  if (want_null || !fits) {
    if (counted) e.bad(want_null ? "null-data" : "unbacked");
    return;
  }
  a.origin = -lo;
  a.bytes = (span + 1) * a.elem;
  a.mem.reset(new uint8_t[static_cast<size_t>(a.bytes)]);
  t.data = a.mem.get() + a.origin * a.elem;
}

// Calls f(b, h, n, d) for every element of a well-formed view, by logical coordinates.
template <typename F>
void for_each_elem(const Arg& a, F&& f) {
  const TensorView& t = a.view;
  const int64_t nb = a.dim_b >= 0 ? t.shape[a.dim_b] : 1;
  const int64_t nh = a.dim_h >= 0 ? t.shape[a.dim_h] : 1;
  const int64_t nn = a.dim_n >= 0 ? t.shape[a.dim_n] : 1;
  const int64_t nd = a.dim_d >= 0 ? t.shape[a.dim_d] : 1;
  if (nb <= 0 || nh <= 0 || nn <= 0 || nd <= 0) return;  // also a batch of 2^40 empty items
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t n = 0; n < nn; ++n)
        for (int64_t d = 0; d < nd; ++d) f(b, h, n, d);
}

// Byte coverage of a well-formed, backed view: coverage[i] = how many elements map to element i
// of its memory. Returns false when two elements share an address (an overlapping output).
bool coverage(const Arg& a, std::vector<uint8_t>& cov) {
  cov.assign(static_cast<size_t>(a.bytes / a.elem), 0);
  bool distinct = true;
  if (!a.mem || a.view.data == nullptr) return true;
  for_each_elem(a, [&](int64_t b, int64_t h, int64_t n, int64_t d) {
    uint8_t& c = cov[static_cast<size_t>(a.origin + a.offset(b, h, n, d))];
    if (c) distinct = false;
    c = 1;
  });
  return distinct;
}

// ------------------------------------------------------------------------------------ values
struct Values {
  int family = 0;  // tame: 0..7; wild: 8..10
  float c = 1.0f;  // a per-tensor constant
};

float tame_value(Rng& g, const Values& v, int64_t h, int64_t n, int64_t d) {
  switch (v.family) {
    case 0: return static_cast<float>(g.normal());
    case 1: return static_cast<float>(static_cast<int>(g.next() % 7) - 3);
    case 2: return v.c * static_cast<float>(1 + (h * 3 + d) % 8) * ((h + d) % 2 ? -1.0f : 1.0f);
    case 3: return 0.25f * static_cast<float>(n % 64) + 0.01f * static_cast<float>(d) - v.c;
    case 4: return 0.0f;
    case 5: {  // outliers: a channel bias and a few channels x30
      const float bias = 6.0f * static_cast<float>(((h * 7 + d * 13) % 11) - 5) / 5.0f;
      const float x = static_cast<float>(g.normal()) + bias;
      return d % 16 == 3 ? 30.0f * x : x;
    }
    case 6: return std::clamp(static_cast<float>(1000.0 * g.normal()), -kTameMax, kTameMax);
    default: return static_cast<float>(1e-5 * g.normal());  // f16 subnormals
  }
}

uint16_t wild_bits(Rng& g, const Values& v, DType dtype) {
  const bool bf = dtype == DType::kBF16;
  switch (v.family) {
    case 8: return static_cast<uint16_t>(g.next());
    case 9: {  // specials among normal values
      static const uint16_t kF16[] = {0x7C00, 0xFC00, 0x7E00, 0x7BFF, 0xFBFF, 0x8000, 0x0001};
      static const uint16_t kBF16[] = {0x7F80, 0xFF80, 0x7FC0, 0x7F7F, 0xFF7F, 0x8000, 0x0001};
      if (g.next() % 8 == 0) return (bf ? kBF16 : kF16)[g.next() % 7];
      break;
    }
    default: {  // huge finite magnitudes (inf in f16)
      const float x = static_cast<float>(g.normal() * (bf ? 1e37 : 6e4));
      return bf ? sa::num::bf16_from_float(x) : sa::num::fp16_from_float(x);
    }
  }
  const float x = static_cast<float>(g.normal());
  return bf ? sa::num::bf16_from_float(x) : sa::num::fp16_from_float(x);
}

// Fills an input: view elements get values, everything else in its span the NaN padding.
void fill_input(const Arg& a, const Values& v, DType dtype, uint64_t seed) {
  if (!a.mem || a.view.data == nullptr) return;
  for (int64_t i = 0; i + 1 < a.bytes; i += 2) std::memcpy(a.mem.get() + i, &kNaN16, 2);
  if (!a.well_formed || a.elem != 2) return;
  Rng g(seed);
  for_each_elem(a, [&](int64_t b, int64_t h, int64_t n, int64_t d) {
    (void)b;
    uint16_t bits;
    if (v.family >= 8) {
      bits = wild_bits(g, v, dtype);
    } else {
      const float x = tame_value(g, v, h, n, d);
      bits = dtype == DType::kBF16 ? sa::num::bf16_from_float(x) : sa::num::fp16_from_float(x);
    }
    std::memcpy(a.at(b, h, n, d), &bits, 2);
  });
}

void fill_poison(const Arg& a, uint64_t seed) {
  Rng g(seed);
  for (int64_t i = 0; i < a.bytes; ++i) a.mem[static_cast<size_t>(i)] = static_cast<uint8_t>(g.next());
}

// ------------------------------------------------------------------------------------ decode
template <typename E>
E decode_enum(Reader& r, int count, Expect& e, const char* name, bool certain = true) {
  const uint8_t v = r.u8();
  if (v < 248) return static_cast<E>(v % count);
  static const int8_t kBad[] = {4, 5, -1, 127, -128, 9, 100, 64};
  int8_t raw = kBad[v % 8];
  if (raw >= 0 && raw < count) raw = static_cast<int8_t>(count);
  if (certain) e.bad(name); else e.either = true;
  return static_cast<E>(raw);
}

struct Case {
  bool varlen = false;
  DType dtype = DType::kF16;
  AttentionOptions opt;
  bool tame = true;  // finite moderate values and scale: outputs must be finite
  int64_t batch = 0, hq = 0, hkv = 0, d = 0;
  std::vector<int64_t> lq, lk;  // lengths per sequence (dense: one entry, nq / nk)
  std::vector<int64_t> cu_q, cu_k;  // varlen: the cu_seqlens values as written
  int64_t max_q = 0, max_k = 0;
  Arg q, k, v, out, lse, cuq, cuk;
  bool want_lse = false;
  Values val[3];
  uint64_t seed = 0;
  bool use_workspace = false;
  Expect expect;
};

int64_t length(Reader& r) {
  static const int64_t kSpecial[] = {64, 65, 127, 128, 129, 1, 17, 200, 63, 300, 0, 1000};
  const uint8_t u = r.u8();
  return u < 208 ? u % 40 : kSpecial[u % 12];
}

// Configures an Arg's view for a q / k / v / out / lse role and applies strides and mutations.
void setup(Reader& r, Case& c, Arg& a, const char* name, DType dtype,
           std::initializer_list<int64_t> shape, int db, int dh, int dn, int dd, bool unit_last) {
  a.name = name;
  a.view = TensorView{};
  a.view.dtype = dtype;
  a.view.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) a.view.shape[i++] = s;
  a.dim_b = db, a.dim_h = dh, a.dim_n = dn, a.dim_d = dd;
  choose_strides(r, a.view, unit_last);
  maybe_mutate(r, a, c.expect, unit_last);
  back(r, a, c.expect, dtype);
}

void decode(Reader& r, Case& c) {
  Expect& e = c.expect;
  const uint8_t mode = r.u8();
  c.varlen = mode & 1;
  c.dtype = (mode & 2) ? DType::kBF16 : DType::kF16;
  c.want_lse = mode & 4;
  const bool wild_values = (mode & 0xE0) == 0xE0;  // 1 in 8
  AttentionOptions& o = c.opt;
  o.layout = decode_enum<sa::Layout>(r, 2, e, "layout", !c.varlen);  // varlen ignores layout
  o.mask = decode_enum<sa::MaskMode>(r, 2, e, "mask");
  o.pv_mode = decode_enum<sa::PvMode>(r, 4, e, "pv_mode");
  o.granularity = decode_enum<sa::Granularity>(r, 3, e, "granularity");
  o.smooth_k = decode_enum<sa::Smoothing>(r, 2, e, "smooth_k");
  o.smooth_v = decode_enum<sa::Smoothing>(r, 2, e, "smooth_v");
  o.backend = decode_enum<sa::Backend>(r, 4, e, "backend");
  if (o.backend == sa::Backend::kSm80 || o.backend == sa::Backend::kSm90) e.bad("backend");

  const uint8_t s = r.u8();
  if (s >= 128 && s < 224) {  // a moderate explicit scale
    static const float kTame[] = {1.0f, 0.125f, 0.5f, 2.0f, 0.0f, -1.0f, -0.0f, 1e-3f,
                                  10.0f, 100.0f, 1e-30f, 0.0883883f};
    o.scale = kTame[s % 12];
  } else if (s >= 224) {  // anything: non-finite, huge, or raw bits
    static const float kWild[] = {std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity(),
                                  std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::max(), 2.3587e38f, 2.3586e38f,
                                  1e30f, std::numeric_limits<float>::denorm_min()};
    uint32_t bits = r.u32();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    o.scale = (s & 1) ? f : kWild[s % 8];
    c.tame = false;
    if (!std::isfinite(*o.scale) ||
        std::isinf(static_cast<float>(static_cast<double>(*o.scale) * sa::kLog2e)))
      e.bad("scale");
  }

  // Sizes. Heads: h_kv in 0..4 (0 is invalid), h_q a multiple, sometimes not.
  static const int64_t kBatch[] = {1, 2, 1, 3, 0, 1, 2, 4, 1, 2, 5, int64_t(1) << 40};
  static const int64_t kHeadsKv[] = {1, 2, 1, 4, 3, 1, 2, 0};
  static const int64_t kDims[] = {64, 8, 16, 128, 32, 24, 40, 48, 56, 72, 80, 96, 112, 136,
                                  160, 192, 200, 248, 256, 64, 128, 8,
                                  0, 4, 7, 12, 65, 129, 255, 257, 264, 512, -8};
  c.batch = r.from(kBatch);
  c.hkv = r.from(kHeadsKv);
  c.hq = c.hkv * (1 + r.pick(4));
  if (r.u8() >= 240) c.hq += 1 + r.pick(3);  // not a multiple (unless h_kv is 1), or h_q > 0 with h_kv 0
  if (r.u8() >= 248) c.hq = 0;               // no query heads: nothing to compute
  c.d = r.from(kDims);
  if (c.hkv < 1 || c.hq % c.hkv != 0) e.bad("heads");
  if (c.d < sa::kMinHeadDim || c.d > sa::kMaxHeadDim || c.d % sa::kHeadDimMultiple != 0)
    e.bad("head_dim");

  const int64_t nseq = c.varlen ? r.pick(6) : c.batch;
  if (c.varlen) {
    c.batch = nseq;
    for (int64_t i = 0; i < nseq; ++i) {
      c.lq.push_back(length(r) % 80);
      c.lk.push_back(length(r) % 80);
    }
  } else {
    const int64_t nq = length(r), nk = length(r);
    c.lq.assign(1, nq);
    c.lk.assign(1, nk);
  }

  c.seed = r.u32();
  for (Values& v : c.val) {
    const uint8_t f = r.u8();
    v.family = wild_values ? 8 + f % 3 : f % 8;
    v.c = static_cast<float>(1 + f % 5) * 0.5f;
  }
  c.tame = c.tame && !wild_values;

  const DType dt = c.dtype;
  if (!c.varlen) {
    const int64_t b = c.batch, nq = c.lq[0], nk = c.lk[0];
    const bool nhd = o.layout == sa::Layout::kNHD;
    const int hd = nhd ? 2 : 1, nd = nhd ? 1 : 2;
    if (nhd) {
      setup(r, c, c.q, "q", dt, {b, nq, c.hq, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.k, "k", dt, {b, nk, c.hkv, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.v, "v", dt, {b, nk, c.hkv, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.out, "out", dt, {b, nq, c.hq, c.d}, 0, hd, nd, 3, true);
    } else {
      setup(r, c, c.q, "q", dt, {b, c.hq, nq, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.k, "k", dt, {b, c.hkv, nk, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.v, "v", dt, {b, c.hkv, nk, c.d}, 0, hd, nd, 3, true);
      setup(r, c, c.out, "out", dt, {b, c.hq, nq, c.d}, 0, hd, nd, 3, true);
    }
    if (c.want_lse) setup(r, c, c.lse, "lse", DType::kF32, {b, c.hq, nq}, 0, 1, 2, -1, false);
  } else {
    c.cu_q.assign(1, 0);
    c.cu_k.assign(1, 0);
    for (int64_t i = 0; i < nseq; ++i) {
      c.cu_q.push_back(c.cu_q.back() + c.lq[i]);
      c.cu_k.push_back(c.cu_k.back() + c.lk[i]);
    }
    int64_t tq = c.cu_q.back(), tk = c.cu_k.back();
    c.max_q = c.lq.empty() ? 0 : *std::max_element(c.lq.begin(), c.lq.end());
    c.max_k = c.lk.empty() ? 0 : *std::max_element(c.lk.begin(), c.lk.end());
    // cu_seqlens mutations: the values written are checked against the rules below.
    const uint8_t m = r.u8();
    if (m >= 160) {
      std::vector<int64_t>& cu = (m & 1) ? c.cu_k : c.cu_q;
      const size_t i = static_cast<size_t>(r.pick(static_cast<int>(cu.size())));
      switch (m % 10) {
        case 0: cu[i] += 1; break;
        case 1: cu[i] -= 1; break;
        case 2: if (i + 1 < cu.size()) std::swap(cu[i], cu[i + 1]); break;
        case 3: cu[i] = std::numeric_limits<int32_t>::min(); break;
        case 4: cu[i] = std::numeric_limits<int32_t>::max(); break;
        case 5: c.max_q = c.max_q - 1; break;
        case 6: c.max_k = c.max_k - 1; break;
        case 7: c.max_q = std::numeric_limits<int64_t>::max(); c.max_k += 1000; break;
        case 8: cu.push_back(cu.back()); break;  // one more entry than the other
        default: (m & 2 ? tq : tk) += 1; break;  // packed total differs from cu[batch]
      }
    }
    // The rules of attention.h: same entry count >= 1, cu[0] = 0, non-decreasing, cu[batch] =
    // total, every length <= max_seqlen >= 0.
    auto check_cu = [&](const std::vector<int64_t>& cu, int64_t total, int64_t max_len) {
      if (cu.empty() || cu[0] != 0 || cu.back() != total) return false;
      for (size_t i = 0; i + 1 < cu.size(); ++i)
        if (cu[i + 1] < cu[i] || cu[i + 1] - cu[i] > max_len) return false;
      return max_len >= 0;
    };
    if (c.cu_q.size() != c.cu_k.size()) e.bad("cu-count");
    if (!check_cu(c.cu_q, tq, c.max_q) || !check_cu(c.cu_k, tk, c.max_k)) e.bad("cu-values");
    if (c.max_q < 0 || c.max_k < 0) e.bad("max_seqlen");
    // Packed tensors; the lengths for the checks come from the unmutated cu.
    setup(r, c, c.q, "q", dt, {tq, c.hq, c.d}, -1, 1, 0, 2, true);
    setup(r, c, c.k, "k", dt, {tk, c.hkv, c.d}, -1, 1, 0, 2, true);
    setup(r, c, c.v, "v", dt, {tk, c.hkv, c.d}, -1, 1, 0, 2, true);
    setup(r, c, c.out, "out", dt, {tq, c.hq, c.d}, -1, 1, 0, 2, true);
    if (c.want_lse) setup(r, c, c.lse, "lse", DType::kF32, {c.hq, tq}, -1, 0, 1, -1, false);
    for (int which = 0; which < 2; ++which) {
      Arg& a = which ? c.cuk : c.cuq;
      const std::vector<int64_t>& cu = which ? c.cu_k : c.cu_q;
      a.name = which ? "cu_seqlens_k" : "cu_seqlens_q";
      a.view = TensorView{};
      a.view.dtype = DType::kI32;
      a.view.ndim = 1;
      a.view.shape[0] = static_cast<int64_t>(cu.size());
      a.view.stride[0] = 1;
      a.dim_n = 0;
      if (r.u8() >= 232) {  // the whole array empty: no entry at all
        a.view.shape[0] = 0;
        e.bad("cu-empty");
      }
      maybe_mutate(r, a, e, true);
      back(r, a, e, DType::kI32);
      if (a.mem && a.view.data && a.well_formed && a.view.shape[0] > 0) {
        for (int64_t i = 0; i < a.bytes; ++i) a.mem[static_cast<size_t>(i)] = 0xEE;
        for (size_t i = 0; i < cu.size(); ++i) {
          const int32_t x = static_cast<int32_t>(cu[i]);
          std::memcpy(a.at(0, 0, static_cast<int64_t>(i), 0), &x, sizeof x);
        }
      }
    }
    // The harness's own bookkeeping uses the unmutated lengths; with a cu mutation the call is
    // invalid and those are never read.
    c.lq.clear();
    c.lk.clear();
    for (size_t i = 0; i + 1 < c.cu_q.size() && i + 1 < c.cu_k.size(); ++i) {
      c.lq.push_back(c.cu_q[i + 1] - c.cu_q[i]);
      c.lk.push_back(c.cu_k[i + 1] - c.cu_k[i]);
    }
  }
  c.use_workspace = r.pick(4) == 0;
}

// --------------------------------------------------------------------------------- the call
struct Outcome {
  bool ok = false;
  sa::ErrorCode code = sa::ErrorCode::kInternal;
  std::string message;
};

template <typename F>
Outcome call(F&& f) {
  Outcome r;
  try {
    f();
    r.ok = true;
  } catch (const sa::Error& err) {
    r.code = err.code();
    r.message = err.what();
  } catch (const std::exception& ex) {
    fail(std::string("a non-sageattn exception escaped: ") + typeid(ex).name() + ": " + ex.what());
  } catch (...) {
    fail("a non-std exception escaped");
  }
  return r;
}

void check_error(const Outcome& r, const char* what) {
  if (r.code != sa::ErrorCode::kInvalidArgument && r.code != sa::ErrorCode::kUnsupported)
    fail(std::string(what) + " threw an Error of code " + sa::to_string(r.code) + ": " + r.message);
  if (r.message.empty()) fail(std::string(what) + " threw an Error without a message");
}

sa::VarlenArgs varlen_args(const Case& c) {
  sa::VarlenArgs a;
  a.q = c.q.view, a.k = c.k.view, a.v = c.v.view, a.out = c.out.view;
  a.cu_seqlens_q = c.cuq.view, a.cu_seqlens_k = c.cuk.view;
  a.max_seqlen_q = c.max_q, a.max_seqlen_k = c.max_k;
  if (c.want_lse) a.lse = c.lse.view;
  return a;
}

// Contiguous copies of the logical q / k / v (dense: HND [B,H,N,D]; varlen: packed [T,H,D]).
struct Canon {
  std::vector<uint16_t> q, k, v, out;
  std::vector<float> lse;
};

std::vector<uint16_t> canon_copy(const Arg& a, int64_t nb, int64_t nh, int64_t nn, int64_t nd) {
  std::vector<uint16_t> x(static_cast<size_t>(nb * nh * nn * nd));
  size_t i = 0;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t n = 0; n < nn; ++n)
        for (int64_t d = 0; d < nd; ++d) x[i++] = a.get16(b, h, n, d);
  return x;
}

float decode16(DType dt, uint16_t x) {
  return dt == DType::kBF16 ? sa::num::bf16_to_float(x) : sa::num::fp16_to_float(x);
}

uint32_t bits32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

constexpr uint32_t kNegInfBits = 0xFF800000u;

// Checks of a successful call's output on the canonical copies: exact zeros / -inf for rows that
// see no key; for tame inputs finite values inside the widened range of the visible V rows.
// seq: sequences as (q0, nq, k0, nk) in token units of the canonical arrays, dense batch b at
// q0 = b * nq.
// Returns whether the V range check applied.
bool check_values(const Case& c, const Canon& cn, bool have_lse, int64_t tq_total) {
  const int64_t hq = c.hq, hkv = c.hkv, dd = c.d;
  const int64_t group = hkv > 0 ? hq / hkv : 1;
  const bool causal = c.opt.mask == sa::MaskMode::kCausal;
  const float widen = c.opt.smooth_v == sa::Smoothing::kOn ? 2.0f : 1.0f;
  const int64_t nseq = c.varlen ? static_cast<int64_t>(c.lq.size()) : c.batch;
  // The range check needs every base-2 logit |scale log2(e) q.k'| below 2^18: beyond, fp32 loses
  // the log2(448) offset of the fp8 modes' P (m - log2(448) rounds) and the largest P is no
  // longer 448, a known limit (docs/FUZZING.md). Bound: sum over channels of max |q| max |k'|,
  // with |k'| = |k - mean| <= 2 max |k| when K is smoothed.
  const size_t ud = static_cast<size_t>(dd);
  std::vector<double> aq(ud, 0.0), ak(ud, 0.0);
  for (size_t i = 0; i < cn.q.size(); ++i)
    aq[i % ud] = std::max<double>(aq[i % ud], std::fabs(decode16(c.dtype, cn.q[i])));
  for (size_t i = 0; i < cn.k.size(); ++i)
    ak[i % ud] = std::max<double>(ak[i % ud], std::fabs(decode16(c.dtype, cn.k[i])));
  double logit_bound = 0.0;
  for (int64_t d = 0; d < dd; ++d)
    logit_bound += aq[static_cast<size_t>(d)] * ak[static_cast<size_t>(d)] *
                   (c.opt.smooth_k == sa::Smoothing::kOn ? 2.0 : 1.0);
  const double scale = c.opt.scale ? *c.opt.scale : 1.0 / std::sqrt(static_cast<double>(dd));
  const bool check_range = std::fabs(scale) * sa::kLog2e * logit_bound <= 0x1.0p18;
  int64_t q0 = 0, k0 = 0;
  std::vector<float> lo, hi, amax;
  for (int64_t s = 0; s < nseq; ++s) {
    const int64_t nq = c.varlen ? c.lq[s] : c.lq[0];
    const int64_t nk = c.varlen ? c.lk[s] : c.lk[0];
    // Element (h, n, d) of sequence s in the canonical arrays.
    auto qidx = [&](int64_t h, int64_t n, int64_t d) {
      return c.varlen ? ((q0 + n) * hq + h) * dd + d : ((s * hq + h) * nq + n) * dd + d;
    };
    auto kidx = [&](int64_t h, int64_t n, int64_t d) {
      return c.varlen ? ((k0 + n) * hkv + h) * dd + d : ((s * hkv + h) * nk + n) * dd + d;
    };
    auto lidx = [&](int64_t h, int64_t n) {
      return c.varlen ? h * tq_total + q0 + n : (s * hq + h) * nq + n;
    };
    for (int64_t hk = 0; hk < hkv; ++hk) {
      // Per channel: running min / max of V over keys 0..j (prefix, for causal rows), and the
      // channel's largest |V| over the whole sequence (the quantization scale's reference).
      lo.assign(static_cast<size_t>(nk * dd), 0.0f);
      hi.assign(static_cast<size_t>(nk * dd), 0.0f);
      amax.assign(static_cast<size_t>(dd), 0.0f);
      for (int64_t j = 0; j < nk; ++j)
        for (int64_t d = 0; d < dd; ++d) {
          const float x = decode16(c.dtype, cn.v[static_cast<size_t>(kidx(hk, j, d))]);
          const size_t at = static_cast<size_t>(j * dd + d);
          lo[at] = j ? std::min(lo[at - dd], x) : x;
          hi[at] = j ? std::max(hi[at - dd], x) : x;
          amax[static_cast<size_t>(d)] = std::max(amax[static_cast<size_t>(d)], std::fabs(x));
        }
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h)
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t last = causal ? std::min(i + nk - nq, nk - 1) : nk - 1;
          const uint32_t lbits = have_lse ? bits32(cn.lse[static_cast<size_t>(lidx(h, i))]) : 0;
          if (last < 0) {
            for (int64_t d = 0; d < dd; ++d)
              if (cn.out[static_cast<size_t>(qidx(h, i, d))] != 0)
                fail("a row that sees no key is not exactly 0 (seq " + std::to_string(s) +
                     ", head " + std::to_string(h) + ", row " + std::to_string(i) + ")");
            if (have_lse && lbits != kNegInfBits)
              fail("the LSE of a row that sees no key is not -inf");
            continue;
          }
          if (!c.tame) continue;
          if (have_lse && !std::isfinite(cn.lse[static_cast<size_t>(lidx(h, i))]))
            fail("non-finite LSE for finite inputs (seq " + std::to_string(s) + ", head " +
                 std::to_string(h) + ", row " + std::to_string(i) + ")");
          for (int64_t d = 0; d < dd; ++d) {
            const float o = decode16(c.dtype, cn.out[static_cast<size_t>(qidx(h, i, d))]);
            const size_t at = static_cast<size_t>(last * dd + d);
            const float slack = kHullSlack * widen * amax[static_cast<size_t>(d)];
            if (!std::isfinite(o))
              fail("non-finite output for finite inputs (seq " + std::to_string(s) + ", head " +
                   std::to_string(h) + ", row " + std::to_string(i) + ", channel " +
                   std::to_string(d) + ")");
            if (check_range && (o < lo[at] - slack || o > hi[at] + slack)) {
              std::string vs;  // the channel's first V values, for triage
              for (int64_t j = 0; j < std::min<int64_t>(nk, 8); ++j)
                vs += " " + std::to_string(decode16(c.dtype, cn.v[static_cast<size_t>(kidx(hk, j, d))]));
              fail("output " + std::to_string(o) + " outside the visible V range [" +
                   std::to_string(lo[at]) + ", " + std::to_string(hi[at]) + "] +- " +
                   std::to_string(slack) + " (seq " + std::to_string(s) + ", head " +
                   std::to_string(h) + ", row " + std::to_string(i) + ", channel " +
                   std::to_string(d) + "; V over the sequence:" + vs + ")");
            }
          }
        }
    }
    if (c.varlen) q0 += nq, k0 += nk;
  }
  return c.tame && check_range;
}

TensorView contiguous(void* data, DType dt, std::initializer_list<int64_t> shape) {
  return sa::make_contiguous_view(data, dt, shape);
}

// Runs one decoded case; aborts on a violated property.
void run_case(Case& c) {
  // Poison the outputs, remember every buffer.
  if (c.out.mem) fill_poison(c.out, c.seed ^ 0x0B7u);
  if (c.lse.mem) fill_poison(c.lse, c.seed ^ 0x15Eu);
  fill_input(c.q, c.val[0], c.dtype, c.seed + 1);
  fill_input(c.k, c.val[1], c.dtype, c.seed + 2);
  fill_input(c.v, c.val[2], c.dtype, c.seed + 3);
  Arg* all[] = {&c.q, &c.k, &c.v, &c.out, &c.lse, &c.cuq, &c.cuk};
  for (Arg* a : all)
    if (a->mem) a->snapshot();
  uint8_t scratch[64] = {};
  const sa::Workspace ws = c.use_workspace ? sa::Workspace{scratch, sizeof scratch} : sa::Workspace{};
  const TensorView lse_arg = c.want_lse ? c.lse.view : TensorView{};

  const Outcome r = call([&] {
    if (c.varlen)
      sa::attention_varlen(varlen_args(c), c.opt, ws);
    else
      sa::attention(c.q.view, c.k.view, c.v.view, c.out.view, c.opt, lse_arg, ws);
  });
  for (Arg* a : {&c.q, &c.k, &c.v, &c.cuq, &c.cuk})
    if (a->mem && !a->unchanged()) fail(std::string("input ") + a->name + " was modified");

  // The workspace queries validate the same arguments (dense: with out = q and no lse).
  size_t ws_bytes = 0;
  const Outcome rw = call([&] {
    ws_bytes = c.varlen ? sa::attention_varlen_workspace_size(varlen_args(c), c.opt)
                        : sa::attention_workspace_size(c.q.view, c.k.view, c.v.view, c.opt);
  });
  if (rw.ok && ws_bytes != 0) fail("the CPU backend asked for a workspace");
  if (!rw.ok) check_error(rw, "a workspace-size query");
  if (c.varlen && rw.ok != r.ok) fail("attention_varlen_workspace_size and attention_varlen disagree");
  if (!c.varlen && r.ok && !rw.ok) fail("attention_workspace_size rejects a valid call: " + rw.message);

  ++g_stats.inputs;
  ++(r.ok ? g_stats.accepted : g_stats.rejected);
  if (r.ok && c.varlen) ++g_stats.accepted_varlen;
  if (!r.ok) {
    check_error(r, "the call");
    if (!c.expect.invalid && !c.expect.either) fail("a valid call was rejected: " + r.message);
    for (Arg* a : {&c.out, &c.lse})
      if (a->mem && !a->unchanged())
        fail(std::string(a->name) + " was written by a call that threw: " + r.message);
    return;
  }
  if (c.expect.invalid) fail(std::string("an invalid call was accepted (") + c.expect.why + ")");

  // Success: nothing outside the output views written.
  std::vector<uint8_t> cov;
  bool distinct[2] = {true, true};
  int idx = 0;
  for (Arg* a : {&c.out, &c.lse}) {
    const int i = idx++;
    if (!a->mem || (a == &c.lse && !c.want_lse)) continue;
    distinct[i] = coverage(*a, cov);
    for (int64_t byte = 0; byte < a->bytes; ++byte)
      if (!cov[static_cast<size_t>(byte / a->elem)] && a->mem[static_cast<size_t>(byte)] != a->before[static_cast<size_t>(byte)])
        fail(std::string(a->name) + " was written outside its view (byte " + std::to_string(byte) + ")");
  }
  if (!distinct[0]) return;  // overlapping out: element values are not defined one by one
  int64_t rows = 0;            // query rows of the call: none (e.g. 2^40 empty batches) -> done
  if (__builtin_mul_overflow(c.varlen ? c.q.view.shape[0] : c.batch * c.lq[0], c.hq, &rows) ||
      rows == 0)
    return;
  const bool have_lse = c.want_lse && distinct[1] && c.lse.view.data != nullptr;

  // Canonical copies, and the same call on them: bit-identical results.
  const int64_t hq = c.hq, hkv = c.hkv, dd = c.d;
  Canon cn;
  int64_t tq = 0, tk = 0;
  if (c.varlen) tq = c.q.view.shape[0], tk = c.k.view.shape[0];
  const int64_t nq = c.varlen ? 0 : c.lq[0], nk = c.varlen ? 0 : c.lk[0];
  if (c.varlen) {
    auto packed = [&](const Arg& a, int64_t t, int64_t h) {
      std::vector<uint16_t> x(static_cast<size_t>(t * h * dd));
      for (int64_t n = 0; n < t; ++n)
        for (int64_t hh = 0; hh < h; ++hh)
          for (int64_t d = 0; d < dd; ++d)
            x[static_cast<size_t>((n * h + hh) * dd + d)] = a.get16(0, hh, n, d);
      return x;
    };
    cn.q = packed(c.q, tq, hq);
    cn.k = packed(c.k, tk, hkv);
    cn.v = packed(c.v, tk, hkv);
    cn.out = packed(c.out, tq, hq);
    if (have_lse) {
      cn.lse.resize(static_cast<size_t>(hq * tq));
      for (int64_t h = 0; h < hq; ++h)
        for (int64_t n = 0; n < tq; ++n) {
          const uint32_t u = c.lse.get32(0, h, n);
          std::memcpy(&cn.lse[static_cast<size_t>(h * tq + n)], &u, 4);
        }
    }
  } else {
    cn.q = canon_copy(c.q, c.batch, hq, nq, dd);
    cn.k = canon_copy(c.k, c.batch, hkv, nk, dd);
    cn.v = canon_copy(c.v, c.batch, hkv, nk, dd);
    cn.out = canon_copy(c.out, c.batch, hq, nq, dd);
    if (have_lse) {
      cn.lse.resize(static_cast<size_t>(c.batch * hq * nq));
      size_t i = 0;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t h = 0; h < hq; ++h)
          for (int64_t n = 0; n < nq; ++n) {
            const uint32_t u = c.lse.get32(b, h, n);
            std::memcpy(&cn.lse[i++], &u, 4);
          }
    }
  }
  if (!cn.out.empty() || !cn.lse.empty()) {
    std::vector<uint16_t> out2(cn.out.size(), 0x5555);
    std::vector<float> lse2(cn.lse.size(), 1234.5f);
    AttentionOptions o2 = c.opt;
    o2.layout = sa::Layout::kHND;
    const Outcome r2 = call([&] {
      if (c.varlen) {
        sa::VarlenArgs a = varlen_args(c);
        a.q = contiguous(cn.q.data(), c.dtype, {tq, hq, dd});
        a.k = contiguous(cn.k.data(), c.dtype, {tk, hkv, dd});
        a.v = contiguous(cn.v.data(), c.dtype, {tk, hkv, dd});
        a.out = contiguous(out2.data(), c.dtype, {tq, hq, dd});
        a.lse = have_lse ? contiguous(lse2.data(), DType::kF32, {hq, tq}) : TensorView{};
        sa::attention_varlen(a, o2);
      } else {
        sa::attention(contiguous(cn.q.data(), c.dtype, {c.batch, hq, nq, dd}),
                      contiguous(cn.k.data(), c.dtype, {c.batch, hkv, nk, dd}),
                      contiguous(cn.v.data(), c.dtype, {c.batch, hkv, nk, dd}),
                      contiguous(out2.data(), c.dtype, {c.batch, hq, nq, dd}), o2,
                      have_lse ? contiguous(lse2.data(), DType::kF32, {c.batch, hq, nq})
                               : TensorView{});
      }
    });
    if (!r2.ok) fail("the same call on contiguous HND copies was rejected: " + r2.message);
    if (out2 != cn.out) fail("out differs between the strided call and the contiguous one");
    for (size_t i = 0; i < lse2.size(); ++i)
      if (bits32(lse2[i]) != bits32(cn.lse[i]))
        fail("lse differs between the strided call and the contiguous one");
  }

  // Varlen == dense on each sequence alone, bit for bit (docs/NUMERICS.md section 1).
  if (c.varlen) {
    int64_t q0 = 0, k0 = 0;
    for (size_t s = 0; s < c.lq.size(); ++s) {
      const int64_t lq = c.lq[s], lk = c.lk[s];
      std::vector<uint16_t> o(static_cast<size_t>(lq * hq * dd), 0x5555);
      std::vector<float> l(static_cast<size_t>(hq * lq), 1234.5f);
      AttentionOptions o2 = c.opt;
      o2.layout = sa::Layout::kNHD;
      const Outcome r3 = call([&] {
        sa::attention(contiguous(cn.q.data() + q0 * hq * dd, c.dtype, {1, lq, hq, dd}),
                      contiguous(cn.k.data() + k0 * hkv * dd, c.dtype, {1, lk, hkv, dd}),
                      contiguous(cn.v.data() + k0 * hkv * dd, c.dtype, {1, lk, hkv, dd}),
                      contiguous(o.data(), c.dtype, {1, lq, hq, dd}), o2,
                      have_lse ? contiguous(l.data(), DType::kF32, {1, hq, lq}) : TensorView{});
      });
      if (!r3.ok) fail("a varlen sequence as a dense call was rejected: " + r3.message);
      if (!std::equal(o.begin(), o.end(), cn.out.begin() + q0 * hq * dd))
        fail("varlen differs from dense on sequence " + std::to_string(s));
      if (have_lse)
        for (int64_t h = 0; h < hq; ++h)
          for (int64_t n = 0; n < lq; ++n)
            if (bits32(l[static_cast<size_t>(h * lq + n)]) !=
                bits32(cn.lse[static_cast<size_t>(h * tq + q0 + n)]))
              fail("varlen LSE differs from dense on sequence " + std::to_string(s));
      q0 += lq, k0 += lk;
    }
  }
  const bool range_checked = check_values(c, cn, have_lse, tq);
  if (c.tame) ++g_stats.value_checked;
  if (range_checked) ++g_stats.range_checked;
}

// The small public helpers, on values from the input: never a crash, never a wrong name.
void check_helpers(Reader& r) {
  const int8_t raw = static_cast<int8_t>(r.u8());
  if (sa::to_string(static_cast<DType>(raw)) == nullptr || sa::to_string(static_cast<sa::PvMode>(raw)) == nullptr ||
      sa::to_string(static_cast<sa::Backend>(raw)) == nullptr || sa::to_string(static_cast<sa::Layout>(raw)) == nullptr)
    fail("to_string returned null");
  if (raw > 5 && sa::dtype_size(static_cast<DType>(raw)) != 0) fail("dtype_size of an invalid dtype");
  if (sa::gpu_available()) fail("gpu_available() is true in the CPU-only build");
  const Outcome rp = call([&] {
    const sa::PvMode m = sa::resolve_pv_mode(static_cast<sa::PvMode>(raw & 3), sa::kHostDevice);
    if (m == sa::PvMode::kAuto) fail("resolve_pv_mode returned auto");
  });
  if (!rp.ok) fail("resolve_pv_mode threw for the host: " + rp.message);
  const Outcome rd = call([&] { sa::resolve_pv_mode(sa::PvMode::kAuto, 1 + (raw & 7)); });
  if (rd.ok) fail("resolve_pv_mode accepted a GPU device in the CPU-only build");
  check_error(rd, "resolve_pv_mode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  Case c;
  decode(r, c);
  run_case(c);
  check_helpers(r);
  return 0;
}

#ifdef SAGEATTN_FUZZ_REPLAY
// ------------------------------------------------------------------------- replay and seeds
// fuzz_replay PATH...            runs every file (directories: every file in them, sorted)
//                                through the target; fails if there is none
// fuzz_replay --describe FILE    prints the call FILE decodes to
// fuzz_replay --write-seeds DIR  writes seed inputs: the first of many biased random inputs in
//                                each class (valid calls by kind, dtype, mask and P·V mode;
//                                invalid calls by the argument that makes them invalid)
namespace {

std::string classify(const Case& c) {
  const char* kind = c.varlen ? "varlen" : c.opt.layout == sa::Layout::kNHD ? "nhd" : "hnd";
  const bool valid = !c.expect.invalid && !c.expect.either;
  // Regression inputs of the library bugs the fuzzer found (docs/FUZZING.md): a corpus merged by
  // coverage of the fixed code would drop them.
  if (valid && !c.varlen && c.batch >= (int64_t(1) << 40)) return "regression-empty-huge-batch";
  if (valid && !c.varlen && c.batch >= 2 && c.hq > 0 && c.lq[0] > 0 && c.lk[0] == 0 &&
      c.k.view.stride[0] == std::numeric_limits<int64_t>::min())
    return "regression-empty-kv-huge-stride";
  if (c.expect.invalid) return std::string("invalid-") + (c.varlen ? "varlen-" : "dense-") + c.expect.why;
  if (c.expect.either) return std::string("either-") + kind;
  if (!c.tame) return std::string("valid-wild-") + kind;
  return std::string("valid-") + kind + "-" + sa::to_string(c.dtype) + "-" +
         sa::to_string(c.opt.mask) + "-" + sa::to_string(c.opt.pv_mode);
}

void describe_view(const Arg& a) {
  const TensorView& t = a.view;
  std::printf("  %-13s dtype %s device %d data %s ndim %d shape [", a.name, sa::to_string(t.dtype),
              t.device, t.data ? "set" : "null", t.ndim);
  for (int i = 0; i < std::min(t.ndim, sa::kMaxDims); ++i)
    std::printf("%s%lld", i ? ", " : "", static_cast<long long>(t.shape[i]));
  std::printf("] stride [");
  for (int i = 0; i < std::min(t.ndim, sa::kMaxDims); ++i)
    std::printf("%s%lld", i ? ", " : "", static_cast<long long>(t.stride[i]));
  std::printf("]\n");
}

// Prints the call an input decodes to (fuzz_replay --describe FILE): for triaging a crash.
void describe(const Case& c) {
  const AttentionOptions& o = c.opt;
  std::printf("%s call, expected %s%s%s; values %s\n", c.varlen ? "varlen" : "dense",
              c.expect.invalid ? "invalid: " : c.expect.either ? "valid or invalid" : "valid",
              c.expect.why.c_str(), "", c.tame ? "finite (checked)" : "any");
  std::printf("  options: layout %d mask %d pv_mode %d granularity %d smooth_k %d smooth_v %d "
              "backend %d scale %s%g\n", int(o.layout), int(o.mask), int(o.pv_mode),
              int(o.granularity), int(o.smooth_k), int(o.smooth_v), int(o.backend),
              o.scale ? "" : "default ", o.scale ? double(*o.scale) : 0.0);
  std::printf("  batch %lld heads_q %lld heads_kv %lld head_dim %lld max_seqlen %lld/%lld\n",
              static_cast<long long>(c.batch), static_cast<long long>(c.hq),
              static_cast<long long>(c.hkv), static_cast<long long>(c.d),
              static_cast<long long>(c.max_q), static_cast<long long>(c.max_k));
  for (const Arg* a : {&c.q, &c.k, &c.v, &c.out})
    describe_view(*a);
  if (c.want_lse) describe_view(c.lse);
  if (c.varlen) {
    describe_view(c.cuq);
    describe_view(c.cuk);
    for (const auto* cu : {&c.cu_q, &c.cu_k}) {
      std::printf("  cu values:");
      for (int64_t x : *cu) std::printf(" %lld", static_cast<long long>(x));
      std::printf("\n");
    }
  }
}

int write_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  Rng g(20261123);
  std::map<std::string, std::vector<uint8_t>> seeds;
  for (int attempt = 0; attempt < 200000; ++attempt) {
    // Mostly small bytes (the valid choices of the decoder), sometimes any byte.
    std::vector<uint8_t> bytes(24 + g.next() % 72);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(g.next() % 10 ? g.next() % 160 : g.next());
    Reader r(bytes.data(), bytes.size());
    Case c;
    decode(r, c);
    seeds.emplace(classify(c), bytes);
  }
  for (const auto& [name, bytes] : seeds) {
    std::ofstream f(dir / (name.rfind("regression-", 0) == 0 ? name : "seed-" + name), std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::printf("fuzz_replay: wrote %zu seeds to %s\n", seeds.size(), dir.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") return write_seeds(argv[2]);
  if (argc == 3 && std::string(argv[1]) == "--describe") {
    std::ifstream f(argv[2], std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Reader r(bytes.data(), bytes.size());
    Case c;
    decode(r, c);
    describe(c);
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: fuzz_replay PATH... | fuzz_replay --write-seeds DIR\n");
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (fs::is_directory(argv[i])) {
      for (const auto& entry : fs::directory_iterator(argv[i]))
        if (entry.is_regular_file()) files.push_back(entry.path());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& path : files) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "fuzz_replay: cannot read %s\n", path.string().c_str());
      return 2;
    }
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string name = path.string();
    g_input_name = name.c_str();
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  g_input_name = nullptr;
  if (files.empty()) {
    std::fprintf(stderr, "fuzz_replay: no input files found\n");
    return 1;
  }
  std::printf("fuzz_replay: %zu inputs, every property held: %ld calls rejected, %ld accepted "
              "(%ld varlen; %ld with finite inputs checked for finite outputs, %ld of them also "
              "against the V range)\n",
              files.size(), g_stats.rejected, g_stats.accepted, g_stats.accepted_varlen,
              g_stats.value_checked, g_stats.range_checked);
  return 0;
}
#endif  // SAGEATTN_FUZZ_REPLAY
