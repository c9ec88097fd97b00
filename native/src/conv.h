// Float32 NHWC convolution and pooling kernels of the sll_native addon (conv.cc). Plain C++ over raw
// pointers: the N-API glue in addon.cc validates every length before calling in here.
#pragma once

#include <cstdint>

namespace sll {

// Geometry of a 2-D convolution or pooling window over NHWC data.
//   input  [N, H, W, C]
//   filter [KH, KW, C, CO]          (convolution; pooling has CO == C and no filter)
//   output [N, OH, OW, CO]
// Output pixel (oh, ow) reads input rows oh*SH - PT + kh*DH and columns ow*SW - PL + kw*DW; rows and
// columns outside the input are zero padding (convolution) or ignored (pooling).
struct ConvGeom {
  int64_t N, H, W, C;
  int64_t KH, KW, CO;
  int64_t OH, OW;
  int64_t SH, SW;
  int64_t DH, DW;
  int64_t PT, PL;
};
constexpr int kGeomFields = 15;

// y = act(conv(x, w) + bias): im2col blocks + sgemm, bias and activation applied per block while it is
// in cache. bias: null, or per biasMode (BIAS_ROW: [CO], BIAS_SCALAR: [1]).
void conv2d_forward(const ConvGeom& g, const float* x, const float* w, float* y, const float* bias,
                    int biasMode, int act, float alpha);
// dw [KH, KW, C, CO] = gradient of the convolution's filter (overwritten).
void conv2d_backprop_filter(const ConvGeom& g, const float* x, const float* dy, float* dw);
// dx [N, H, W, C] = gradient of the convolution's input (overwritten).
void conv2d_backprop_input(const ConvGeom& g, const float* dy, const float* w, float* dx);

enum PoolOp { POOL_MAX = 0, POOL_AVG = 1 };
// Max pooling (padding ignored; a window with no element > -inf gives -inf) or average pooling (the mean
// of the window's elements inside the input: padding is not counted).
void pool2d(int op, const ConvGeom& g, const float* x, float* y);
// dx (overwritten) of pool2d: max pooling routes dy to the first maximum of each window (row-major
// window order, the element tfjs picks; recomputed from x); average pooling spreads dy / count over the
// window's elements inside the input.
void pool2d_backprop(int op, const ConvGeom& g, const float* x, const float* dy, float* dx);

}  // namespace sll
