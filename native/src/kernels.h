// Float32 compute kernels of the sll_native addon. Plain C++ over raw pointers: the N-API glue in
// addon.cc validates every length and offset before calling in here.
#pragma once

#include <cstdint>

namespace sll {

// ---- GEMM ---------------------------------------------------------------------------------------
// Thread count the caller asked for (openblas_set_num_threads), and the helper that runs a small GEMM
// single-threaded whatever that count is (two BLAS threads slow tiny GEMMs down).
void set_threads(int n);
int get_threads();
// OpenBLAS build description (openblas_get_config).
const char* blas_config();

// C[i] = alpha * op(A[i]) op(B[i]) + beta * C[i] for i < batch, row-major, element strides between
// batch entries (0 broadcasts one matrix over the batch).
void sgemm_batched(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb,
                   int64_t strideB, float beta, float* C, int64_t ldc, int64_t strideC,
                   int64_t batch);

enum BiasMode { BIAS_NONE = 0, BIAS_ROW = 1, BIAS_FULL = 2, BIAS_COL = 3, BIAS_SCALAR = 4 };
enum Activation {
  ACT_LINEAR = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_LEAKYRELU = 3, ACT_SIGMOID = 4, ACT_ELU = 5
};

// Epilogue of a fused matmul on one [M, N] output block: add the bias (broadcast per biasMode), then
// apply the activation, in place.
void epilogue(float* C, int64_t M, int64_t N, const float* bias, int biasMode, int act,
              float alpha);

// ---- Elementwise --------------------------------------------------------------------------------
enum BinaryOp {
  BIN_ADD = 0, BIN_SUB = 1, BIN_MUL = 2, BIN_DIV = 3, BIN_MAX = 4, BIN_MIN = 5, BIN_SQDIFF = 6,
  BIN_POW = 7, BIN_FIRST = 8, BIN_COUNT = 9
};

// out[i0,i1,i2,i3] = a[sum ik*sak] op b[sum ik*sbk]; strides in elements (0 = broadcast).
void binary4(int op, const float* a, const float* b, float* out, const int64_t* dims,
             const int64_t* sa, const int64_t* sb);

enum UnaryOp {
  UN_RELU = 0, UN_RELU6 = 1, UN_STEP = 2, UN_SQRT = 3, UN_RSQRT = 4, UN_SQUARE = 5, UN_EXP = 6,
  UN_LOG = 7, UN_NEG = 8, UN_ABS = 9, UN_SIGMOID = 10, UN_TANH = 11, UN_ELU = 12,
  UN_LEAKYRELU = 13, UN_RECIPROCAL = 14, UN_LOG1P = 15, UN_EXPM1 = 16, UN_SIGN = 17,
  UN_SOFTPLUS = 18, UN_COUNT = 19
};

void unary(int op, const float* x, float* out, int64_t n, float alpha);

// ---- Reductions ---------------------------------------------------------------------------------
enum ReduceOp { RED_SUM = 0, RED_MAX = 1, RED_MIN = 2, RED_PROD = 3, RED_MEAN = 4, RED_COUNT = 5 };

// x viewed as [pre, red, post]; out[p, q] = reduce over r of x[p, r, q].
void reduce(int op, const float* x, float* out, int64_t pre, int64_t red, int64_t post);

// Row-wise softmax (or log-softmax) of x viewed as [rows, cols].
void softmax(const float* x, float* out, int64_t rows, int64_t cols, bool log);

// ---- Transformer ---------------------------------------------------------------------------------
// LayerNorm of the rows of x [rows, cols]: y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps);
// also writes each row's mean and rstd (what the backward pass needs).
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                float* rstd, int64_t rows, int64_t cols, float eps);
// Its gradient: dx = rstd (dy*gamma - mean(dy*gamma) - xhat mean(dy*gamma xhat)), dgamma = sum dy xhat,
// dbeta = sum dy (sums over rows).
void layer_norm_grad(const float* dy, const float* x, const float* gamma, const float* mean,
                     const float* rstd, float* dx, float* dgamma, float* dbeta, int64_t rows,
                     int64_t cols);
// GELU (exact, with erf) and its gradient dx = dy (Phi(x) + x phi(x)).
void gelu(const float* x, float* y, int64_t n);
void gelu_grad(const float* dy, const float* x, float* dx, int64_t n);

// ---- Optimizer ----------------------------------------------------------------------------------
// One Adam step, tfjs's float32 formula and operation order:
//   m' = m b1 + g (1 - b1);  v' = v b2 + g^2 (1 - b2)
//   p' = p + (m' / bc1) / (sqrt(v' / bc2) + eps) * (-lr)
// Outputs may alias the inputs (in place).
void adam(const float* p, const float* m, const float* v, const float* g, float* pOut, float* mOut,
          float* vOut, int64_t n, double lr, double beta1, double beta2, double eps,
          float bc1, float bc2);

}  // namespace sll
