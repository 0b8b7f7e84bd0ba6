// src/cpu/parallel.h: a minimal parallel-for over an index range for the CPU backend.
//
// Work items are claimed from an atomic counter by up to hardware_concurrency() threads, so the
// result never depends on the thread count: each item writes only its own outputs. The first
// exception thrown by an item is rethrown on the calling thread after all threads have joined.
// If the system refuses to start a thread (std::system_error), the loop runs on the threads it
// already has, down to the calling thread alone; the result is the same.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace sageattn::cpu {

// parallel_for with the thread count and the thread factory as parameters (tests inject a
// factory that fails). spawn(worker) returns a std::thread or throws std::system_error.
template <typename F, typename Spawn>
void parallel_for_with(int64_t count, int64_t n_threads, Spawn&& spawn, F&& body) {
  if (count <= 0) return;
  n_threads = std::max<int64_t>(1, std::min<int64_t>(n_threads, count));
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
  try {
    threads.reserve(size_t(n_threads - 1));
    for (int64_t t = 1; t < n_threads; ++t) threads.push_back(spawn(worker));
  } catch (const std::system_error&) {
    // Fewer threads than asked: the remaining items are claimed by those that started.
  } catch (const std::bad_alloc&) {
  }
  worker();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

template <typename F>
void parallel_for(int64_t count, F&& body) {
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  parallel_for_with(
      count, hw, [](auto& worker) { return std::thread(worker); }, std::forward<F>(body));
}

}  // namespace sageattn::cpu
