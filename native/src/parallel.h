// A minimal fork-join helper shared by the kernels: run f(t) for t in [0, T) on T threads.
#pragma once

#include <cstdint>
#include <thread>
#include <vector>

#include "kernels.h"

namespace sll {

// While one of these is alive (in any thread of the process: the count is per process, and worker_threads
// share it), OpenBLAS runs single-threaded; the last one to go restores the count set_threads() asked for.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;
};

// Runs f(t) for t in [0, T) on T threads (the caller being thread 0) and joins them. While T > 1,
// OpenBLAS runs single-threaded so that each of our threads does its own GEMMs.
template <class F>
void parallel(int T, F f) {
  if (T <= 1) {
    f(0);
    return;
  }
  BlasSingleThreaded single;
  std::vector<std::thread> workers;
  workers.reserve(size_t(T - 1));
  for (int t = 1; t < T; t++) workers.emplace_back(f, t);
  f(0);
  for (auto& w : workers) w.join();
}

// [begin, end) of `total` items for thread t of T.
inline void split(int64_t total, int t, int T, int64_t* begin, int64_t* end) {
  *begin = total * t / T;
  *end = total * (t + 1) / T;
}

}  // namespace sll
