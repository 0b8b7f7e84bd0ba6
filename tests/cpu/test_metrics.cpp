// tests/cpu/test_metrics.cpp: the one comparator, src/cpu/metrics.h.
//
// What it proves: error_metrics() computes cosine similarity, relative L1, RMSE, max abs error
// and the worst index exactly as defined (checked on hand-computed vectors), treats identical and
// all-zero inputs as perfect, counts NaN/Inf positions that differ (and only those) without
// letting them poison the finite metrics; compare() flags exactly the elements outside
// atol + rtol * |ref| (bound inclusive, relative to the reference), names the worst one by its
// row-major coordinates, and fails on a cosine bound or a NaN/Inf mismatch alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/metrics.h"

namespace {

using sageattn::cpu::compare;
using sageattn::cpu::CompareResult;
using sageattn::cpu::error_metrics;
using sageattn::cpu::ErrorMetrics;
using sageattn::cpu::Tolerance;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

ErrorMetrics metrics_of(const std::vector<double>& ref, const std::vector<double>& out) {
  EXPECT_EQ(ref.size(), out.size());
  return error_metrics(ref.data(), out.data(), static_cast<int64_t>(ref.size()));
}

std::vector<double> random_vector(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

TEST(ErrorMetrics, IdenticalArraysArePerfect) {
  const std::vector<double> r = random_vector(1000, 1u);
  const ErrorMetrics m = metrics_of(r, r);
  EXPECT_NEAR(m.cos, 1.0, 1e-15);
  EXPECT_EQ(m.rel_l1, 0.0);
  EXPECT_EQ(m.rmse, 0.0);
  EXPECT_EQ(m.max_abs, 0.0);
  EXPECT_EQ(m.nonfinite_mismatch, 0);
}

TEST(ErrorMetrics, HandComputedSmallVectors) {
  // ref = (1, -2, 3, 0.5), out = (1.5, -2, 2, 0.5): errors (0.5, 0, 1, 0).
  //   dot = 1.5 + 4 + 6 + 0.25 = 11.75, |r|^2 = 14.25, |o|^2 = 10.5
  //   cos = 11.75 / sqrt(14.25 * 10.5), rel_l1 = 1.5 / 6.5, rmse = sqrt(1.25 / 4), worst = 2.
  const ErrorMetrics m = metrics_of({1, -2, 3, 0.5}, {1.5, -2, 2, 0.5});
  EXPECT_NEAR(m.cos, 0.9605849651931131, 1e-15);
  EXPECT_NEAR(m.rel_l1, 0.23076923076923078, 1e-15);
  EXPECT_NEAR(m.rmse, 0.5590169943749475, 1e-15);
  EXPECT_EQ(m.max_abs, 1.0);
  EXPECT_EQ(m.worst, 2);
  EXPECT_EQ(m.nonfinite_mismatch, 0);

  // ref = (1, 2, 3, 4), out = (1, 2, 3, 5): dot 34, |r|^2 30, |o|^2 39.
  const ErrorMetrics n = metrics_of({1, 2, 3, 4}, {1, 2, 3, 5});
  EXPECT_NEAR(n.cos, 34.0 / std::sqrt(30.0 * 39.0), 1e-15);
  EXPECT_NEAR(n.rel_l1, 0.1, 1e-15);
  EXPECT_NEAR(n.rmse, 0.5, 1e-15);
  EXPECT_EQ(n.max_abs, 1.0);
  EXPECT_EQ(n.worst, 3);
}

TEST(ErrorMetrics, ScaleAndSignAreSeen) {
  // Cosine ignores scale, relative L1 does not; a negated output is anti-correlated.
  const std::vector<double> r = {3, -1, 2};
  const ErrorMetrics doubled = metrics_of(r, {6, -2, 4});
  EXPECT_NEAR(doubled.cos, 1.0, 1e-15);
  EXPECT_NEAR(doubled.rel_l1, 1.0, 1e-15);
  EXPECT_EQ(doubled.max_abs, 3.0);
  EXPECT_EQ(doubled.worst, 0);
  const ErrorMetrics negated = metrics_of(r, {-3, 1, -2});
  EXPECT_NEAR(negated.cos, -1.0, 1e-15);
  EXPECT_NEAR(negated.rel_l1, 2.0, 1e-15);
  EXPECT_NEAR(negated.rmse, std::sqrt((36.0 + 4.0 + 16.0) / 3.0), 1e-15);
}

TEST(ErrorMetrics, AllZerosArePerfectAndZeroAgainstNonzeroIsNot) {
  const std::vector<double> z(16, 0.0);
  const ErrorMetrics m = metrics_of(z, z);
  EXPECT_EQ(m.cos, 1.0);
  EXPECT_EQ(m.rel_l1, 0.0);
  EXPECT_EQ(m.rmse, 0.0);
  EXPECT_EQ(m.max_abs, 0.0);

  std::vector<double> o = z;
  o[5] = 1e-3;
  const ErrorMetrics nz = metrics_of(z, o);  // any output against an all-zero reference is wrong
  EXPECT_EQ(nz.cos, 0.0);
  EXPECT_TRUE(std::isinf(nz.rel_l1)) << nz.rel_l1;
  EXPECT_EQ(nz.max_abs, 1e-3);
  EXPECT_EQ(nz.worst, 5);

  const ErrorMetrics zero_out = metrics_of({1, 2}, {0, 0});
  EXPECT_EQ(zero_out.cos, 0.0);
  EXPECT_EQ(zero_out.rel_l1, 1.0);
}

TEST(ErrorMetrics, NonfinitePositions) {
  // Same positions, same kind: not a mismatch, and the finite metrics stay exact.
  const ErrorMetrics same = metrics_of({1, kNaN, 3, kInf, -kInf}, {1, kNaN, 3, kInf, -kInf});
  EXPECT_EQ(same.nonfinite_mismatch, 0);
  EXPECT_NEAR(same.cos, 1.0, 1e-15);
  EXPECT_EQ(same.rmse, 0.0);
  EXPECT_EQ(same.rel_l1, 0.0);
  EXPECT_EQ(same.max_abs, 0.0);

  // NaN at different positions: both positions count; the finite pairs still give a number.
  const ErrorMetrics moved = metrics_of({1, kNaN, 3, 4}, {1, 2, kNaN, 4});
  EXPECT_EQ(moved.nonfinite_mismatch, 2);
  EXPECT_NEAR(moved.cos, 1.0, 1e-15);
  EXPECT_FALSE(std::isnan(moved.rmse));
  EXPECT_EQ(moved.worst, 0);

  // inf vs -inf, inf vs NaN, inf vs finite: all mismatches.
  const ErrorMetrics kinds = metrics_of({kInf, kInf, kInf, 1}, {-kInf, kNaN, 1e300, 1});
  EXPECT_EQ(kinds.nonfinite_mismatch, 3);
}

TEST(ErrorMetrics, WorstIsTheLargestFiniteError) {
  std::vector<double> r = random_vector(257, 2u), o = r;
  for (size_t i = 0; i < o.size(); ++i) o[i] += 1e-3 * std::sin(static_cast<double>(i));
  o[200] = r[200] + 0.25;
  o[100] = kNaN;  // excluded from the worst search, counted as a mismatch
  const ErrorMetrics m = metrics_of(r, o);
  EXPECT_EQ(m.worst, 200);
  EXPECT_NEAR(m.max_abs, 0.25, 1e-15);
  EXPECT_EQ(m.nonfinite_mismatch, 1);
}

TEST(Compare, WithinToleranceIsOk) {
  const std::vector<double> r = random_vector(120, 3u);
  std::vector<double> o = r;
  for (double& x : o) x += 1e-4;
  const CompareResult c = compare(r.data(), o.data(), 120, {1e-3, 1e-3, 0.999}, {2, 3, 4, 5});
  EXPECT_TRUE(c.ok) << c.message;
  EXPECT_EQ(c.violations, 0);
  EXPECT_TRUE(c.message.empty()) << c.message;
  EXPECT_NEAR(c.metrics.max_abs, 1e-4, 1e-12);
}

TEST(Compare, OneElementOutOfBoundsIsNamedByItsCoordinates) {
  const std::vector<int64_t> shape = {2, 3, 5};
  std::vector<double> r = random_vector(30, 4u), o = r;
  for (double& x : o) x += 5e-4;  // inside atol
  const int64_t bad = (1 * 3 + 2) * 5 + 3;  // [1, 2, 3]
  o[bad] = r[bad] + 1.0;
  const CompareResult c = compare(r.data(), o.data(), 30, {1e-3, 1e-3, -1.0}, shape);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.violations, 1);
  EXPECT_EQ(c.metrics.worst, bad);
  EXPECT_NE(c.message.find("[1, 2, 3]"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("1 of 30"), std::string::npos) << c.message;

  // Without a shape the flat index is named.
  const CompareResult flat = compare(r.data(), o.data(), 30, {1e-3, 1e-3, -1.0});
  EXPECT_FALSE(flat.ok);
  EXPECT_NE(flat.message.find("[28]"), std::string::npos) << flat.message;
}

TEST(Compare, WorstViolationIsTheLargestExcess) {
  // Two violations: |e| = 0.5 at [0, 1] and 2.0 at [1, 0] (shape 2 x 2), atol 0.1.
  const std::vector<double> r = {1, 1, 1, 1};
  const std::vector<double> o = {1, 1.5, 3, 1};
  const CompareResult c = compare(r.data(), o.data(), 4, {0.1, 0.0, -1.0}, {2, 2});
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.violations, 2);
  EXPECT_NE(c.message.find("worst at [1, 0]"), std::string::npos) << c.message;
}

TEST(Compare, BoundIsInclusiveAndRelativeToReference) {
  // |e| == atol exactly (all values exact in binary): within bounds.
  {
    const double r[] = {1.0, -2.0}, o[] = {1.5, -2.5};
    const CompareResult c = compare(r, o, 2, {0.5, 0.0, -1.0});
    EXPECT_TRUE(c.ok) << c.message;
    EXPECT_EQ(c.violations, 0);
  }
  // rtol scales |ref| (100 -> bound 9.5 < 10), not |out| (110 -> 10.45 would pass).
  {
    const double r[] = {100.0}, o[] = {110.0};
    const CompareResult c = compare(r, o, 1, {0.0, 0.095, -1.0});
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.violations, 1);
  }
  // atol and rtol add up: 0.5 + 0.01 * 100 = 1.5 >= 1.25.
  {
    const double r[] = {-100.0}, o[] = {-101.25};
    EXPECT_TRUE(compare(r, o, 1, {0.5, 0.01, -1.0}).ok);
    EXPECT_FALSE(compare(r, o, 1, {0.5, 0.0, -1.0}).ok);
    EXPECT_FALSE(compare(r, o, 1, {0.0, 0.01, -1.0}).ok);
  }
}

TEST(Compare, CosineBoundViolationIsReported) {
  // Elementwise fine (atol 10) but orthogonal: only the cosine bound fails.
  const double r[] = {1.0, 0.0}, o[] = {0.0, 1.0};
  const CompareResult c = compare(r, o, 2, {10.0, 0.0, 0.99});
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.violations, 0);
  EXPECT_NEAR(c.metrics.cos, 0.0, 1e-15);
  EXPECT_NE(c.message.find("cos="), std::string::npos) << c.message;

  const CompareResult loose = compare(r, o, 2, {10.0, 0.0, -0.5});
  EXPECT_TRUE(loose.ok) << loose.message;
}

TEST(Compare, NonfiniteMismatchFailsAndMatchingNonfiniteDoesNot) {
  const double r[] = {1.0, kNaN, kInf, 4.0};
  const double same[] = {1.0, kNaN, kInf, 4.0};
  const double moved[] = {1.0, 2.0, kInf, kNaN};
  const Tolerance loose{1e9, 1.0, -1.0};  // nothing but the NaN/Inf check can fail

  const CompareResult ok = compare(r, same, 4, loose);
  EXPECT_TRUE(ok.ok) << ok.message;

  const CompareResult bad = compare(r, moved, 4, loose);
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.metrics.nonfinite_mismatch, 2);
  EXPECT_EQ(bad.violations, 0);
  EXPECT_NE(bad.message.find("NaN/Inf"), std::string::npos) << bad.message;
}

// Magnitudes whose squares underflow or overflow double still give the right cosine, and a NaN
// cosine can never pass a cosine bound.
TEST(ErrorMetrics, CosineSurvivesExtremeMagnitudes) {
  const double tiny[2] = {1e-200, 2e-200}, tiny_neg[2] = {-1e-200, -2e-200};
  EXPECT_NEAR(error_metrics(tiny, tiny_neg, 2).cos, -1.0, 1e-12);
  EXPECT_FALSE(compare(tiny, tiny_neg, 2, {1.0, 0.0, 0.99}).ok);
  const double huge[2] = {1e160, 1e160};
  EXPECT_NEAR(error_metrics(huge, huge, 2).cos, 1.0, 1e-12);
  const double big[3] = {1e300, 1e300, 1e300}, big_neg[3] = {-1e300, -1e300, -1e300};
  const ErrorMetrics m = error_metrics(big, big_neg, 3);
  EXPECT_NEAR(m.cos, -1.0, 1e-12);
  EXPECT_FALSE(compare(big, big_neg, 3, {1e301, 0.0, 0.99}).ok);
}

// A shape that does not describe n elements is not used for coordinates.
TEST(Compare, WrongShapeFallsBackToFlatIndex) {
  const double r[4] = {1, 2, 3, 4}, o[4] = {1, 2, 3, 9};
  const CompareResult res = compare(r, o, 4, {0.1, 0.0, -1.0}, {3, 3});
  EXPECT_FALSE(res.ok);
  EXPECT_NE(res.message.find("[3]"), std::string::npos) << res.message;
}

}  // namespace
