// Float32 compute kernels of the sll_native addon (see kernels.h). Loops are written so that GCC
// vectorises them (restrict pointers, no early exits); transcendental functions are the scalar libm
// ones, fine for the small tensors they see in an MLP step, except in GELU and softmax, whose tensors are
// large in a transformer: those use vecmath.h's, which vectorise.
#include "kernels.h"
#include "parallel.h"
#include "vecmath.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#define RESTRICT __restrict__

namespace sll {

// ---- GEMM ---------------------------------------------------------------------------------------

namespace {
// The count set through set_threads (OpenBLAS's own count is per process and may be lowered for a
// moment around a small GEMM).
std::atomic<int> g_threads{0};
// Below this many multiply-adds a GEMM runs on one thread: the OpenBLAS thread hand-off costs more
// than it saves (the K = 10 read-out GEMMs of an MLP step got slower with two threads).
constexpr double kSmallGemm = 4.0 * 1024 * 1024;
// Regions that need OpenBLAS single-threaded (BlasSingleThreaded), across all threads of the process.
std::mutex g_blas_mutex;
int g_single_regions = 0;
}  // namespace

void set_threads(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(g_blas_mutex);
  if (g_single_regions == 0) {
    openblas_set_num_threads(n);
    n = openblas_get_num_threads();
  }
  // Inside a single-threaded region the count applies when the last region ends.
  g_threads.store(n);
}

BlasSingleThreaded::BlasSingleThreaded() {
  std::lock_guard<std::mutex> lock(g_blas_mutex);
  if (g_single_regions++ == 0) openblas_set_num_threads(1);
}

BlasSingleThreaded::~BlasSingleThreaded() {
  std::lock_guard<std::mutex> lock(g_blas_mutex);
  if (--g_single_regions == 0) openblas_set_num_threads(std::max(1, g_threads.load()));
}

int get_threads() {
  int t = g_threads.load();
  if (t <= 0) {
    t = openblas_get_num_threads();
    g_threads.store(t);
  }
  return t;
}

const char* blas_config() { return openblas_get_config(); }

void sgemm_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb,
                   int64_t strideB, float beta, float* C, int64_t ldc, int64_t strideC,
                   int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) {
    // op(A) op(B) is all zeros: C = beta C.
    for (int64_t i = 0; i < batch; i++) {
      for (int64_t r = 0; r < M; r++) {
        float* RESTRICT c = C + i * strideC + r * ldc;
        for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
      }
    }
    return;
  }
  const int threads = get_threads();
  const bool single = threads > 1 && double(M) * double(N) * double(K) < kSmallGemm;
  auto run = [&]() {
    for (int64_t i = 0; i < batch; i++) {
      cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                  transB ? CblasTrans : CblasNoTrans, blasint(M), blasint(N), blasint(K), alpha,
                  A + i * strideA, blasint(lda), B + i * strideB, blasint(ldb), beta,
                  C + i * strideC, blasint(ldc));
    }
  };
  if (single) {
    BlasSingleThreaded guard;
    run();
  } else {
    run();
  }
}

namespace {
template <class F>
void apply_inplace(float* RESTRICT c, int64_t n, F f) {
  for (int64_t j = 0; j < n; j++) c[j] = f(c[j]);
}

template <class F>
void epilogue_act(float* C, int64_t M, int64_t N, const float* bias, int biasMode, F f) {
  const int64_t n = M * N;
  switch (biasMode) {
    case BIAS_ROW:
      for (int64_t r = 0; r < M; r++) {
        float* RESTRICT c = C + r * N;
        const float* RESTRICT b = bias;
        for (int64_t j = 0; j < N; j++) c[j] = f(c[j] + b[j]);
      }
      break;
    case BIAS_FULL: {
      float* RESTRICT c = C;
      const float* RESTRICT b = bias;
      for (int64_t j = 0; j < n; j++) c[j] = f(c[j] + b[j]);
      break;
    }
    case BIAS_COL:
      for (int64_t r = 0; r < M; r++) {
        const float b = bias[r];
        apply_inplace(C + r * N, N, [&](float x) { return f(x + b); });
      }
      break;
    case BIAS_SCALAR: {
      const float b = bias[0];
      apply_inplace(C, n, [&](float x) { return f(x + b); });
      break;
    }
    default:
      apply_inplace(C, n, f);
  }
}
}  // namespace

void epilogue(float* C, int64_t M, int64_t N, const float* bias, int biasMode, int act,
              float alpha) {
  switch (act) {
    case ACT_RELU:
      epilogue_act(C, M, N, bias, biasMode, [](float x) { return x < 0.0f ? 0.0f : x; });
      break;
    case ACT_RELU6:
      epilogue_act(C, M, N, bias, biasMode,
                   [](float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); });
      break;
    case ACT_LEAKYRELU:
      epilogue_act(C, M, N, bias, biasMode,
                   [alpha](float x) { return x < 0.0f ? alpha * x : x; });
      break;
    case ACT_SIGMOID:
      epilogue_act(C, M, N, bias, biasMode,
                   [](float x) { return 1.0f / (1.0f + std::exp(-x)); });
      break;
    case ACT_ELU:
      epilogue_act(C, M, N, bias, biasMode,
                   [](float x) { return x >= 0.0f ? x : std::expm1(x); });
      break;
    default:
      if (biasMode != BIAS_NONE)
        epilogue_act(C, M, N, bias, biasMode, [](float x) { return x; });
  }
}

// ---- Elementwise --------------------------------------------------------------------------------

namespace {
template <class F>
void binary_loop(F f, const float* a, const float* b, float* out, const int64_t* d,
                 const int64_t* sa, const int64_t* sb) {
  const int64_t n3 = d[3];
  float* o = out;
  for (int64_t i0 = 0; i0 < d[0]; i0++) {
    for (int64_t i1 = 0; i1 < d[1]; i1++) {
      for (int64_t i2 = 0; i2 < d[2]; i2++) {
        const float* RESTRICT pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
        const float* RESTRICT pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
        float* RESTRICT po = o;
        if (sa[3] == 1 && sb[3] == 1) {
          for (int64_t j = 0; j < n3; j++) po[j] = f(pa[j], pb[j]);
        } else if (sa[3] == 1 && sb[3] == 0) {
          const float y = pb[0];
          for (int64_t j = 0; j < n3; j++) po[j] = f(pa[j], y);
        } else if (sa[3] == 0 && sb[3] == 1) {
          const float x = pa[0];
          for (int64_t j = 0; j < n3; j++) po[j] = f(x, pb[j]);
        } else {
          for (int64_t j = 0; j < n3; j++) po[j] = f(pa[j * sa[3]], pb[j * sb[3]]);
        }
        o += n3;
      }
    }
  }
}
}  // namespace

namespace {
void binary4_serial(int op, const float* a, const float* b, float* out, const int64_t* d,
                    const int64_t* sa, const int64_t* sb) {
  switch (op) {
    case BIN_ADD: binary_loop([](float x, float y) { return x + y; }, a, b, out, d, sa, sb); break;
    case BIN_SUB: binary_loop([](float x, float y) { return x - y; }, a, b, out, d, sa, sb); break;
    case BIN_MUL: binary_loop([](float x, float y) { return x * y; }, a, b, out, d, sa, sb); break;
    case BIN_DIV: binary_loop([](float x, float y) { return x / y; }, a, b, out, d, sa, sb); break;
    case BIN_MAX:
      // Math.max semantics: NaN if either side is NaN.
      binary_loop([](float x, float y) { return (x >= y || x != x) ? x : y; }, a, b, out, d, sa, sb);
      break;
    case BIN_MIN:
      binary_loop([](float x, float y) { return (x <= y || x != x) ? x : y; }, a, b, out, d, sa, sb);
      break;
    case BIN_SQDIFF:
      binary_loop([](float x, float y) { const float t = x - y; return t * t; }, a, b, out, d, sa, sb);
      break;
    case BIN_POW:
      binary_loop([](float x, float y) { return float(std::pow(double(x), double(y))); }, a, b, out, d,
                  sa, sb);
      break;
    case BIN_FIRST:  // a strided copy of a (a transpose): b is not read
      binary_loop([](float x, float) { return x; }, a, b, out, d, sa, sb);
      break;
    default:
      break;
  }
}

template <class F>
void unary_loop(const float* RESTRICT x, float* RESTRICT out, int64_t n, F f) {
  for (int64_t i = 0; i < n; i++) out[i] = f(x[i]);
}
// In-place variant (x == out): no restrict promise.
template <class F>
void unary_any(const float* x, float* out, int64_t n, F f) {
  if (x == out) {
    for (int64_t i = 0; i < n; i++) out[i] = f(out[i]);
  } else {
    unary_loop(x, out, n, f);
  }
}

void unary_serial(int op, const float* x, float* out, int64_t n, float alpha) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  switch (op) {
    case UN_RELU: unary_any(x, out, n, [](float v) { return v < 0.0f ? 0.0f : v; }); break;
    case UN_RELU6:
      unary_any(x, out, n, [](float v) { return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v); });
      break;
    case UN_STEP:
      unary_any(x, out, n, [=](float v) { return v != v ? nan : (v > 0.0f ? 1.0f : alpha); });
      break;
    case UN_SQRT: unary_any(x, out, n, [](float v) { return std::sqrt(v); }); break;
    case UN_RSQRT: unary_any(x, out, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case UN_SQUARE: unary_any(x, out, n, [](float v) { return v * v; }); break;
    case UN_EXP: unary_any(x, out, n, [](float v) { return std::exp(v); }); break;
    case UN_LOG: unary_any(x, out, n, [](float v) { return std::log(v); }); break;
    case UN_NEG: unary_any(x, out, n, [](float v) { return -v; }); break;
    case UN_ABS: unary_any(x, out, n, [](float v) { return std::fabs(v); }); break;
    case UN_SIGMOID:
      unary_any(x, out, n, [](float v) { return float(1.0 / (1.0 + std::exp(-double(v)))); });
      break;
    case UN_TANH: unary_any(x, out, n, [](float v) { return std::tanh(v); }); break;
    case UN_ELU:
      unary_any(x, out, n, [](float v) { return v >= 0.0f ? v : float(std::expm1(double(v))); });
      break;
    case UN_LEAKYRELU:
      unary_any(x, out, n, [=](float v) { return v < 0.0f ? alpha * v : v; });
      break;
    case UN_RECIPROCAL: unary_any(x, out, n, [](float v) { return 1.0f / v; }); break;
    case UN_LOG1P: unary_any(x, out, n, [](float v) { return std::log1p(v); }); break;
    case UN_EXPM1: unary_any(x, out, n, [](float v) { return std::expm1(v); }); break;
    case UN_SIGN:
      unary_any(x, out, n, [](float v) { return v < 0.0f ? -1.0f : (v > 0.0f ? 1.0f : 0.0f); });
      break;
    case UN_SOFTPLUS:
      // tfjs's formula: exp(x) far below zero, x far above, log(1 + exp(x)) between.
      unary_any(x, out, n, [](float v) {
        const double epsilon = 1.1920928955078125e-7;
        const double threshold = std::log(epsilon) + 2.0;
        const double xv = v;
        if (xv < threshold) return float(std::exp(xv));
        if (xv > -threshold) return v;
        return float(std::log(1.0 + std::exp(xv)));
      });
      break;
    default:
      break;
  }
}

// Elementwise work below this many elements runs on the calling thread only.
constexpr int64_t kParallelElements = int64_t(1) << 20;

// Adam's update (a square root and two divisions an element) gains from threads on smaller arrays.
constexpr int64_t kParallelAdam = int64_t(1) << 16;

int elementwise_threads(int64_t n, int64_t atLeast = kParallelElements) {
  const int t = get_threads();
  return (t > 1 && n >= atLeast) ? t : 1;
}
}  // namespace

void binary4(int op, const float* a, const float* b, float* out, const int64_t* d,
             const int64_t* sa, const int64_t* sb) {
  const int64_t total = d[0] * d[1] * d[2] * d[3];
  const int T = elementwise_threads(total);
  int k = 0;
  while (k < 4 && d[k] < T) k++;
  if (T <= 1 || k == 4) {
    binary4_serial(op, a, b, out, d, sa, sb);
    return;
  }
  // Split dim k (the outermost one with at least T entries); the dims outside it are looped over, and each
  // piece [outer index, lo..hi, inner dims] is a contiguous block of `out`.
  int64_t inner = 1;
  for (int j = k + 1; j < 4; j++) inner *= d[j];
  int64_t outer = 1;
  for (int j = 0; j < k; j++) outer *= d[j];
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(d[k], t, T, &lo, &hi);
    if (hi <= lo) return;
    int64_t dd[4] = {d[0], d[1], d[2], d[3]};
    for (int j = 0; j < k; j++) dd[j] = 1;
    dd[k] = hi - lo;
    for (int64_t o = 0; o < outer; o++) {
      int64_t rem = o, offA = lo * sa[k], offB = lo * sb[k];
      for (int j = k - 1; j >= 0; j--) {
        const int64_t i = rem % d[j];
        rem /= d[j];
        offA += i * sa[j];
        offB += i * sb[j];
      }
      binary4_serial(op, a + offA, b + offB, out + (o * d[k] + lo) * inner, dd, sa, sb);
    }
  });
}

void unary(int op, const float* x, float* out, int64_t n, float alpha) {
  const int T = elementwise_threads(n);
  if (T <= 1) {
    unary_serial(op, x, out, n, alpha);
    return;
  }
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(n / 16, t, T, &lo, &hi);
    lo *= 16;
    hi = t == T - 1 ? n : hi * 16;
    if (hi > lo) unary_serial(op, x + lo, out + lo, hi - lo, alpha);
  });
}

// ---- Reductions ---------------------------------------------------------------------------------

void reduce(int op, const float* x, float* out, int64_t pre, int64_t red, int64_t post) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (post == 1) {
    for (int64_t p = 0; p < pre; p++) {
      const float* RESTRICT r = x + p * red;
      switch (op) {
        case RED_SUM:
        case RED_MEAN: {
          double s = 0;
          for (int64_t i = 0; i < red; i++) s += r[i];
          out[p] = float(op == RED_MEAN ? s / double(red) : s);
          break;
        }
        case RED_PROD: {
          double s = 1;
          for (int64_t i = 0; i < red; i++) s *= r[i];
          out[p] = float(s);
          break;
        }
        case RED_MAX: {
          float m = red > 0 ? r[0] : -std::numeric_limits<float>::infinity();
          bool isnan = false;
          for (int64_t i = 0; i < red; i++) {
            m = r[i] > m ? r[i] : m;
            isnan |= r[i] != r[i];
          }
          out[p] = isnan ? nan : m;
          break;
        }
        case RED_MIN: {
          float m = red > 0 ? r[0] : std::numeric_limits<float>::infinity();
          bool isnan = false;
          for (int64_t i = 0; i < red; i++) {
            m = r[i] < m ? r[i] : m;
            isnan |= r[i] != r[i];
          }
          out[p] = isnan ? nan : m;
          break;
        }
        default:
          break;
      }
    }
    return;
  }
  // Reduce over a middle (or leading) axis: accumulate whole rows of `post` elements.
  std::vector<double> acc;
  if (op == RED_SUM || op == RED_MEAN || op == RED_PROD) acc.resize(size_t(post));
  for (int64_t p = 0; p < pre; p++) {
    const float* base = x + p * red * post;
    float* RESTRICT o = out + p * post;
    switch (op) {
      case RED_SUM:
      case RED_MEAN:
      case RED_PROD: {
        double* RESTRICT s = acc.data();
        const double init = op == RED_PROD ? 1.0 : 0.0;
        for (int64_t q = 0; q < post; q++) s[q] = init;
        for (int64_t i = 0; i < red; i++) {
          const float* RESTRICT r = base + i * post;
          if (op == RED_PROD) {
            for (int64_t q = 0; q < post; q++) s[q] *= r[q];
          } else {
            for (int64_t q = 0; q < post; q++) s[q] += r[q];
          }
        }
        const double scale = op == RED_MEAN ? 1.0 / double(red) : 1.0;
        for (int64_t q = 0; q < post; q++) o[q] = float(op == RED_MEAN ? s[q] * scale : s[q]);
        break;
      }
      case RED_MAX:
      case RED_MIN: {
        const bool isMax = op == RED_MAX;
        const float init = isMax ? -std::numeric_limits<float>::infinity()
                                 : std::numeric_limits<float>::infinity();
        for (int64_t q = 0; q < post; q++) o[q] = red > 0 ? base[q] : init;
        for (int64_t i = 0; i < red; i++) {
          const float* RESTRICT r = base + i * post;
          if (isMax) {
            for (int64_t q = 0; q < post; q++) o[q] = (r[q] > o[q] || r[q] != r[q]) ? r[q] : o[q];
          } else {
            for (int64_t q = 0; q < post; q++) o[q] = (r[q] < o[q] || r[q] != r[q]) ? r[q] : o[q];
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

void softmax(const float* x, float* out, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; r++) {
    const float* RESTRICT xr = x + r * cols;
    float* RESTRICT o = out + r * cols;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    // The exponentials first (vectorised, vecmath.h), into o; then their sum, in double.
    for (int64_t j = 0; j < cols; j++) o[j] = exp_f32(xr[j] - m);
    double s = 0;
    for (int64_t j = 0; j < cols; j++) s += o[j];
    if (log) {
      const float ls = float(std::log(s));
      for (int64_t j = 0; j < cols; j++) o[j] = (xr[j] - m) - ls;
    } else {
      const float inv = float(s);
      for (int64_t j = 0; j < cols; j++) o[j] = o[j] / inv;
    }
  }
}

// ---- Transformer: LayerNorm and GELU ----------------------------------------------------------

namespace {
// Row sums in kLanes independent partial sums, added in a fixed order at the end: a single running sum
// is a chain of dependent adds that GCC may not reorder (and so does not vectorise).
constexpr int kLanes = 8;

template <class F>
inline double lane_sum(int64_t n, F f) {
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += f(j + l);
  double s = 0;
  for (; j < n; j++) s += f(j);
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

// Rows [lo, hi) of the LayerNorm forward pass; mean and variance accumulated in double.
void layer_norm_rows(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                     float* rstd, int64_t lo, int64_t hi, int64_t cols, float eps) {
  for (int64_t r = lo; r < hi; r++) {
    const float* RESTRICT xr = x + r * cols;
    float* RESTRICT yr = y + r * cols;
    const double m = lane_sum(cols, [&](int64_t j) { return double(xr[j]); }) / double(cols);
    const double v = lane_sum(cols, [&](int64_t j) {
      const double d = double(xr[j]) - m;
      return d * d;
    });
    const float mf = float(m);
    const float inv = float(1.0 / std::sqrt(v / double(cols) + double(eps)));
    for (int64_t j = 0; j < cols; j++) yr[j] = (xr[j] - mf) * inv * gamma[j] + beta[j];
    mean[r] = mf;
    rstd[r] = inv;
  }
}

// Rows [lo, hi) of the LayerNorm backward pass: dx, and this block's sums for dgamma and dbeta.
void layer_norm_grad_rows(const float* dy, const float* x, const float* gamma, const float* mean,
                          const float* rstd, float* dx, double* RESTRICT dgamma, double* RESTRICT dbeta,
                          int64_t lo, int64_t hi, int64_t cols) {
  for (int64_t r = lo; r < hi; r++) {
    const float* RESTRICT dyr = dy + r * cols;
    const float* RESTRICT xr = x + r * cols;
    float* RESTRICT dxr = dx + r * cols;
    const float m = mean[r], inv = rstd[r];
    for (int64_t j = 0; j < cols; j++) {
      dgamma[j] += double(dyr[j]) * double((xr[j] - m) * inv);
      dbeta[j] += dyr[j];
    }
    const double sg = lane_sum(cols, [&](int64_t j) { return double(dyr[j]) * gamma[j]; });
    const double sgx = lane_sum(cols, [&](int64_t j) {
      return double(dyr[j]) * gamma[j] * double((xr[j] - m) * inv);
    });
    const double mg = sg / double(cols), mgx = sgx / double(cols);
    for (int64_t j = 0; j < cols; j++) {
      const double xhat = double((xr[j] - m) * inv);
      dxr[j] = float(double(inv) * (double(dyr[j]) * gamma[j] - mg - xhat * mgx));
    }
  }
}

int row_threads(int64_t rows, int64_t cols) {
  const int t = get_threads();
  return (t > 1 && rows >= t && rows * cols >= (int64_t(1) << 16)) ? t : 1;
}
}  // namespace

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                float* rstd, int64_t rows, int64_t cols, float eps) {
  const int T = row_threads(rows, cols);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(rows, t, T, &lo, &hi);
    layer_norm_rows(x, gamma, beta, y, mean, rstd, lo, hi, cols, eps);
  });
}

void layer_norm_grad(const float* dy, const float* x, const float* gamma, const float* mean,
                     const float* rstd, float* dx, float* dgamma, float* dbeta, int64_t rows,
                     int64_t cols) {
  const int T = row_threads(rows, cols);
  // Each thread sums its rows' dgamma and dbeta; the blocks are added in thread order (deterministic).
  std::vector<double> partial(size_t(2 * T * cols), 0.0);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(rows, t, T, &lo, &hi);
    double* pg = partial.data() + 2 * t * cols;
    layer_norm_grad_rows(dy, x, gamma, mean, rstd, dx, pg, pg + cols, lo, hi, cols);
  });
  for (int64_t j = 0; j < cols; j++) {
    double g = 0, b = 0;
    for (int t = 0; t < T; t++) {
      g += partial[size_t(2 * t * cols + j)];
      b += partial[size_t(2 * t * cols + cols + j)];
    }
    dgamma[j] = float(g);
    dbeta[j] = float(b);
  }
}

namespace {
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// GELU(x) = x Phi(x), with Phi from vecmath.h's erfc (vectorised; libm's std::erf is scalar).
void gelu_serial(const float* RESTRICT x, float* RESTRICT y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * normal_cdf_f32(x[i]);
}

// d/dx x Phi(x) = Phi(x) + x phi(x).
void gelu_grad_serial(const float* RESTRICT dy, const float* RESTRICT x, float* RESTRICT dx, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float pdf = kInvSqrt2Pi * exp_f32(-0.5f * x[i] * x[i]);
    dx[i] = dy[i] * (normal_cdf_f32(x[i]) + x[i] * pdf);
  }
}
}  // namespace

void gelu(const float* x, float* y, int64_t n) {
  const int T = elementwise_threads(n);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(n, t, T, &lo, &hi);
    if (hi > lo) gelu_serial(x + lo, y + lo, hi - lo);
  });
}

void gelu_grad(const float* dy, const float* x, float* dx, int64_t n) {
  const int T = elementwise_threads(n);
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(n, t, T, &lo, &hi);
    if (hi > lo) gelu_grad_serial(dy + lo, x + lo, dx + lo, hi - lo);
  });
}

// ---- Optimizer ----------------------------------------------------------------------------------

namespace {
void adam_noalias(const float* RESTRICT p, const float* RESTRICT m, const float* RESTRICT v,
                  const float* RESTRICT g, float* RESTRICT pOut, float* RESTRICT mOut,
                  float* RESTRICT vOut, int64_t n, float nlr, float b1, float omb1, float b2,
                  float omb2, float eps, float bc1, float bc2) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * omb1;
    const float v1 = v[i] * b2 + (gi * gi) * omb2;
    mOut[i] = m1;
    vOut[i] = v1;
    pOut[i] = ((m1 / bc1) / (std::sqrt(v1 / bc2) + eps)) * nlr + p[i];
  }
}
void adam_inplace(float* RESTRICT p, float* RESTRICT m, float* RESTRICT v,
                  const float* RESTRICT g, int64_t n, float nlr, float b1, float omb1, float b2,
                  float omb2, float eps, float bc1, float bc2) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * omb1;
    const float v1 = v[i] * b2 + (gi * gi) * omb2;
    m[i] = m1;
    v[i] = v1;
    p[i] = ((m1 / bc1) / (std::sqrt(v1 / bc2) + eps)) * nlr + p[i];
  }
}
// Any other overlap: element i is read before it is written, so a plain loop is still correct.
void adam_alias(const float* p, const float* m, const float* v, const float* g, float* pOut,
                float* mOut, float* vOut, int64_t n, float nlr, float b1, float omb1, float b2,
                float omb2, float eps, float bc1, float bc2) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * omb1;
    const float v1 = v[i] * b2 + (gi * gi) * omb2;
    const float pi = p[i];
    mOut[i] = m1;
    vOut[i] = v1;
    pOut[i] = ((m1 / bc1) / (std::sqrt(v1 / bc2) + eps)) * nlr + pi;
  }
}
}  // namespace

void adam(const float* p, const float* m, const float* v, const float* g, float* pOut, float* mOut,
          float* vOut, int64_t n, double lr, double beta1, double beta2, double eps,
          float bc1, float bc2) {
  // (1 - beta) is formed in double and rounded once, as tfjs does with its scalar operands.
  const float omb1 = float(1.0 - beta1), omb2 = float(1.0 - beta2);
  const float b1 = float(beta1), b2 = float(beta2), feps = float(eps), nlr = float(-lr);
  auto apart = [n](const float* a, const float* b) { return a + n <= b || b + n <= a; };
  const bool inputsApart = apart(p, m) && apart(p, v) && apart(p, g) && apart(m, v) &&
                           apart(m, g) && apart(v, g);
  const bool inplace = pOut == p && mOut == m && vOut == v && inputsApart;
  const float* ins[4] = {p, m, v, g};
  float* outs[3] = {pOut, mOut, vOut};
  bool distinct = inputsApart && apart(pOut, mOut) && apart(pOut, vOut) && apart(mOut, vOut);
  for (const float* in : ins)
    for (const float* out : outs) distinct = distinct && apart(in, out);
  // Each element's update is on its own: threads split the array (the same bits at any thread count),
  // except when outputs overlap inputs in other ways than in place, which stays serial.
  const int T = (inplace || distinct) ? elementwise_threads(n, kParallelAdam) : 1;
  parallel(T, [&](int t) {
    int64_t lo, hi;
    split(n / 16, t, T, &lo, &hi);
    lo *= 16;
    hi = t == T - 1 ? n : hi * 16;
    const int64_t len = hi - lo;
    if (len <= 0) return;
    if (inplace) {
      adam_inplace(pOut + lo, mOut + lo, vOut + lo, g + lo, len, nlr, b1, omb1, b2, omb2, feps, bc1, bc2);
    } else if (distinct) {
      adam_noalias(p + lo, m + lo, v + lo, g + lo, pOut + lo, mOut + lo, vOut + lo, len, nlr, b1, omb1, b2,
                   omb2, feps, bc1, bc2);
    } else {
      adam_alias(p, m, v, g, pOut, mOut, vOut, n, nlr, b1, omb1, b2, omb2, feps, bc1, bc2);
    }
  });
}

}  // namespace sll
