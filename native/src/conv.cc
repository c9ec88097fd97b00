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
#include <type_traits>
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

// The tap (kh, kw) when it is the only one of the window that ever lands inside the input and it maps
// output pixel (oh, ow) to input pixel (oh, ow) (a 3x3 'same' convolution of a 1x1 image): the
// convolution is then the pointwise one with that tap's [C, CO] slice of the filter. -1 otherwise.
int64_t identity_tap(const ConvGeom& g) {
  if (g.OH != g.H || g.OW != g.W || g.SH != 1 || g.SW != 1) return -1;
  int64_t found = -1;
  for (int64_t kh = 0; kh < g.KH; kh++) {
    const int64_t dh = kh * g.DH - g.PT;  // ih = oh + dh
    const bool rowsIn = dh > -g.H && dh < g.H;
    for (int64_t kw = 0; kw < g.KW; kw++) {
      const int64_t dw = kw * g.DW - g.PL;
      if (!rowsIn || dw <= -g.W || dw >= g.W) continue;  // never inside the input
      if (found >= 0 || dh != 0 || dw != 0) return -1;
      found = kh * g.KW + kw;
    }
  }
  return found;
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

// ---- Convolutions of few input channels ---------------------------------------------------------
//
// A window of KH*KW*C <= 64 values (the first layer of an image network: C = 1 or 3) makes im2col's GEMM
// a K <= 64 one, which OpenBLAS runs at a few GFLOP/s. Directly: each output pixel's CO sums, the taps
// inside the input only, vectorised over CO.

bool is_small_window(const ConvGeom& g) { return g.C < 16 && g.KH * g.KW * g.C <= 64; }

// A run of a window inside the input: its first filter row, its input offset, its values.
struct DirectSeg {
  int64_t w, x, n;
};

// Output channels summed in registers at a time.
constexpr int64_t kDirectChunk = 32;

// o[0, m) = output channels c0 .. c0 + m - 1 of one pixel, the sum over its window's runs; m <= kDirectChunk
// (a compile-time kDirectChunk in the main loop, so that the sums stay in registers).
template <class Width>
inline void direct_sums(const DirectSeg* sg, size_t count, const float* x, const float* w, int64_t CO, int64_t c0,
                        Width m, float* o) {
  float a[kDirectChunk] = {};
  for (size_t s = 0; s < count; s++) {
    const float* xs = x + sg[s].x;
    const float* ws = w + sg[s].w * CO + c0;
    for (int64_t j = 0; j < sg[s].n; j++) {
      const float v = xs[j];
      const float* RESTRICT wr = ws + j * CO;
      for (int64_t c = 0; c < int64_t(m); c++) a[c] += v * wr[c];
    }
  }
  for (int64_t c = 0; c < int64_t(m); c++) o[c] = a[c];
}

void direct_forward(const ConvGeom& g, const float* x, const float* w, float* y, const float* bias, int biasMode,
                    int act, float alpha, double work) {
  const int64_t total = g.N * g.OH * g.OW;
  const int64_t B = 256;
  const int T = threads_for(work, (total + B - 1) / B);
  parallel(T, [&](int t) {
    int64_t begin, end;
    split(total, t, T, &begin, &end);
    const size_t perRow = size_t(g.KH * g.KW);
    std::vector<DirectSeg> segs(static_cast<size_t>(B) * perRow);
    std::vector<size_t> counts(static_cast<size_t>(B));
    for (int64_t r0 = begin; r0 < end; r0 += B) {
      const int64_t rows = std::min(B, end - r0);
      float* yb = y + r0 * g.CO;
      std::fill(counts.begin(), counts.end(), 0);
      walk_windows(
          g, r0, rows,
          [&](int64_t r, int64_t kh, int64_t kw0, int64_t n, int64_t off) {
            segs[size_t(r) * perRow + counts[size_t(r)]++] = {(kh * g.KW + kw0) * g.C, off, n * g.C};
          },
          [](int64_t, int64_t, int64_t, int64_t) {});
      for (int64_t r = 0; r < rows; r++) {
        const size_t count = counts[size_t(r)];
        const DirectSeg* sg = segs.data() + size_t(r) * perRow;
        float* o = yb + r * g.CO;
        int64_t c0 = 0;
        for (; c0 + kDirectChunk <= g.CO; c0 += kDirectChunk)
          direct_sums(sg, count, x, w, g.CO, c0, std::integral_constant<int64_t, kDirectChunk>(), o + c0);
        if (c0 < g.CO) direct_sums(sg, count, x, w, g.CO, c0, g.CO - c0, o + c0);
      }
      apply_epilogue(yb, rows, g.CO, bias, biasMode, act, alpha);
    }
  });
}

// ---- Convolutions without the padding's multiply-adds -------------------------------------------
//
// On small images most windows overlap the zero padding: a 3x3 'same' convolution of a 4x4 image spends
// 31% of im2col's multiply-adds on padding, of a 2x2 image 56%. The output pixels are split into regions
// whose windows have the same taps inside the input (for 3x3 'same': the corners, the edges and the
// interior); each region's im2col holds only those taps, and its GEMMs read only those taps' rows of the
// filter (one GEMM when the region keeps whole filter rows kw, one per kernel row kh otherwise).

// Output pixels [oh0, oh1) x [ow0, ow1) whose windows have exactly the taps [kh0, kh1) x [kw0, kw1)
// inside the input.
struct Region {
  int64_t oh0, oh1, ow0, ow1, kh0, kh1, kw0, kw1;
  int64_t pixels() const { return (oh1 - oh0) * (ow1 - ow0); }
  int64_t nkh() const { return kh1 - kh0; }
  int64_t nkw() const { return kw1 - kw0; }
};

struct Run {
  int64_t o0, o1, k0, k1;
};

// Runs of consecutive output rows (or columns) o whose taps k with 0 <= o*S - P + k*D < In are the same
// (always an interval of k, as D > 0).
std::vector<Run> tap_runs(int64_t O, int64_t S, int64_t P, int64_t D, int64_t K, int64_t In) {
  std::vector<Run> out;
  for (int64_t o = 0; o < O; o++) {
    int64_t k0 = 0;
    while (k0 < K && o * S - P + k0 * D < 0) k0++;
    int64_t k1 = K;
    while (k1 > k0 && o * S - P + (k1 - 1) * D >= In) k1--;
    if (!out.empty() && out.back().k0 == k0 && out.back().k1 == k1)
      out.back().o1 = o + 1;
    else
      out.push_back({o, o + 1, k0, k1});
  }
  return out;
}

// The regions of g, or none when im2col over whole windows is as good: channels too few for GEMMs of
// one kernel row, too little padding to gain from skipping it, or too many regions.
std::vector<Region> padding_regions(const ConvGeom& g) {
  if (g.C < 16) return {};
  const auto rows = tap_runs(g.OH, g.SH, g.PT, g.DH, g.KH, g.H);
  const auto cols = tap_runs(g.OW, g.SW, g.PL, g.DW, g.KW, g.W);
  if (rows.size() * cols.size() > 64) return {};
  std::vector<Region> out;
  double kept = 0;
  for (const Run& r : rows)
    for (const Run& c : cols) {
      out.push_back({r.o0, r.o1, c.o0, c.o1, r.k0, r.k1, c.k0, c.k1});
      kept += double(out.back().pixels()) * double(out.back().nkh() * out.back().nkw());
    }
  const double full = double(g.OH * g.OW) * double(g.KH * g.KW);
  if (kept > 0.95 * full) return {};
  return out;
}

// Output pixel i (in n, oh, ow order) of the region's pixels of images from n0 on: its image, row and
// column.
struct RegionPixel {
  int64_t n, oh, ow;
};
inline RegionPixel region_pixel(const Region& q, int64_t n0, int64_t i) {
  const int64_t nw = q.ow1 - q.ow0;
  const int64_t per = q.pixels();
  return {n0 + i / per, q.oh0 + (i % per) / nw, q.ow0 + (i % per) % nw};
}

// Calls f(r, o) for r in [0, rows): o is the output row (n*OH + oh)*OW + ow of region pixel i0 + r.
template <class F>
void region_rows(const ConvGeom& g, const Region& q, int64_t n0, int64_t i0, int64_t rows, F f) {
  for (int64_t r = 0; r < rows; r++) {
    const RegionPixel p = region_pixel(q, n0, i0 + r);
    f(r, (p.n * g.OH + p.oh) * g.OW + p.ow);
  }
}

// Calls f(colOffset, inputOffset, count) for each run of `count` values (one tap's C, or a whole kernel
// row's when DW == 1) of the region's im2col rows for pixels i0 .. i0 + rows - 1 (of images from n0 on):
// row r of the im2col is [nkh, nkw, C], rows nkh*nkw*C apart.
template <class F>
void region_runs(const ConvGeom& g, const Region& q, int64_t n0, int64_t i0, int64_t rows, F f) {
  const int64_t run = q.nkw() * g.C;
  const int64_t kdr = q.nkh() * run;
  for (int64_t r = 0; r < rows; r++) {
    const RegionPixel p = region_pixel(q, n0, i0 + r);
    for (int64_t kh = q.kh0; kh < q.kh1; kh++) {
      const int64_t ih = p.oh * g.SH - g.PT + kh * g.DH;
      const int64_t xr = ((p.n * g.H + ih) * g.W) * g.C;
      const int64_t c = r * kdr + (kh - q.kh0) * run;
      if (g.DW == 1) {
        f(c, xr + (p.ow * g.SW - g.PL + q.kw0) * g.C, run);
      } else {
        for (int64_t kw = q.kw0; kw < q.kw1; kw++)
          f(c + (kw - q.kw0) * g.C, xr + (p.ow * g.SW - g.PL + kw * g.DW) * g.C, g.C);
      }
    }
  }
}

// col[rows, nkh*nkw*C] = the region's taps of pixels i0 .. i0 + rows - 1 (of images from n0 on).
void region_im2col(const ConvGeom& g, const Region& q, const float* x, float* col, int64_t n0, int64_t i0,
                   int64_t rows) {
  region_runs(g, q, n0, i0, rows, [&](int64_t c, int64_t off, int64_t count) {
    std::memcpy(col + c, x + off, size_t(count) * sizeof(float));
  });
}

// dx += the region's taps in dcol[rows, nkh*nkw*C] (the adjoint of region_im2col).
void region_col2im_add(const ConvGeom& g, const Region& q, const float* dcol, float* dx, int64_t n0, int64_t i0,
                       int64_t rows) {
  region_runs(g, q, n0, i0, rows, [&](int64_t c, int64_t off, int64_t count) {
    const float* RESTRICT s = dcol + c;
    float* RESTRICT d = dx + off;
    for (int64_t i = 0; i < count; i++) d[i] += s[i];
  });
}

// Row offset in the filter [KH*KW*C, CO] of tap (kh, kw).
inline int64_t tap_row(const ConvGeom& g, int64_t kh, int64_t kw) { return (kh * g.KW + kw) * g.C; }

// Calls f(t, n0, n1, col, buf) on each thread with its images [n0, n1) and its buffers: col for `B`
// rows of the largest region's im2col, buf for B rows of CO.
template <class F>
void for_region_images(const ConvGeom& g, const std::vector<Region>& regions, double work, int64_t B, F f) {
  int64_t kdMax = 0;
  for (const Region& q : regions) kdMax = std::max(kdMax, q.nkh() * q.nkw() * g.C);
  const int T = threads_for(work, g.N);
  const size_t colSize = size_t(B) * size_t(std::max<int64_t>(kdMax, 1));
  const size_t bufSize = size_t(B) * size_t(g.CO);
  std::vector<float> cols(size_t(T) * colSize), bufs(size_t(T) * bufSize);
  parallel(T, [&](int t) {
    int64_t n0, n1;
    split(g.N, t, T, &n0, &n1);
    f(t, T, n0, n1, cols.data() + size_t(t) * colSize, bufs.data() + size_t(t) * bufSize);
  });
}

int64_t region_block_rows(const ConvGeom& g) { return block_rows(g.KH * g.KW * g.C); }

void region_forward(const ConvGeom& g, const std::vector<Region>& regions, const float* x, const float* w,
                    float* y, const float* bias, int biasMode, int act, float alpha, double work) {
  const int64_t B = region_block_rows(g);
  for_region_images(g, regions, work, B, [&](int, int, int64_t n0, int64_t n1, float* col, float* buf) {
    for (const Region& q : regions) {
      const int64_t total = (n1 - n0) * q.pixels();
      const int64_t kdr = q.nkh() * q.nkw() * g.C;
      for (int64_t i0 = 0; i0 < total; i0 += B) {
        const int64_t rows = std::min(B, total - i0);
        if (kdr == 0) {
          std::fill(buf, buf + rows * g.CO, 0.0f);
        } else {
          region_im2col(g, q, x, col, n0, i0, rows);
          if (q.nkw() == g.KW) {
            gemm(false, false, rows, g.CO, kdr, col, kdr, w + tap_row(g, q.kh0, 0) * g.CO, g.CO, 0.0f, buf, g.CO);
          } else {
            const int64_t run = q.nkw() * g.C;
            for (int64_t i = 0; i < q.nkh(); i++)
              gemm(false, false, rows, g.CO, run, col + i * run, kdr, w + tap_row(g, q.kh0 + i, q.kw0) * g.CO, g.CO,
                   i == 0 ? 0.0f : 1.0f, buf, g.CO);
          }
        }
        apply_epilogue(buf, rows, g.CO, bias, biasMode, act, alpha);
        region_rows(g, q, n0, i0, rows, [&](int64_t r, int64_t o) {
          std::memcpy(y + o * g.CO, buf + r * g.CO, size_t(g.CO) * sizeof(float));
        });
      }
    }
  });
}

void region_backprop_filter(const ConvGeom& g, const std::vector<Region>& regions, const float* x,
                            const float* dy, float* dw, double work) {
  const int64_t B = region_block_rows(g);
  const int64_t wsize = g.KH * g.KW * g.C * g.CO;
  // Thread 0 accumulates into dw, the others into partial sums added at the end.
  const int T = threads_for(work, g.N);
  std::vector<float> partial(size_t(std::max(T - 1, 0)) * size_t(wsize));
  for_region_images(g, regions, work, B, [&](int t, int, int64_t n0, int64_t n1, float* col, float* buf) {
    float* acc = t == 0 ? dw : partial.data() + size_t(t - 1) * size_t(wsize);
    std::fill(acc, acc + wsize, 0.0f);
    for (const Region& q : regions) {
      const int64_t total = (n1 - n0) * q.pixels();
      const int64_t kdr = q.nkh() * q.nkw() * g.C;
      if (kdr == 0) continue;
      for (int64_t i0 = 0; i0 < total; i0 += B) {
        const int64_t rows = std::min(B, total - i0);
        region_im2col(g, q, x, col, n0, i0, rows);
        region_rows(g, q, n0, i0, rows, [&](int64_t r, int64_t o) {
          std::memcpy(buf + r * g.CO, dy + o * g.CO, size_t(g.CO) * sizeof(float));
        });
        if (q.nkw() == g.KW) {
          gemm(true, false, kdr, g.CO, rows, col, kdr, buf, g.CO, 1.0f, acc + tap_row(g, q.kh0, 0) * g.CO, g.CO);
        } else {
          const int64_t run = q.nkw() * g.C;
          for (int64_t i = 0; i < q.nkh(); i++)
            gemm(true, false, run, g.CO, rows, col + i * run, kdr, buf, g.CO, 1.0f,
                 acc + tap_row(g, q.kh0 + i, q.kw0) * g.CO, g.CO);
        }
      }
    }
  });
  for (int t = 1; t < T; t++) {
    const float* RESTRICT p = partial.data() + size_t(t - 1) * size_t(wsize);
    float* RESTRICT d = dw;
    for (int64_t i = 0; i < wsize; i++) d[i] += p[i];
  }
}

void region_backprop_input(const ConvGeom& g, const std::vector<Region>& regions, const float* dy,
                           const float* w, float* dx, double work) {
  const int64_t B = region_block_rows(g);
  const int64_t imageSize = g.H * g.W * g.C;
  // Each image is one thread's: windows of its pixels overlap in dx.
  for_region_images(g, regions, work, B, [&](int, int, int64_t n0, int64_t n1, float* dcol, float* buf) {
    if (n1 > n0) std::fill(dx + n0 * imageSize, dx + n1 * imageSize, 0.0f);
    for (const Region& q : regions) {
      const int64_t total = (n1 - n0) * q.pixels();
      const int64_t kdr = q.nkh() * q.nkw() * g.C;
      if (kdr == 0) continue;
      for (int64_t i0 = 0; i0 < total; i0 += B) {
        const int64_t rows = std::min(B, total - i0);
        region_rows(g, q, n0, i0, rows, [&](int64_t r, int64_t o) {
          std::memcpy(buf + r * g.CO, dy + o * g.CO, size_t(g.CO) * sizeof(float));
        });
        if (q.nkw() == g.KW) {
          gemm(false, true, rows, kdr, g.CO, buf, g.CO, w + tap_row(g, q.kh0, 0) * g.CO, g.CO, 0.0f, dcol, kdr);
        } else {
          const int64_t run = q.nkw() * g.C;
          for (int64_t i = 0; i < q.nkh(); i++)
            gemm(false, true, rows, run, g.CO, buf, g.CO, w + tap_row(g, q.kh0 + i, q.kw0) * g.CO, g.CO, 0.0f,
                 dcol + i * run, kdr);
        }
        region_col2im_add(g, q, dcol, dx, n0, i0, rows);
      }
    }
  });
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
  if (const int64_t tap = identity_tap(g); tap >= 0) {
    sgemm_batched(false, false, total, g.CO, g.C, 1.0f, x, g.C, 0, w + tap * g.C * g.CO, g.CO, 0, 0.0f, y,
                  g.CO, 0, 1);
    apply_epilogue(y, total, g.CO, bias, biasMode, act, alpha);
    return;
  }
  if (is_small_window(g)) {
    direct_forward(g, x, w, y, bias, biasMode, act, alpha, work);
    return;
  }
  if (const auto regions = padding_regions(g); !regions.empty()) {
    region_forward(g, regions, x, w, y, bias, biasMode, act, alpha, work);
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
  if (const int64_t tap = identity_tap(g); tap >= 0) {
    std::fill(dw, dw + wsize, 0.0f);
    sgemm_batched(true, false, g.C, g.CO, total, 1.0f, x, g.C, 0, dy, g.CO, 0, 0.0f, dw + tap * g.C * g.CO,
                  g.CO, 0, 1);
    return;
  }
  const double work = double(total) * double(kd) * double(g.CO);
  if (const auto regions = padding_regions(g); !regions.empty()) {
    region_backprop_filter(g, regions, x, dy, dw, work);
    return;
  }
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
  if (const int64_t tap = identity_tap(g); tap >= 0) {
    sgemm_batched(false, true, g.N * ohw, g.C, g.CO, 1.0f, dy, g.CO, 0, w + tap * g.C * g.CO, g.CO, 0, 0.0f,
                  dx, g.C, 0, 1);
    return;
  }
  const double work = double(g.N) * double(ohw) * double(kd) * double(g.CO);
  if (const auto regions = padding_regions(g); !regions.empty()) {
    region_backprop_input(g, regions, dy, w, dx, work);
    return;
  }
  // Windows of different output pixels of one image overlap in dx: each image is one thread's. A block
  // of output pixels may span several of the thread's images (small images: one GEMM, not one per image).
  const int T = threads_for(work, g.N);
  const int64_t B = std::min(block_rows(kd), (g.N + T - 1) / T * ohw);
  std::vector<float> cols(size_t(T) * size_t(B) * size_t(kd));
  const int64_t imageSize = g.H * g.W * g.C;
  parallel(T, [&](int t) {
    float* dcol = cols.data() + size_t(t) * size_t(B) * size_t(kd);
    int64_t begin, end;
    split(g.N, t, T, &begin, &end);
    if (end > begin) std::fill(dx + begin * imageSize, dx + end * imageSize, 0.0f);
    for (int64_t r0 = begin * ohw; r0 < end * ohw; r0 += B) {
      const int64_t rows = std::min(B, end * ohw - r0);
      gemm(false, true, rows, kd, g.CO, dy + r0 * g.CO, g.CO, w, g.CO, 0.0f, dcol, kd);
      col2im_add(g, dcol, dx, r0, rows);
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
    // Max pooling: the window's first maximum (row-major window order, as the forward's strict `>`
    // keeps it) takes the gradient. Per channel: best = the window's maximum, then each tap in order
    // takes dy where it equals best and no earlier tap did; branch-free, so the channel loops vectorise.
    std::vector<float> best(op == POOL_MAX ? size_t(C) : 0);
    std::vector<float> taken(op == POOL_MAX ? size_t(C) : 0);
    std::vector<int64_t> taps(size_t(g.KH * g.KW));
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        const float* RESTRICT d = dy + ((n * g.OH + oh) * g.OW + ow) * C;
        size_t count = 0;
        for_window(g, oh, ow, [&](int64_t ih, int64_t iw) { taps[count++] = (ih * g.W + iw) * C; });
        if (count == 0) continue;
        if (op == POOL_MAX) {
          float* RESTRICT b = best.data();
          float* RESTRICT tk = taken.data();
          for (int64_t c = 0; c < C; c++) {
            b[c] = ninf;
            tk[c] = 0.0f;
          }
          for (size_t i = 0; i < count; i++) {
            const float* RESTRICT p = xn + taps[i];
            for (int64_t c = 0; c < C; c++) b[c] = p[c] > b[c] ? p[c] : b[c];
          }
          for (size_t i = 0; i < count; i++) {
            const float* RESTRICT p = xn + taps[i];
            float* RESTRICT q = dxn + taps[i];
            for (int64_t c = 0; c < C; c++) {
              const float dv = d[c], pv = p[c], bv = b[c], tv = tk[c], qv = q[c];
              const bool hit = (tv == 0.0f) & (pv == bv) & (bv > ninf);
              q[c] = qv + (hit ? dv : 0.0f);
              tk[c] = hit ? 1.0f : tv;
            }
          }
        } else {
          const float inv = float(count);
          for (size_t i = 0; i < count; i++) {
            float* RESTRICT q = dxn + taps[i];
            for (int64_t c = 0; c < C; c++) q[c] += d[c] / inv;
          }
        }
      }
    }
  });
}

}  // namespace sll
