// NHWC float32 convolution and pooling (see conv.h).
//
// Convolutions are im2col + OpenBLAS sgemm, done in blocks of output pixels so that the column buffer
// (block rows x KH*KW*C) stays in cache:
//   forward          y[block]  = col[block] w                  (w is [KH*KW*C, CO] as stored)
//   filter gradient  dw       += col[block]^T dy[block]
//   input gradient   dcol      = dy[block] w^T, scattered back (col2im) into dx
// With more than one thread (set_threads), blocks are split over our own threads, each running
// single-threaded GEMMs (OpenBLAS's own threading is switched off meanwhile): the im2col copies and the
// epilogues then run in parallel too, and small per-block GEMMs do not pay OpenBLAS's hand-offs.
#include "conv.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

#define RESTRICT __restrict__

namespace sll {

namespace {

// Work below this many multiply-adds (or element visits, for pooling) runs on the calling thread only.
constexpr double kParallelWork = 2.0 * 1024 * 1024;

// Column buffer per block, in floats (1 MiB): large enough for efficient GEMMs, small enough for L2.
constexpr int64_t kBlockFloats = 256 * 1024;

int64_t block_rows(int64_t kd) {
  int64_t rows = kBlockFloats / std::max<int64_t>(kd, 1);
  rows = std::max<int64_t>(16, std::min<int64_t>(4096, rows));
  return rows;
}

int threads_for(double work, int64_t units) {
  const int t = get_threads();
  if (t <= 1 || work < kParallelWork) return 1;
  return int(std::max<int64_t>(1, std::min<int64_t>(t, units)));
}

inline void gemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
              blasint(M), blasint(N), blasint(K), 1.0f, A, blasint(lda), B, blasint(ldb), beta, C,
              blasint(ldc));
}

bool is_pointwise(const ConvGeom& g) {
  return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 &&
         g.OH == g.H && g.OW == g.W;
}

// Walks the output pixels r0 .. r0 + rows - 1 (flattened over N, OH, OW) and, for each, the KH x KW
// window: calls seg(row, kh, kw0, count, inputOffset) for each run of `count` window columns starting at
// kw0 that lies inside the input (inputOffset: element offset of the run's first pixel in x), and
// pad(row, kh, kw0, count) for runs outside it. With DW == 1 an in-bounds run is contiguous in x.
template <class Seg, class Pad>
void walk_windows(const ConvGeom& g, int64_t r0, int64_t rows, Seg seg, Pad pad) {
  const int64_t ohw = g.OH * g.OW;
  int64_t n = r0 / ohw;
  int64_t rem = r0 % ohw;
  int64_t oh = rem / g.OW, ow = rem % g.OW;
  for (int64_t r = 0; r < rows; r++) {
    const int64_t xn = n * g.H * g.W * g.C;
    const int64_t iw0 = ow * g.SW - g.PL;
    for (int64_t kh = 0; kh < g.KH; kh++) {
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) {
        pad(r, kh, 0, g.KW);
        continue;
      }
      const int64_t xr = xn + ih * g.W * g.C;
      if (g.DW == 1) {
        // Columns iw0 .. iw0 + KW - 1: a padded head, an in-bounds middle, a padded tail.
        const int64_t lo = std::max<int64_t>(0, -iw0);
        const int64_t hi = std::min<int64_t>(g.KW, g.W - iw0);
        if (hi <= lo) {
          pad(r, kh, 0, g.KW);
          continue;
        }
        if (lo > 0) pad(r, kh, 0, lo);
        seg(r, kh, lo, hi - lo, xr + (iw0 + lo) * g.C);
        if (hi < g.KW) pad(r, kh, hi, g.KW - hi);
      } else {
        for (int64_t kw = 0; kw < g.KW; kw++) {
          const int64_t iw = iw0 + kw * g.DW;
          if (iw < 0 || iw >= g.W)
            pad(r, kh, kw, 1);
          else
            seg(r, kh, kw, 1, xr + iw * g.C);
        }
      }
    }
    if (++ow == g.OW) {
      ow = 0;
      if (++oh == g.OH) {
        oh = 0;
        n++;
      }
    }
  }
}

// col[rows, KH*KW*C] = the windows of output pixels r0 .. r0 + rows - 1.
void im2col(const ConvGeom& g, const float* x, float* col, int64_t r0, int64_t rows) {
  const int64_t kd = g.KH * g.KW * g.C;
  const int64_t C = g.C;
  walk_windows(
      g, r0, rows,
      [&](int64_t r, int64_t kh, int64_t kw0, int64_t count, int64_t off) {
        std::memcpy(col + r * kd + (kh * g.KW + kw0) * C, x + off, size_t(count * C) * sizeof(float));
      },
      [&](int64_t r, int64_t kh, int64_t kw0, int64_t count) {
        std::memset(col + r * kd + (kh * g.KW + kw0) * C, 0, size_t(count * C) * sizeof(float));
      });
}

// dx += the windows in dcol[rows, KH*KW*C] (the adjoint of im2col).
void col2im_add(const ConvGeom& g, const float* dcol, float* dx, int64_t r0, int64_t rows) {
  const int64_t kd = g.KH * g.KW * g.C;
  const int64_t C = g.C;
  walk_windows(
      g, r0, rows,
      [&](int64_t r, int64_t kh, int64_t kw0, int64_t count, int64_t off) {
        const float* RESTRICT s = dcol + r * kd + (kh * g.KW + kw0) * C;
        float* RESTRICT d = dx + off;
        const int64_t n = count * C;
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
      },
      [](int64_t, int64_t, int64_t, int64_t) {});
}

void apply_epilogue(float* y, int64_t rows, int64_t CO, const float* bias, int biasMode, int act,
                    float alpha) {
  if ((bias == nullptr || biasMode == BIAS_NONE) && act == ACT_LINEAR) return;
  epilogue(y, rows, CO, bias, bias == nullptr ? BIAS_NONE : biasMode, act, alpha);
}

}  // namespace

void conv2d_forward(const ConvGeom& g, const float* x, const float* w, float* y, const float* bias,
                    int biasMode, int act, float alpha) {
  const int64_t total = g.N * g.OH * g.OW;
  const int64_t kd = g.KH * g.KW * g.C;
  if (total <= 0 || g.CO <= 0) return;
  if (kd <= 0) {
    std::fill(y, y + total * g.CO, 0.0f);
    apply_epilogue(y, total, g.CO, bias, biasMode, act, alpha);
    return;
  }
  const double work = double(total) * double(kd) * double(g.CO);
  if (is_pointwise(g)) {
    // A 1x1 stride-1 unpadded convolution is one GEMM over all pixels (OpenBLAS's own threads).
    sgemm_batched(false, false, total, g.CO, g.C, 1.0f, x, g.C, 0, w, g.CO, 0, 0.0f, y, g.CO, 0, 1);
    apply_epilogue(y, total, g.CO, bias, biasMode, act, alpha);
    return;
  }
  const int64_t B = block_rows(kd);
  const int T = threads_for(work, (total + B - 1) / B);
  std::vector<float> cols(size_t(T) * size_t(std::min(B, total)) * size_t(kd));
  parallel(T, [&](int t) {
    float* col = cols.data() + size_t(t) * size_t(std::min(B, total)) * size_t(kd);
    int64_t begin, end;
    split(total, t, T, &begin, &end);
    for (int64_t r0 = begin; r0 < end; r0 += B) {
      const int64_t rows = std::min(B, end - r0);
      im2col(g, x, col, r0, rows);
      gemm(false, false, rows, g.CO, kd, col, kd, w, g.CO, 0.0f, y + r0 * g.CO, g.CO);
      apply_epilogue(y + r0 * g.CO, rows, g.CO, bias, biasMode, act, alpha);
    }
  });
}

void conv2d_backprop_filter(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  const int64_t total = g.N * g.OH * g.OW;
  const int64_t kd = g.KH * g.KW * g.C;
  const int64_t wsize = kd * g.CO;
  if (wsize <= 0) return;
  if (total <= 0) {
    std::fill(dw, dw + wsize, 0.0f);
    return;
  }
  if (is_pointwise(g)) {
    sgemm_batched(true, false, g.C, g.CO, total, 1.0f, x, g.C, 0, dy, g.CO, 0, 0.0f, dw, g.CO, 0, 1);
    return;
  }
  const double work = double(total) * double(kd) * double(g.CO);
  const int64_t B = block_rows(kd);
  const int T = threads_for(work, (total + B - 1) / B);
  const size_t colSize = size_t(std::min(B, total)) * size_t(kd);
  std::vector<float> cols(size_t(T) * colSize);
  // Thread 0 accumulates into dw, the others into partial sums added at the end.
  std::vector<float> partial(size_t(T - 1) * size_t(wsize));
  parallel(T, [&](int t) {
    float* col = cols.data() + size_t(t) * colSize;
    float* acc = t == 0 ? dw : partial.data() + size_t(t - 1) * size_t(wsize);
    int64_t begin, end;
    split(total, t, T, &begin, &end);
    bool first = true;
    for (int64_t r0 = begin; r0 < end; r0 += B) {
      const int64_t rows = std::min(B, end - r0);
      im2col(g, x, col, r0, rows);
      gemm(true, false, kd, g.CO, rows, col, kd, dy + r0 * g.CO, g.CO, first ? 0.0f : 1.0f, acc, g.CO);
      first = false;
    }
    if (first) std::fill(acc, acc + wsize, 0.0f);
  });
  for (int t = 1; t < T; t++) {
    const float* RESTRICT p = partial.data() + size_t(t - 1) * size_t(wsize);
    float* RESTRICT d = dw;
    for (int64_t i = 0; i < wsize; i++) d[i] += p[i];
  }
}

void conv2d_backprop_input(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  const int64_t xsize = g.N * g.H * g.W * g.C;
  if (xsize <= 0) return;
  const int64_t ohw = g.OH * g.OW;
  const int64_t kd = g.KH * g.KW * g.C;
  if (ohw <= 0 || g.CO <= 0 || kd <= 0) {
    std::fill(dx, dx + xsize, 0.0f);
    return;
  }
  if (is_pointwise(g)) {
    sgemm_batched(false, true, g.N * ohw, g.C, g.CO, 1.0f, dy, g.CO, 0, w, g.CO, 0, 0.0f, dx, g.C, 0, 1);
    return;
  }
  const double work = double(g.N) * double(ohw) * double(kd) * double(g.CO);
  const int64_t B = std::min(block_rows(kd), ohw);
  // Windows of different output pixels of one image overlap in dx: each image is one thread's.
  const int T = threads_for(work, g.N);
  std::vector<float> cols(size_t(T) * size_t(B) * size_t(kd));
  const int64_t imageSize = g.H * g.W * g.C;
  parallel(T, [&](int t) {
    float* dcol = cols.data() + size_t(t) * size_t(B) * size_t(kd);
    int64_t begin, end;
    split(g.N, t, T, &begin, &end);
    if (end > begin) std::fill(dx + begin * imageSize, dx + end * imageSize, 0.0f);
    for (int64_t n = begin; n < end; n++) {
      for (int64_t q = 0; q < ohw; q += B) {
        const int64_t rows = std::min(B, ohw - q);
        const int64_t r0 = n * ohw + q;
        gemm(false, true, rows, kd, g.CO, dy + r0 * g.CO, g.CO, w, g.CO, 0.0f, dcol, kd);
        col2im_add(g, dcol, dx, r0, rows);
      }
    }
  });
}

// ---- Pooling ------------------------------------------------------------------------------------

namespace {

// Calls f(n) for every image, split over threads when the work is large enough.
template <class F>
void for_images(const ConvGeom& g, F f) {
  const double work = double(g.N) * double(g.OH * g.OW) * double(g.KH * g.KW) * double(g.C);
  const int T = threads_for(work, g.N);
  parallel(T, [&](int t) {
    int64_t begin, end;
    split(g.N, t, T, &begin, &end);
    for (int64_t n = begin; n < end; n++) f(n);
  });
}

// Calls f(ih, iw) for every input pixel of window (oh, ow) inside the input, in row-major window order.
template <class F>
inline void for_window(const ConvGeom& g, int64_t oh, int64_t ow, F f) {
  for (int64_t kh = 0; kh < g.KH; kh++) {
    const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; kw++) {
      const int64_t iw = ow * g.SW - g.PL + kw * g.DW;
      if (iw < 0 || iw >= g.W) continue;
      f(ih, iw);
    }
  }
}

}  // namespace

void pool2d(int op, const ConvGeom& g, const float* x, float* y) {
  const int64_t C = g.C;
  if (g.N * g.OH * g.OW * C <= 0) return;
  const float ninf = -std::numeric_limits<float>::infinity();
  for_images(g, [&](int64_t n) {
    const float* xn = x + n * g.H * g.W * C;
    std::vector<double> acc(op == POOL_AVG ? size_t(C) : 0);
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        float* RESTRICT o = y + ((n * g.OH + oh) * g.OW + ow) * C;
        if (op == POOL_MAX) {
          for (int64_t c = 0; c < C; c++) o[c] = ninf;
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const float* RESTRICT p = xn + (ih * g.W + iw) * C;
            for (int64_t c = 0; c < C; c++) o[c] = p[c] > o[c] ? p[c] : o[c];
          });
        } else {
          double* RESTRICT a = acc.data();
          for (int64_t c = 0; c < C; c++) a[c] = 0;
          int64_t count = 0;
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const float* RESTRICT p = xn + (ih * g.W + iw) * C;
            for (int64_t c = 0; c < C; c++) a[c] += p[c];
            count++;
          });
          const double cnt = double(count);
          for (int64_t c = 0; c < C; c++) o[c] = float(a[c] / cnt);
        }
      }
    }
  });
}

void pool2d_backprop(int op, const ConvGeom& g, const float* x, const float* dy, float* dx) {
  const int64_t C = g.C;
  const int64_t imageSize = g.H * g.W * C;
  if (g.N * imageSize <= 0) return;
  const float ninf = -std::numeric_limits<float>::infinity();
  for_images(g, [&](int64_t n) {
    float* dxn = dx + n * imageSize;
    std::fill(dxn, dxn + imageSize, 0.0f);
    const float* xn = x == nullptr ? nullptr : x + n * imageSize;
    std::vector<float> best(op == POOL_MAX ? size_t(C) : 0);
    std::vector<int64_t> where(op == POOL_MAX ? size_t(C) : 0);
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        const float* RESTRICT d = dy + ((n * g.OH + oh) * g.OW + ow) * C;
        if (op == POOL_MAX) {
          float* RESTRICT b = best.data();
          int64_t* RESTRICT wh = where.data();
          for (int64_t c = 0; c < C; c++) {
            b[c] = ninf;
            wh[c] = -1;
          }
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const int64_t off = (ih * g.W + iw) * C;
            const float* RESTRICT p = xn + off;
            for (int64_t c = 0; c < C; c++) {
              const bool take = p[c] > b[c];
              b[c] = take ? p[c] : b[c];
              wh[c] = take ? off : wh[c];
            }
          });
          for (int64_t c = 0; c < C; c++)
            if (wh[c] >= 0) dxn[wh[c] + c] += d[c];
        } else {
          int64_t count = 0;
          for_window(g, oh, ow, [&](int64_t, int64_t) { count++; });
          if (count == 0) continue;
          const float inv = float(count);
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            float* RESTRICT q = dxn + (ih * g.W + iw) * C;
            for (int64_t c = 0; c < C; c++) q[c] += d[c] / inv;
          });
        }
      }
    }
  });
}

}  // namespace sll
