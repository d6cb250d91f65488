#include "threadpool.h"

#include <algorithm>
#include <new>
#include <system_error>

namespace vlatext {

int ThreadPool::default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int threads) : n_threads_(threads > 0 ? threads : default_threads()) {
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
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int64_t, int64_t)>* job;
    int64_t n;
    int parts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      parts = job_parts_;
    }
    // worker `index` runs parts index, index + size, ... (more parts than threads is allowed)
    for (int p = index; p < parts; p += n_threads_) {
      int64_t b, e;
      split_range(n, parts, p, &b, &e);
      (*job)(p, b, e);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_parts_ = parts;
    pending_ = n_threads_ - 1;
    generation_++;
  }
  start_cv_.notify_all();
  for (int p = 0; p < parts; p += n_threads_) {
    int64_t b, e;
    split_range(n, parts, p, &b, &e);
    fn(p, b, e);
  }
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

}  // namespace vlatext
