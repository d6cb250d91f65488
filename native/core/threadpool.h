// A plain fixed-size thread pool. No global state: whoever needs threads owns
// a pool (an engine handle, or a call). parallel_for splits [0, n) into one
// contiguous range per worker and blocks until all ranges are done; the
// calling thread runs the first range itself. Idle workers (and a caller waiting
// for them) spin briefly, yielding the core, before they sleep on a condition
// variable (threadpool.cpp, spin_until).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "status.h"

namespace vlatext {

class ThreadPool {
 public:
  // threads <= 0 means std::thread::hardware_concurrency(). Throws std::system_error
  // when a thread cannot be started (after stopping the ones that did); code that
  // must not throw uses create().
  // spin_us: how long an idle worker (and the caller waiting for workers) spins before it
  // sleeps on a condition variable (0: sleep at once).
  explicit ThreadPool(int threads, int spin_us = kDefaultSpinMicros);
  static constexpr int kDefaultSpinMicros = 100;
  // The non-throwing constructor: Status::ThreadError or OutOfMemory instead of an exception.
  static Status create(int threads, std::unique_ptr<ThreadPool>* out);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(worker, begin, end) for `parts` contiguous ranges covering [0, n).
  // parts <= 0 means size(). Ranges may be empty when n < parts.
  // grain: the fewest items worth a part of their own. Fewer parts are used when n / grain
  // is small, and work of at most one grain runs on the calling thread without waking the
  // workers (a wake-up costs more than a kernel on one decoded row). Kernels that split
  // `parts` by hand (one part per thread, results summed per part) leave grain at 1.
  void parallel_for(int64_t n, const std::function<void(int worker, int64_t begin, int64_t end)>& fn, int parts = 0, int64_t grain = 1);

  static int default_threads();

 private:
  void worker_loop(int index);
  void stop_and_join();

  int n_threads_;
  std::vector<std::thread> workers_;  // n_threads_ - 1 helpers; the caller is worker 0
  std::mutex call_mu_;  // one parallel_for at a time per pool
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_parts_ = 0;
  std::chrono::microseconds spin_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Work (in multiply-adds or element operations) below which a kernel stays on one thread.
constexpr int64_t kParallelMinWork = 1 << 15;

// The grain (items per part) for items that each cost `work_per_item`: at least kParallelMinWork a part.
inline int64_t grain_for(int64_t work_per_item) { return work_per_item >= kParallelMinWork ? 1 : (kParallelMinWork + work_per_item - 1) / (work_per_item > 0 ? work_per_item : 1); }

// The contiguous range of part `p` of `parts` over [0, n): sizes differ by at most one.
inline void split_range(int64_t n, int parts, int p, int64_t* begin, int64_t* end) {
  const int64_t base = n / parts, rem = n % parts;
  *begin = p * base + (p < rem ? p : rem);
  *end = *begin + base + (p < rem ? 1 : 0);
}

}  // namespace vlatext
