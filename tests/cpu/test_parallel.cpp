// tests/cpu/test_parallel.cpp: the CPU backend's parallel_for: every item runs exactly once,
// item exceptions reach the caller, and a refused thread start degrades to fewer threads
// instead of std::terminate.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "cpu/parallel.h"

namespace sageattn::cpu {
namespace {

TEST(ParallelFor, EveryItemOnce) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, [&](int64_t i) { hits[size_t(i)]++; });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, RethrowsItemException) {
  EXPECT_THROW(parallel_for(64, [](int64_t i) {
                 if (i == 17) throw std::runtime_error("item 17");
               }),
               std::runtime_error);
}

// A factory that starts `allowed` threads, then fails like pthread_create under EAGAIN.
struct FailingSpawn {
  int allowed;
  int started = 0;
  template <typename W>
  std::thread operator()(W& worker) {
    if (started == allowed)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    ++started;
    return std::thread(worker);
  }
};

TEST(ParallelFor, ThreadStartFailureRunsOnFewerThreads) {
  for (int allowed : {0, 1, 3}) {
    std::vector<std::atomic<int>> hits(500);
    FailingSpawn spawn{allowed};
    parallel_for_with(500, 8, spawn, [&](int64_t i) { hits[size_t(i)]++; });
    EXPECT_EQ(spawn.started, allowed);
    for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "allowed=" << allowed;
  }
}

TEST(ParallelFor, ThreadStartFailureStillRethrowsItemException) {
  FailingSpawn spawn{1};
  EXPECT_THROW(parallel_for_with(100, 4, spawn,
                                 [](int64_t i) {
                                   if (i == 50) throw std::runtime_error("item 50");
                                 }),
               std::runtime_error);
}

}  // namespace
}  // namespace sageattn::cpu
