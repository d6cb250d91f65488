#include "threadpool.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <system_error>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VLATEXT_PAUSE() _mm_pause()
#else
#define VLATEXT_PAUSE() std::this_thread::yield()
#endif

namespace vlatext {

namespace {

// Spin until pred() holds or `spin` has passed; true when it holds. A worker that just
// finished a kernel is usually handed the next one within microseconds (a layer is a chain of
// kernels), so a short spin saves the futex sleep and wake-up of a condition variable, which
// cost more than a small kernel; past the spin it sleeps as before. The first rounds pause;
// later ones yield the core, so that on a machine with more runnable threads than cores the
// thread being waited for gets to run (a pure busy-wait there made decoding ~7x slower).
template <typename Pred>
bool spin_until(Pred pred, std::chrono::microseconds spin) {
  if (spin.count() <= 0) return pred();
  const auto until = std::chrono::steady_clock::now() + spin;
  for (int round = 0;; round++) {
    for (int i = 0; i < 32; i++) {
      if (pred()) return true;
      VLATEXT_PAUSE();
    }
    if (round >= 4) std::this_thread::yield();
    if (std::chrono::steady_clock::now() >= until) return pred();
  }
}

}  // namespace

int ThreadPool::default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int threads, int spin_us) : n_threads_(threads > 0 ? threads : default_threads()), spin_(spin_us < 0 ? 0 : spin_us) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  try {
    for (int i = 1; i < n_threads_; i++) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (...) {
    stop_and_join();  // a joinable std::thread destroyed during unwinding would terminate the process
    throw;
  }
}

Status ThreadPool::create(int threads, std::unique_ptr<ThreadPool>* out) {
  try {
    *out = std::make_unique<ThreadPool>(threads);
    return Status::Ok;
  } catch (const std::system_error&) {
    return Status::ThreadError;
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory;
  }
}

ThreadPool::~ThreadPool() { stop_and_join(); }

void ThreadPool::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(ready, spin_)) {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    // the job's fields were written before generation_ was published (release), and stay
    // unchanged until every worker has counted itself done
    seen = generation_.load(std::memory_order_acquire);
    const auto* job = job_;
    const int64_t n = job_n_;
    const int parts = job_parts_;
    // worker `index` runs parts index, index + size, ... (more parts than threads is allowed)
    for (int p = index; p < parts; p += n_threads_) {
      int64_t b, e;
      split_range(n, parts, p, &b, &e);
      (*job)(p, b, e);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller checks pending_ under mu_ before it sleeps
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int, int64_t, int64_t)>& fn, int parts, int64_t grain) {
  std::lock_guard<std::mutex> call(call_mu_);
  if (parts <= 0) parts = n_threads_;
  if (grain > 1) parts = (int)std::max<int64_t>(1, std::min<int64_t>(parts, n / grain));
  // one thread, one part, or at most one item of work: run here without waking the workers
  // (decoding calls kernels on single rows thousands of times per chunk)
  if (n_threads_ == 1 || parts == 1 || n <= 1) {
    for (int p = 0; p < parts; p++) {
      int64_t b, e;
      split_range(n, parts, p, &b, &e);
      fn(p, b, e);
    }
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_parts_ = parts;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);  // a worker about to sleep checks generation_ under mu_
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  for (int p = 0; p < parts; p += n_threads_) {
    int64_t b, e;
    split_range(n, parts, p, &b, &e);
    fn(p, b, e);
  }
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done, spin_)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, done);
  }
  job_ = nullptr;
}

}  // namespace vlatext
