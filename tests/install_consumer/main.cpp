// Downstream consumer: a small CPU attention call through the installed headers and library.
// Attention output rows are convex combinations of V rows, so every output must lie within V's
// per-channel range; a broken install or link would fail to build or violate this.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <sageattn/attention.h>

static uint16_t to_bf16(float x) {  // truncation is fine for test inputs
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>(u >> 16);
}
static float from_bf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

int main() {
  const int64_t b = 1, h = 2, n = 33, d = 64;
  const size_t count = static_cast<size_t>(b * h * n * d);
  std::vector<uint16_t> q(count), k(count), v(count), out(count, 0xFFFF);
  for (size_t i = 0; i < count; ++i) {
    q[i] = to_bf16(std::sin(0.37f * float(i)));
    k[i] = to_bf16(std::cos(0.11f * float(i)));
    v[i] = to_bf16(std::sin(0.05f * float(i) + 1.0f));
  }
  using sageattn::DType;
  auto view = [&](std::vector<uint16_t>& x) {
    return sageattn::make_contiguous_view(x.data(), DType::kBF16, {b, h, n, d});
  };
  sageattn::attention(view(q), view(k), view(v), view(out));
  for (int64_t hh = 0; hh < h; ++hh)
    for (int64_t c = 0; c < d; ++c) {
      float lo = INFINITY, hi = -INFINITY;
      for (int64_t t = 0; t < n; ++t) {
        const float x = from_bf16(v[(hh * n + t) * d + c]);
        lo = std::min(lo, x), hi = std::max(hi, x);
      }
      const float tol = 0.05f * (hi - lo) + 1e-3f;
      for (int64_t t = 0; t < n; ++t) {
        const float o = from_bf16(out[(hh * n + t) * d + c]);
        if (!(o >= lo - tol && o <= hi + tol)) {
          std::printf("consumer: out[%lld, %lld, %lld] = %g outside V's range [%g, %g]\n",
                      (long long)hh, (long long)t, (long long)c, o, lo, hi);
          return 1;
        }
      }
    }
  std::printf("consumer: sageattn %s OK (gpu_available=%d)\n", sageattn::version(),
              int(sageattn::gpu_available()));
  return 0;
}
