// src/cpu/metrics.cpp: the one comparator (see metrics.h).
#include "cpu/metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace sageattn::cpu {
namespace {

std::string coords(int64_t index, const std::vector<int64_t>& shape, int64_t n) {
  std::ostringstream os;
  int64_t count = 1;
  for (int64_t s : shape) count *= s;
  if (shape.empty() || count != n) {  // no shape, or one that does not describe n elements
    os << "[" << index << "]";
    return os.str();
  }
  std::vector<int64_t> c(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    c[i] = shape[i] > 0 ? index % shape[i] : 0;
    index = shape[i] > 0 ? index / shape[i] : 0;
  }
  os << "[";
  for (size_t i = 0; i < c.size(); ++i) os << (i ? ", " : "") << c[i];
  os << "]";
  return os.str();
}

bool same_nonfinite(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b;  // both inf of one sign
}

}  // namespace

ErrorMetrics error_metrics(const double* ref, const double* out, int64_t n) {
  ErrorMetrics m;
  // The cosine is taken on r / max|r| and o / max|o|, so it survives magnitudes whose squares
  // would underflow or overflow.
  double ref_max = 0, out_max = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(ref[i]) && std::isfinite(out[i]))
      ref_max = std::max(ref_max, std::fabs(ref[i])), out_max = std::max(out_max, std::fabs(out[i]));
  double dot = 0, rr = 0, oo = 0, l1 = 0, r1 = 0, sq = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = ref[i], o = out[i];
    if (!std::isfinite(r) || !std::isfinite(o)) {
      if (!same_nonfinite(r, o)) ++m.nonfinite_mismatch;
      continue;
    }
    ++finite;
    const double e = std::fabs(o - r);
    const double rs = ref_max > 0 ? r / ref_max : 0.0, os = out_max > 0 ? o / out_max : 0.0;
    dot += os * rs;
    rr += rs * rs;
    oo += os * os;
    l1 += e;
    r1 += std::fabs(r);
    sq += e * e;
    if (m.worst < 0 || e > m.max_abs) {
      m.max_abs = e;
      m.worst = i;
    }
  }
  m.cos = (rr == 0 && oo == 0) ? 1.0 : (rr == 0 || oo == 0) ? 0.0 : dot / (std::sqrt(rr) * std::sqrt(oo));
  m.rel_l1 = r1 == 0 ? (l1 == 0 ? 0.0 : INFINITY) : l1 / r1;
  m.rmse = finite ? std::sqrt(sq / static_cast<double>(finite)) : 0.0;
  return m;
}

CompareResult compare(const double* ref, const double* out, int64_t n, const Tolerance& tol,
                      const std::vector<int64_t>& shape) {
  CompareResult res;
  res.metrics = error_metrics(ref, out, n);
  int64_t worst = -1;
  double worst_excess = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(ref[i]) || !std::isfinite(out[i])) continue;
    const double bound = tol.atol + tol.rtol * std::fabs(ref[i]);
    const double e = std::fabs(out[i] - ref[i]);
    if (e > bound) {
      ++res.violations;
      if (worst < 0 || e - bound > worst_excess) worst = i, worst_excess = e - bound;
    }
  }
  std::ostringstream os;
  if (res.metrics.nonfinite_mismatch)
    os << res.metrics.nonfinite_mismatch << " NaN/Inf position(s) differ; ";
  if (res.violations)
    os << res.violations << " of " << n << " elements outside atol=" << tol.atol
       << " + rtol=" << tol.rtol << "*|ref|, worst at " << coords(worst, shape, n)
       << ": out=" << out[worst] << " ref=" << ref[worst] << "; ";
  if (!(res.metrics.cos >= tol.min_cos))  // a NaN cosine fails too
    os << "cos=" << res.metrics.cos << " < " << tol.min_cos << "; ";
  res.message = os.str();
  res.ok = res.message.empty();
  if (!res.ok && res.metrics.worst >= 0)
    res.message += "max abs error " + std::to_string(res.metrics.max_abs) + " at " +
                   coords(res.metrics.worst, shape, n);
  return res;
}

}  // namespace sageattn::cpu
