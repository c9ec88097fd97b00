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

namespace sll {

namespace {

// Rows in blocks of this many: each block's column sums are one partial, and the partials are added in
// block order, so that the result does not depend on how the blocks are split over threads.
constexpr int64_t kNormRowBlock = 256;

int norm_threads(int64_t rows, int64_t cols, int64_t blocks) {
  const int t = get_threads();
  return (t > 1 && rows * cols >= (int64_t(1) << 16)) ? int(std::min<int64_t>(t, blocks)) : 1;
}

// Column sums over all rows of f(r, j) (double), blocks over threads, added in block order into out[cols].
template <class F>
void column_sums(int64_t rows, int64_t cols, int nsums, double* out, F f) {
  const int64_t blocks = (rows + kNormRowBlock - 1) / kNormRowBlock;
  const int T = norm_threads(rows, cols, blocks);
  const size_t width = size_t(nsums) * size_t(cols);
  std::vector<double> partial(size_t(blocks) * width, 0.0);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(blocks, t, T, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) f(k * kNormRowBlock, std::min(rows, (k + 1) * kNormRowBlock), partial.data() + size_t(k) * width);
  });
  std::fill(out, out + width, 0.0);
  for (int64_t k = 0; k < blocks; k++) {
    const double* p = partial.data() + size_t(k) * width;
    for (size_t j = 0; j < width; j++) out[j] += p[j];
  }
}

// Rows split over threads for an elementwise pass.
template <class F>
void row_pass(int64_t rows, int64_t cols, F f) {
  const int64_t blocks = (rows + kNormRowBlock - 1) / kNormRowBlock;
  const int T = norm_threads(rows, cols, blocks);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(rows, t, T, &lo, &hi);
    f(lo, hi);
  });
}

// y = (x - m) * a + b per column (a, b folded from the statistics and the affine parameters).
void scale_shift_rows(const float* x, const float* m, const float* a, const float* b, float* y, int64_t lo,
                      int64_t hi, int64_t cols) {
  for (int64_t r = lo; r < hi; r++) {
    const float* RESTRICT xr = x + r * cols;
    float* RESTRICT yr = y + r * cols;
    for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - m[j]) * a[j] + b[j];
  }
}

}  // namespace

void batch_norm_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                      float* var, int64_t rows, int64_t cols, float eps) {
  if (cols <= 0) return;
  std::vector<double> m(static_cast<size_t>(cols)), v(static_cast<size_t>(cols));
  column_sums(rows, cols, 1, m.data(), [&](int64_t lo, int64_t hi, double* RESTRICT s) {
    for (int64_t r = lo; r < hi; r++) {
      const float* RESTRICT xr = x + r * cols;
      for (int64_t j = 0; j < cols; j++) s[j] += double(xr[j]);
    }
  });
  const double n = double(std::max<int64_t>(rows, 1));
  for (int64_t j = 0; j < cols; j++) m[size_t(j)] /= n;
  column_sums(rows, cols, 1, v.data(), [&](int64_t lo, int64_t hi, double* RESTRICT s) {
    for (int64_t r = lo; r < hi; r++) {
      const float* RESTRICT xr = x + r * cols;
      for (int64_t j = 0; j < cols; j++) {
        const double d = double(xr[j]) - m[size_t(j)];
        s[j] += d * d;
      }
    }
  });
  std::vector<float> a(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; j++) {
    const double vj = v[size_t(j)] / n;
    mean[j] = float(m[size_t(j)]);
    var[j] = float(vj);
    a[size_t(j)] = float(double(gamma[j]) / std::sqrt(vj + double(eps)));
  }
  row_pass(rows, cols, [&](int64_t lo, int64_t hi) { scale_shift_rows(x, mean, a.data(), beta, y, lo, hi, cols); });
}

void batch_norm_train_grad(const float* dy, const float* x, const float* gamma, const float* mean,
                           const float* var, float* dx, float* dgamma, float* dbeta, int64_t rows,
                           int64_t cols, float eps) {
  if (cols <= 0) return;
  std::vector<double> rstd(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; j++) rstd[size_t(j)] = 1.0 / std::sqrt(double(var[j]) + double(eps));
  // sums[0, cols): sum dy; sums[cols, 2 cols): sum dy (x - mean) (times rstd below: dgamma).
  std::vector<double> sums(static_cast<size_t>(2 * cols));
  column_sums(rows, cols, 2, sums.data(), [&](int64_t lo, int64_t hi, double* RESTRICT s) {
    double* RESTRICT sx = s + cols;
    for (int64_t r = lo; r < hi; r++) {
      const float* RESTRICT dyr = dy + r * cols;
      const float* RESTRICT xr = x + r * cols;
      for (int64_t j = 0; j < cols; j++) {
        s[j] += double(dyr[j]);
        sx[j] += double(dyr[j]) * (double(xr[j]) - double(mean[j]));
      }
    }
  });
  // dx = dy * a + (x - mean) * c + e per column, with a = gamma rstd, c = -a rstd dgamma / n and
  // e = -a dbeta / n (xhat = (x - mean) rstd expanded).
  const double n = double(std::max<int64_t>(rows, 1));
  std::vector<float> a(static_cast<size_t>(cols)), c(static_cast<size_t>(cols)), e(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; j++) {
    const double rs = rstd[size_t(j)];
    const double db = sums[size_t(j)];
    const double dg = sums[size_t(cols + j)] * rs;
    dbeta[j] = float(db);
    dgamma[j] = float(dg);
    const double aj = double(gamma[j]) * rs;
    const double cj = -aj * rs * dg / n;
    a[size_t(j)] = float(aj);
    c[size_t(j)] = float(cj);
    e[size_t(j)] = float(-aj * db / n);
  }
  row_pass(rows, cols, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const float* RESTRICT dyr = dy + r * cols;
      const float* RESTRICT xr = x + r * cols;
      float* RESTRICT dxr = dx + r * cols;
      for (int64_t j = 0; j < cols; j++) dxr[j] = dyr[j] * a[size_t(j)] + (xr[j] - mean[j]) * c[size_t(j)] + e[size_t(j)];
    }
  });
}

void batch_norm_infer(const float* x, const float* mean, const float* var, const float* gamma,
                      const float* beta, float* y, int64_t rows, int64_t cols, float eps) {
  if (cols <= 0) return;
  std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; j++) {
    a[size_t(j)] = float((gamma != nullptr ? double(gamma[j]) : 1.0) / std::sqrt(double(var[j]) + double(eps)));
    b[size_t(j)] = beta != nullptr ? beta[j] : 0.0f;
  }
  row_pass(rows, cols, [&](int64_t lo, int64_t hi) { scale_shift_rows(x, mean, a.data(), b.data(), y, lo, hi, cols); });
}

}  // namespace sll
