// Fused kernels of SLL's training step (see fused.h). tfjs's ops compute the unit loss and its gradient
// in ~40 kernels per unit, and a ReLU layer's backward pass (step(y), cast, multiply, sum for the bias)
// in four passes over the activation; these are one each.
#include "fused.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

#define RESTRICT __restrict__

namespace sll {

namespace {

// logsumexp of n floats, in double.
double log_sum_exp(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < n; k++) m = x[k] > m ? x[k] : m;
  if (!std::isfinite(m)) return double(m);
  double s = 0;
  for (int64_t k = 0; k < n; k++) s += std::exp(double(x[k]) - double(m));
  return double(m) + std::log(s);
}

}  // namespace

bool unit_loss(const float* v, const int32_t* labels, const float* parent, int64_t B, int64_t K,
               double lambda, float* total, float* stats, float* grad) {
  for (int64_t b = 0; b < B; b++)
    if (labels[b] < 0 || labels[b] >= K) return false;
  const bool withParent = parent != nullptr && lambda != 0;
  const double invB = B > 0 ? 1.0 / double(B) : 0.0;
  double ce = 0, align = 0, correct = 0;
  std::vector<double> lp(size_t(std::max<int64_t>(K, 1))), s(size_t(std::max<int64_t>(K, 1)));
  for (int64_t b = 0; b < B; b++) {
    const float* RESTRICT vb = v + b * K;
    float* RESTRICT gb = grad + b * K;
    const int64_t y = labels[b];
    const double lseV = log_sum_exp(vb, K);
    for (int64_t k = 0; k < K; k++) lp[k] = double(vb[k]) - lseV;
    ce -= lp[y];
    int64_t best = 0;
    for (int64_t k = 1; k < K; k++)
      if (vb[k] > vb[best]) best = k;
    if (best == y) correct += 1;
    if (withParent) {
      const float* RESTRICT pb = parent + b * K;
      const double lseQ = log_sum_exp(pb, K);
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < K; k++) {
        s[k] = 0.5 * (lp[k] + (double(pb[k]) - lseQ));
        m = std::max(m, s[k]);
      }
      double sum = 0;
      for (int64_t k = 0; k < K; k++) sum += std::exp(s[k] - m);
      const double lseS = m + std::log(sum);
      align -= lseS;
      for (int64_t k = 0; k < K; k++) {
        const double p = std::exp(lp[k]);
        const double w = std::exp(s[k] - lseS);
        gb[k] = float(((p - (k == y ? 1.0 : 0.0)) + lambda * 0.5 * (p - w)) * invB);
      }
    } else {
      for (int64_t k = 0; k < K; k++) gb[k] = float((std::exp(lp[k]) - (k == y ? 1.0 : 0.0)) * invB);
    }
  }
  const double prediction = ce * invB;
  const double alignment = withParent ? align * invB : 0.0;
  const double loss = prediction + (withParent ? lambda * alignment : 0.0);
  *total = float(loss);
  stats[0] = float(prediction);
  stats[1] = float(alignment);
  stats[2] = float(loss);
  stats[3] = float(correct);
  return true;
}

namespace {

// Rows [r0, r1): dz = relu'(y) * dy, and (when acc is given) acc[j] += the column sums of dz.
void relu_bias_grad_rows(const float* dy, const float* y, float* dz, double* acc, int64_t cols, int64_t r0,
                         int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* RESTRICT d = dy + r * cols;
    const float* RESTRICT a = y + r * cols;
    float* RESTRICT o = dz + r * cols;
    for (int64_t j = 0; j < cols; j++) o[j] = a[j] > 0.0f ? d[j] : 0.0f;
    if (acc != nullptr) {
      double* RESTRICT s = acc;
      for (int64_t j = 0; j < cols; j++) s[j] += double(o[j]);
    }
  }
}

}  // namespace

void relu_bias_grad(const float* dy, const float* y, float* dz, float* db, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) {
    if (db != nullptr) std::fill(db, db + std::max<int64_t>(cols, 0), 0.0f);
    return;
  }
  // Rows in fixed blocks, each block's column sums in double and the blocks' sums added in order, so the
  // bits do not depend on the thread count; blocks split over threads, small tensors on one thread.
  constexpr int64_t kRowBlock = 512;
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  const int t = get_threads();
  const int T = (t > 1 && rows * cols >= (int64_t(1) << 18)) ? int(std::min<int64_t>(t, blocks)) : 1;
  std::vector<double> acc(db != nullptr ? size_t(blocks) * size_t(cols) : 0, 0.0);
  parallel(T, [&](int i) {
    int64_t lo, hi;
    split(blocks, i, T, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) {
      double* a = db != nullptr ? acc.data() + size_t(k) * size_t(cols) : nullptr;
      relu_bias_grad_rows(dy, y, dz, a, cols, k * kRowBlock, std::min(rows, (k + 1) * kRowBlock));
    }
  });
  if (db != nullptr) {
    for (int64_t j = 0; j < cols; j++) {
      double s = 0.0;
      for (int64_t k = 0; k < blocks; k++) s += acc[size_t(k) * size_t(cols) + size_t(j)];
      db[j] = float(s);
    }
  }
}

}  // namespace sll
