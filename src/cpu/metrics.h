// src/cpu/metrics.h: the one comparator (STYLE.md 10), shared by tests, tools and benchmarks.
//
// error_metrics() measures an output against a float64 reference: cosine similarity, relative L1
// (sum|o - r| / sum|r|), RMSE and max abs error, with the worst element's index. compare()
// additionally checks that NaN/Inf positions agree and that every element is within
// atol + rtol * |r|, and returns a message naming the worst element's coordinates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sageattn::cpu {

struct ErrorMetrics {
  double cos = 0.0;      // cosine similarity (1 for identical; 1 when both are all zeros)
  double rel_l1 = 0.0;   // sum|o - r| / sum|r| (0 when both are all zeros)
  double rmse = 0.0;
  double max_abs = 0.0;
  int64_t worst = -1;    // index of the largest |o - r| among finite pairs
  int64_t nonfinite_mismatch = 0;  // positions where exactly one side is NaN/Inf, or they differ
};

ErrorMetrics error_metrics(const double* ref, const double* out, int64_t n);

struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
  double min_cos = -1.0;  // fails if cos < min_cos
};

struct CompareResult {
  bool ok = true;
  ErrorMetrics metrics;
  int64_t violations = 0;  // elements outside atol + rtol * |r|
  std::string message;     // empty when ok
};

// `shape` (row-major) is used only to print the worst element's coordinates.
CompareResult compare(const double* ref, const double* out, int64_t n, const Tolerance& tol,
                      const std::vector<int64_t>& shape = {});

}  // namespace sageattn::cpu
