// src/cpu/parallel.h: a minimal parallel-for over an index range for the CPU backend.
//
// Work items are claimed from an atomic counter by up to hardware_concurrency() threads, so the
// result never depends on the thread count: each item writes only its own outputs. The first
// exception thrown by an item is rethrown on the calling thread after all threads have joined.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sageattn::cpu {

template <typename F>
void parallel_for(int64_t count, F&& body) {
  if (count <= 0) return;
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t n_threads = std::min<int64_t>(hw, count);
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (int64_t i = next++; i < count; i = next++) {
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = count;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sageattn::cpu
