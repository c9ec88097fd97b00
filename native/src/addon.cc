// sll_native: N-API glue over the float32 kernels in kernels.cc.
//
// Every function works directly on the memory of the Float32Arrays it is given (no copies) and checks
// that every element it touches lies inside them; a wrong argument throws a JS TypeError/RangeError
// instead of reading or writing out of bounds. The module keeps no per-instance state (the OpenBLAS
// thread count is per process by nature), so it is context-aware: it loads in any number of
// worker_threads.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "conv.h"
#include "fused.h"
#include "kernels.h"

namespace {

constexpr size_t kMaxArgs = 24;

// Argument reader: the first failure throws a JS exception and every later read is a no-op, so a
// function checks `ok()` once before computing.
class Args {
 public:
  Args(napi_env env, napi_callback_info info, size_t expected, const char* name)
      : env_(env), name_(name) {
    argc_ = kMaxArgs;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) {
      fail("cannot read arguments");
      return;
    }
    if (argc_ < expected) {
      fail(("expects " + std::to_string(expected) + " arguments, got " + std::to_string(argc_))
               .c_str());
    }
  }

  bool ok() const { return ok_; }
  size_t count() const { return argc_; }

  bool isNullish(size_t i) {
    if (i >= argc_) return true;
    napi_valuetype t;
    if (napi_typeof(env_, argv_[i], &t) != napi_ok) return true;
    return t == napi_null || t == napi_undefined;
  }

  double num(size_t i) {
    if (!ok_) return 0;
    double v = 0;
    if (i >= argc_ || napi_get_value_double(env_, argv_[i], &v) != napi_ok) {
      fail(("argument " + std::to_string(i) + " must be a number").c_str());
      return 0;
    }
    return v;
  }

  // A non-negative integer that fits the BLAS index type.
  int64_t index(size_t i) {
    const double v = num(i);
    if (!ok_) return 0;
    if (!(v >= 0) || v != std::floor(v) || v > 2147483647.0) {
      fail(("argument " + std::to_string(i) + " must be a non-negative integer").c_str(), true);
      return 0;
    }
    return int64_t(v);
  }

  bool flag(size_t i) {
    if (!ok_) return false;
    bool b = false;
    if (i < argc_ && napi_get_value_bool(env_, argv_[i], &b) == napi_ok) return b;
    return num(i) != 0;
  }

  // A Float32Array: its data pointer (offset applied) and length in elements.
  float* f32(size_t i, int64_t* length) {
    *length = 0;
    if (!ok_) return nullptr;
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    bool isTyped = false;
    if (i >= argc_ || napi_is_typedarray(env_, argv_[i], &isTyped) != napi_ok || !isTyped ||
        napi_get_typedarray_info(env_, argv_[i], &type, &len, &data, nullptr, nullptr) !=
            napi_ok ||
        type != napi_float32_array) {
      fail(("argument " + std::to_string(i) + " must be a Float32Array").c_str());
      return nullptr;
    }
    *length = int64_t(len);
    return static_cast<float*>(data);
  }

  // An Int32Array: its data pointer and length in elements.
  int32_t* i32(size_t i, int64_t* length) {
    *length = 0;
    if (!ok_) return nullptr;
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    bool isTyped = false;
    if (i >= argc_ || napi_is_typedarray(env_, argv_[i], &isTyped) != napi_ok || !isTyped ||
        napi_get_typedarray_info(env_, argv_[i], &type, &len, &data, nullptr, nullptr) !=
            napi_ok ||
        type != napi_int32_array) {
      fail(("argument " + std::to_string(i) + " must be an Int32Array").c_str());
      return nullptr;
    }
    *length = int64_t(len);
    return static_cast<int32_t*>(data);
  }

  void fail(const char* what, bool range = false) {
    if (!ok_) return;
    ok_ = false;
    const std::string msg = std::string("sll_native.") + name_ + ": " + what;
    if (range)
      napi_throw_range_error(env_, nullptr, msg.c_str());
    else
      napi_throw_type_error(env_, nullptr, msg.c_str());
  }

  // A Float32Array of at least `span` elements, named `what` in errors; null for a nullish argument when
  // `nullable`. Read sizes (index()) first, then the arrays.
  float* f32(size_t i, const char* what, int64_t span, bool nullable = false) {
    if (nullable && isNullish(i)) return nullptr;
    int64_t length;
    float* data = f32(i, &length);
    within(what, 0, span, length);
    return data;
  }

  // Checks that elements [offset, offset + span) lie inside an array of `length` elements.
  void within(const char* what, int64_t offset, int64_t span, int64_t length) {
    if (!ok_) return;
    if (span <= 0) return;
    if (offset < 0 || offset + span > length) {
      fail((std::string(what) + " out of bounds: needs elements [" + std::to_string(offset) +
            ", " + std::to_string(offset + span) + ") of " + std::to_string(length))
               .c_str(),
           true);
    }
  }

 private:
  napi_env env_;
  const char* name_;
  size_t argc_ = 0;
  napi_value argv_[kMaxArgs];
  bool ok_ = true;
};

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Elements spanned by a batch of `batch` row-major matrices of `rows` x `cols` with leading
// dimension `ld` and batch stride `stride`.
int64_t span(int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return 0;
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

bool checkLd(Args& a, const char* what, int64_t ld, int64_t cols) {
  if (ld < (cols > 1 ? cols : 1)) {
    a.fail((std::string(what) + " is smaller than the row length").c_str(), true);
    return false;
  }
  return true;
}

// sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, aOffset, bOffset, cOffset)
napi_value Sgemm(napi_env env, napi_callback_info info) {
  Args a(env, info, 16, "sgemm");
  const bool tA = a.flag(0), tB = a.flag(1);
  const int64_t M = a.index(2), N = a.index(3), K = a.index(4);
  const double alpha = a.num(5);
  int64_t lenA, lenB, lenC;
  float* A = a.f32(6, &lenA);
  const int64_t lda = a.index(7);
  float* B = a.f32(8, &lenB);
  const int64_t ldb = a.index(9);
  const double beta = a.num(10);
  float* C = a.f32(11, &lenC);
  const int64_t ldc = a.index(12);
  const int64_t aOff = a.index(13), bOff = a.index(14), cOff = a.index(15);
  if (!a.ok()) return nullptr;
  const int64_t rA = tA ? K : M, cA = tA ? M : K, rB = tB ? N : K, cB = tB ? K : N;
  if (!checkLd(a, "lda", lda, cA) || !checkLd(a, "ldb", ldb, cB) || !checkLd(a, "ldc", ldc, N))
    return nullptr;
  a.within("A", aOff, span(1, 0, rA, cA, lda), lenA);
  a.within("B", bOff, span(1, 0, rB, cB, ldb), lenB);
  a.within("C", cOff, span(1, 0, M, N, ldc), lenC);
  if (!a.ok()) return nullptr;
  sll::sgemm_batched(tA, tB, M, N, K, float(alpha), A + aOff, lda, 0, B + bOff, ldb, 0,
                     float(beta), C + cOff, ldc, 0, 1);
  return undefinedValue(env);
}

// sgemmBatched(transA, transB, M, N, K, alpha, A, aOffset, lda, strideA, B, bOffset, ldb, strideB,
//              beta, C, cOffset, ldc, strideC, batch)
// A stride of 0 broadcasts that operand over the batch.
napi_value SgemmBatched(napi_env env, napi_callback_info info) {
  Args a(env, info, 20, "sgemmBatched");
  const bool tA = a.flag(0), tB = a.flag(1);
  const int64_t M = a.index(2), N = a.index(3), K = a.index(4);
  const double alpha = a.num(5);
  int64_t lenA, lenB, lenC;
  float* A = a.f32(6, &lenA);
  const int64_t aOff = a.index(7), lda = a.index(8), sA = a.index(9);
  float* B = a.f32(10, &lenB);
  const int64_t bOff = a.index(11), ldb = a.index(12), sB = a.index(13);
  const double beta = a.num(14);
  float* C = a.f32(15, &lenC);
  const int64_t cOff = a.index(16), ldc = a.index(17), sC = a.index(18);
  const int64_t batch = a.index(19);
  if (!a.ok()) return nullptr;
  const int64_t rA = tA ? K : M, cA = tA ? M : K, rB = tB ? N : K, cB = tB ? K : N;
  if (!checkLd(a, "lda", lda, cA) || !checkLd(a, "ldb", ldb, cB) || !checkLd(a, "ldc", ldc, N))
    return nullptr;
  if (batch > 1 && sC < span(1, 0, M, N, ldc)) {
    a.fail("strideC makes the output matrices overlap", true);
    return nullptr;
  }
  a.within("A", aOff, span(batch, sA, rA, cA, lda), lenA);
  a.within("B", bOff, span(batch, sB, rB, cB, ldb), lenB);
  a.within("C", cOff, span(batch, sC, M, N, ldc), lenC);
  if (!a.ok()) return nullptr;
  sll::sgemm_batched(tA, tB, M, N, K, float(alpha), A + aOff, lda, sA, B + bOff, ldb, sB,
                     float(beta), C + cOff, ldc, sC, batch);
  return undefinedValue(env);
}

// Reads bias (argument `at`) and its mode (at + 1) and checks the bias covers what the mode reads.
bool readBias(Args& a, size_t at, int64_t M, int64_t N, float** bias, int64_t* mode) {
  *bias = nullptr;
  *mode = sll::BIAS_NONE;
  if (a.isNullish(at)) return a.ok();
  int64_t len = 0;
  *bias = a.f32(at, &len);
  *mode = a.index(at + 1);
  if (!a.ok()) return false;
  int64_t need = 0;
  switch (*mode) {
    case sll::BIAS_ROW: need = N; break;
    case sll::BIAS_FULL: need = M * N; break;
    case sll::BIAS_COL: need = M; break;
    case sll::BIAS_SCALAR: need = 1; break;
    case sll::BIAS_NONE: need = 0; break;
    default: a.fail("unknown bias mode", true); return false;
  }
  a.within("bias", 0, need, len);
  return a.ok();
}

bool checkAct(Args& a, int64_t act) {
  if (act < 0 || act > sll::ACT_ELU) a.fail("unknown activation", true);
  return a.ok();
}

void runEpilogue(float* C, int64_t batch, int64_t M, int64_t N, const float* bias, int64_t mode,
                 int64_t act, double alpha) {
  if (mode == sll::BIAS_NONE && act == sll::ACT_LINEAR) return;
  for (int64_t i = 0; i < batch; i++)
    sll::epilogue(C + i * M * N, M, N, bias, int(mode), int(act), float(alpha));
}

// matmul(A, B, C, batch, M, N, K, transA, transB, strideA, strideB, bias, biasMode, act, alpha)
// C (dense, batch x M x N) = act(op(A) op(B) + bias). A and B are dense matrices ([M, K] or [K, M]
// when transposed, likewise B), batch entries `strideA`/`strideB` apart (0 broadcasts). bias is null
// or a Float32Array added per biasMode (kernels.h) to every batch entry.
napi_value Matmul(napi_env env, napi_callback_info info) {
  Args a(env, info, 15, "matmul");
  int64_t lenA, lenB, lenC;
  float* A = a.f32(0, &lenA);
  float* B = a.f32(1, &lenB);
  float* C = a.f32(2, &lenC);
  const int64_t batch = a.index(3), M = a.index(4), N = a.index(5), K = a.index(6);
  const bool tA = a.flag(7), tB = a.flag(8);
  const int64_t sA = a.index(9), sB = a.index(10);
  float* bias;
  int64_t mode;
  if (!readBias(a, 11, M, N, &bias, &mode)) return nullptr;
  const int64_t act = a.index(13);
  const double alpha = a.num(14);
  if (!a.ok() || !checkAct(a, act)) return nullptr;
  const int64_t cA = tA ? M : K, rA = tA ? K : M, cB = tB ? K : N, rB = tB ? N : K;
  a.within("A", 0, span(batch, sA, rA, cA, cA), lenA);
  a.within("B", 0, span(batch, sB, rB, cB, cB), lenB);
  a.within("C", 0, batch * M * N, lenC);
  if (!a.ok()) return nullptr;
  sll::sgemm_batched(tA, tB, M, N, K, 1.0f, A, cA > 0 ? cA : 1, sA, B, cB > 0 ? cB : 1, sB, 0.0f,
                     C, N > 0 ? N : 1, M * N, batch);
  runEpilogue(C, batch, M, N, bias, mode, act, alpha);
  return undefinedValue(env);
}

// epilogue(C, batch, M, N, bias, biasMode, act, alpha): C = act(C + bias) in place.
napi_value Epilogue(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "epilogue");
  int64_t lenC;
  float* C = a.f32(0, &lenC);
  const int64_t batch = a.index(1), M = a.index(2), N = a.index(3);
  float* bias;
  int64_t mode;
  if (!readBias(a, 4, M, N, &bias, &mode)) return nullptr;
  const int64_t act = a.index(6);
  const double alpha = a.num(7);
  if (!a.ok() || !checkAct(a, act)) return nullptr;
  a.within("C", 0, batch * M * N, lenC);
  if (!a.ok()) return nullptr;
  runEpilogue(C, batch, M, N, bias, mode, act, alpha);
  return undefinedValue(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, 1, "setThreads");
  const int64_t n = a.index(0);
  if (!a.ok()) return nullptr;
  if (n < 1) {
    a.fail("thread count must be at least 1", true);
    return nullptr;
  }
  sll::set_threads(int(n));
  return undefinedValue(env);
}

napi_value GetThreads(napi_env env, napi_callback_info) {
  napi_value r;
  napi_create_int32(env, sll::get_threads(), &r);
  return r;
}

// binary(op, a, b, out, d0, d1, d2, d3, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3)
// out is dense [d0, d1, d2, d3]; a and b are read at the given element strides (0 = broadcast).
napi_value Binary(napi_env env, napi_callback_info info) {
  Args a(env, info, 16, "binary");
  const int64_t op = a.index(0);
  int64_t lenA, lenB, lenO;
  float* A = a.f32(1, &lenA);
  float* B = a.f32(2, &lenB);
  float* O = a.f32(3, &lenO);
  int64_t d[4], sa[4], sb[4];
  for (int k = 0; k < 4; k++) d[k] = a.index(4 + k);
  for (int k = 0; k < 4; k++) sa[k] = a.index(8 + k);
  for (int k = 0; k < 4; k++) sb[k] = a.index(12 + k);
  if (!a.ok()) return nullptr;
  if (op >= sll::BIN_COUNT) {
    a.fail("unknown op", true);
    return nullptr;
  }
  const int64_t total = d[0] * d[1] * d[2] * d[3];
  if (total == 0) return undefinedValue(env);
  int64_t lastA = 0, lastB = 0;
  for (int k = 0; k < 4; k++) {
    lastA += (d[k] - 1) * sa[k];
    lastB += (d[k] - 1) * sb[k];
  }
  a.within("a", 0, lastA + 1, lenA);
  a.within("b", 0, lastB + 1, lenB);
  a.within("out", 0, total, lenO);
  if (!a.ok()) return nullptr;
  sll::binary4(int(op), A, B, O, d, sa, sb);
  return undefinedValue(env);
}

// unary(op, x, out, alpha): out[i] = f(x[i]) over x's length; out may be x.
napi_value Unary(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "unary");
  const int64_t op = a.index(0);
  int64_t lenX, lenO;
  float* X = a.f32(1, &lenX);
  float* O = a.f32(2, &lenO);
  const double alpha = a.num(3);
  if (!a.ok()) return nullptr;
  if (op >= sll::UN_COUNT) {
    a.fail("unknown op", true);
    return nullptr;
  }
  a.within("out", 0, lenX, lenO);
  if (!a.ok()) return nullptr;
  sll::unary(int(op), X, O, lenX, float(alpha));
  return undefinedValue(env);
}

// reduce(op, x, out, pre, red, post): x viewed as [pre, red, post], out as [pre, post].
napi_value Reduce(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "reduce");
  const int64_t op = a.index(0);
  int64_t lenX, lenO;
  float* X = a.f32(1, &lenX);
  float* O = a.f32(2, &lenO);
  const int64_t pre = a.index(3), red = a.index(4), post = a.index(5);
  if (!a.ok()) return nullptr;
  if (op >= sll::RED_COUNT) {
    a.fail("unknown op", true);
    return nullptr;
  }
  a.within("x", 0, pre * red * post, lenX);
  a.within("out", 0, pre * post, lenO);
  if (!a.ok()) return nullptr;
  sll::reduce(int(op), X, O, pre, red, post);
  return undefinedValue(env);
}

// softmax(x, out, rows, cols, log)
napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info, 5, "softmax");
  int64_t lenX, lenO;
  float* X = a.f32(0, &lenX);
  float* O = a.f32(1, &lenO);
  const int64_t rows = a.index(2), cols = a.index(3);
  const bool log = a.flag(4);
  if (!a.ok()) return nullptr;
  a.within("x", 0, rows * cols, lenX);
  a.within("out", 0, rows * cols, lenO);
  if (!a.ok()) return nullptr;
  sll::softmax(X, O, rows, cols, log);
  return undefinedValue(env);
}

// layerNorm(x, gamma, beta, y, mean, rstd, rows, cols, eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "layerNorm");
  const int64_t rows = a.index(6), cols = a.index(7), n = rows * cols;
  const float eps = float(a.num(8));
  float* X = a.f32(0, "x", n);
  float* G = a.f32(1, "gamma", cols);
  float* B = a.f32(2, "beta", cols);
  float* Y = a.f32(3, "y", n);
  float* M = a.f32(4, "mean", rows);
  float* R = a.f32(5, "rstd", rows);
  if (!a.ok()) return nullptr;
  if (cols > 0) sll::layer_norm(X, G, B, Y, M, R, rows, cols, eps);
  return undefinedValue(env);
}

// layerNormGrad(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 10, "layerNormGrad");
  const int64_t rows = a.index(8), cols = a.index(9), n = rows * cols;
  float* Dy = a.f32(0, "dy", n);
  float* X = a.f32(1, "x", n);
  float* G = a.f32(2, "gamma", cols);
  float* M = a.f32(3, "mean", rows);
  float* R = a.f32(4, "rstd", rows);
  float* Dx = a.f32(5, "dx", n);
  float* Dg = a.f32(6, "dgamma", cols);
  float* Db = a.f32(7, "dbeta", cols);
  if (!a.ok()) return nullptr;
  if (cols > 0) sll::layer_norm_grad(Dy, X, G, M, R, Dx, Dg, Db, rows, cols);
  return undefinedValue(env);
}

// gelu(x, y) and geluGrad(dy, x, dx), over whole arrays of one length.
napi_value Gelu(napi_env env, napi_callback_info info) {
  Args a(env, info, 2, "gelu");
  int64_t lenX, lenY;
  float* X = a.f32(0, &lenX);
  float* Y = a.f32(1, &lenY);
  if (!a.ok()) return nullptr;
  a.within("y", 0, lenX, lenY);
  if (!a.ok()) return nullptr;
  sll::gelu(X, Y, lenX);
  return undefinedValue(env);
}

napi_value GeluGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 3, "geluGrad");
  int64_t lenDy, lenX, lenDx;
  float* Dy = a.f32(0, &lenDy);
  float* X = a.f32(1, &lenX);
  float* Dx = a.f32(2, &lenDx);
  if (!a.ok()) return nullptr;
  a.within("dy", 0, lenX, lenDy);
  a.within("dx", 0, lenX, lenDx);
  if (!a.ok()) return nullptr;
  sll::gelu_grad(Dy, X, Dx, lenX);
  return undefinedValue(env);
}

// adam(param, m, v, grad, lr, beta1, beta2, eps, step[, paramOut, mOut, vOut[, bc1, bc2]])
// Updates param, m and v in place, or writes paramOut/mOut/vOut when given (non-null). The bias
// corrections are 1 - beta^step unless bc1/bc2 are given (the optimizer passes tfjs's float32
// accumulated values so that it matches tfjs step for step).
napi_value Adam(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "adam");
  int64_t lenP, lenM, lenV, lenG;
  float* P = a.f32(0, &lenP);
  float* M = a.f32(1, &lenM);
  float* V = a.f32(2, &lenV);
  float* G = a.f32(3, &lenG);
  const double lr = a.num(4), b1 = a.num(5), b2 = a.num(6), eps = a.num(7), step = a.num(8);
  float *PO = P, *MO = M, *VO = V;
  const int64_t n = lenP;
  if (a.ok() && a.count() > 9 && !a.isNullish(9)) {
    int64_t lenPO, lenMO, lenVO;
    PO = a.f32(9, &lenPO);
    MO = a.f32(10, &lenMO);
    VO = a.f32(11, &lenVO);
    a.within("paramOut", 0, n, lenPO);
    a.within("mOut", 0, n, lenMO);
    a.within("vOut", 0, n, lenVO);
  }
  double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  if (a.ok() && a.count() > 12 && !a.isNullish(12)) {
    bc1 = a.num(12);
    bc2 = a.num(13);
  }
  if (!a.ok()) return nullptr;
  if (lenM != n || lenV != n || lenG != n) {
    a.fail("param, m, v and grad must have the same length", true);
    return nullptr;
  }
  sll::adam(P, M, V, G, PO, MO, VO, n, lr, b1, b2, eps, float(bc1), float(bc2));
  return undefinedValue(env);
}


// ---- Convolution and pooling --------------------------------------------------------------------

// Reads a ConvGeom from an Int32Array of its 15 fields (N, H, W, C, KH, KW, CO, OH, OW, SH, SW, DH, DW,
// PT, PL) and checks it: sizes non-negative, window sizes, strides and dilations positive, and every
// tensor it describes small enough to index (under 2^40 elements).
bool readGeom(Args& a, size_t at, sll::ConvGeom* g) {
  int64_t len = 0;
  const int32_t* v = a.i32(at, &len);
  if (!a.ok()) return false;
  if (len != sll::kGeomFields) {
    a.fail("geometry must have 15 fields", true);
    return false;
  }
  int64_t f[sll::kGeomFields];
  for (int i = 0; i < sll::kGeomFields; i++) f[i] = v[i];
  *g = sll::ConvGeom{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12],
                     f[13], f[14]};
  for (int i = 0; i < 9; i++) {
    if (f[i] < 0) {
      a.fail("geometry sizes must be non-negative", true);
      return false;
    }
  }
  if (g->KH < 1 || g->KW < 1 || g->SH < 1 || g->SW < 1 || g->DH < 1 || g->DW < 1) {
    a.fail("window sizes, strides and dilations must be positive", true);
    return false;
  }
  const double limit = double(int64_t(1) << 40);
  const double sizes[3] = {double(g->N) * g->H * g->W * g->C, double(g->KH) * g->KW * g->C * g->CO,
                           double(g->N) * g->OH * g->OW * g->CO};
  for (double s : sizes) {
    if (s > limit) {
      a.fail("tensor too large", true);
      return false;
    }
  }
  return true;
}

int64_t xSize(const sll::ConvGeom& g) { return g.N * g.H * g.W * g.C; }
int64_t wSize(const sll::ConvGeom& g) { return g.KH * g.KW * g.C * g.CO; }
int64_t ySize(const sll::ConvGeom& g) { return g.N * g.OH * g.OW * g.CO; }

// conv2d(x, w, y, geom, bias, biasMode, act, alpha): y = act(conv(x, w) + bias), NHWC.
napi_value Conv2d(napi_env env, napi_callback_info info) {
  Args a(env, info, 8, "conv2d");
  int64_t lenX, lenW, lenY;
  float* X = a.f32(0, &lenX);
  float* Wt = a.f32(1, &lenW);
  float* Y = a.f32(2, &lenY);
  sll::ConvGeom g;
  if (!a.ok() || !readGeom(a, 3, &g)) return nullptr;
  float* bias;
  int64_t mode;
  if (!readBias(a, 4, 1, g.CO, &bias, &mode)) return nullptr;
  if (mode != sll::BIAS_NONE && mode != sll::BIAS_ROW && mode != sll::BIAS_SCALAR) {
    a.fail("conv2d takes a bias per output channel or a scalar", true);
    return nullptr;
  }
  const int64_t act = a.index(6);
  const double alpha = a.num(7);
  if (!a.ok() || !checkAct(a, act)) return nullptr;
  a.within("x", 0, xSize(g), lenX);
  a.within("w", 0, wSize(g), lenW);
  a.within("y", 0, ySize(g), lenY);
  if (!a.ok()) return nullptr;
  sll::conv2d_forward(g, X, Wt, Y, bias, int(mode), int(act), float(alpha));
  return undefinedValue(env);
}

// conv2dBackpropFilter(x, dy, dw, geom)
napi_value Conv2dBackpropFilter(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "conv2dBackpropFilter");
  int64_t lenX, lenDy, lenDw;
  float* X = a.f32(0, &lenX);
  float* Dy = a.f32(1, &lenDy);
  float* Dw = a.f32(2, &lenDw);
  sll::ConvGeom g;
  if (!a.ok() || !readGeom(a, 3, &g)) return nullptr;
  a.within("x", 0, xSize(g), lenX);
  a.within("dy", 0, ySize(g), lenDy);
  a.within("dw", 0, wSize(g), lenDw);
  if (!a.ok()) return nullptr;
  sll::conv2d_backprop_filter(g, X, Dy, Dw);
  return undefinedValue(env);
}

// conv2dBackpropInput(dy, w, dx, geom)
napi_value Conv2dBackpropInput(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "conv2dBackpropInput");
  int64_t lenDy, lenW, lenDx;
  float* Dy = a.f32(0, &lenDy);
  float* Wt = a.f32(1, &lenW);
  float* Dx = a.f32(2, &lenDx);
  sll::ConvGeom g;
  if (!a.ok() || !readGeom(a, 3, &g)) return nullptr;
  a.within("dy", 0, ySize(g), lenDy);
  a.within("w", 0, wSize(g), lenW);
  a.within("dx", 0, xSize(g), lenDx);
  if (!a.ok()) return nullptr;
  sll::conv2d_backprop_input(g, Dy, Wt, Dx);
  return undefinedValue(env);
}

bool checkPool(Args& a, int64_t op, const sll::ConvGeom& g) {
  if (op != sll::POOL_MAX && op != sll::POOL_AVG) a.fail("unknown pooling op", true);
  else if (g.CO != g.C) a.fail("pooling geometry needs CO == C", true);
  return a.ok();
}

// pool2d(op, x, y, geom): op 0 max, 1 average.
napi_value Pool2d(napi_env env, napi_callback_info info) {
  Args a(env, info, 4, "pool2d");
  const int64_t op = a.index(0);
  int64_t lenX, lenY;
  float* X = a.f32(1, &lenX);
  float* Y = a.f32(2, &lenY);
  sll::ConvGeom g;
  if (!a.ok() || !readGeom(a, 3, &g) || !checkPool(a, op, g)) return nullptr;
  a.within("x", 0, xSize(g), lenX);
  a.within("y", 0, ySize(g), lenY);
  if (!a.ok()) return nullptr;
  sll::pool2d(int(op), g, X, Y);
  return undefinedValue(env);
}

// pool2dBackprop(op, x, dy, dx, geom): x (the forward input) is needed for max pooling; null for average.
napi_value Pool2dBackprop(napi_env env, napi_callback_info info) {
  Args a(env, info, 5, "pool2dBackprop");
  const int64_t op = a.index(0);
  int64_t lenX = 0, lenDy, lenDx;
  float* X = nullptr;
  if (!a.isNullish(1)) X = a.f32(1, &lenX);
  float* Dy = a.f32(2, &lenDy);
  float* Dx = a.f32(3, &lenDx);
  sll::ConvGeom g;
  if (!a.ok() || !readGeom(a, 4, &g) || !checkPool(a, op, g)) return nullptr;
  if (op == sll::POOL_MAX) {
    if (X == nullptr) {
      a.fail("max pooling's gradient needs x", false);
      return nullptr;
    }
    a.within("x", 0, xSize(g), lenX);
  }
  a.within("dy", 0, ySize(g), lenDy);
  a.within("dx", 0, xSize(g), lenDx);
  if (!a.ok()) return nullptr;
  sll::pool2d_backprop(int(op), g, X, Dy, Dx);
  return undefinedValue(env);
}

// ---- Fused SLL kernels (fused.h) ------------------------------------------------------------------

// unitLoss(v, labels, parent, B, K, lambda, total, stats, grad): eq. (5) of one unit with its stats row
// [prediction, alignment, total, correct] and dtotal/dv; parent null: no alignment term.
napi_value UnitLoss(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "unitLoss");
  int64_t lenV, lenL, lenP = 0, lenT, lenS, lenG;
  float* V = a.f32(0, &lenV);
  int32_t* L = a.i32(1, &lenL);
  float* P = nullptr;
  if (!a.isNullish(2)) P = a.f32(2, &lenP);
  const int64_t B = a.index(3), K = a.index(4);
  const double lambda = a.num(5);
  float* T = a.f32(6, &lenT);
  float* S = a.f32(7, &lenS);
  float* G = a.f32(8, &lenG);
  if (!a.ok()) return nullptr;
  if (K < 1) {
    a.fail("K must be at least 1", true);
    return nullptr;
  }
  a.within("v", 0, B * K, lenV);
  a.within("labels", 0, B, lenL);
  if (P != nullptr) a.within("parent", 0, B * K, lenP);
  a.within("total", 0, 1, lenT);
  a.within("stats", 0, 4, lenS);
  a.within("grad", 0, B * K, lenG);
  if (!a.ok()) return nullptr;
  if (!sll::unit_loss(V, L, P, B, K, lambda, T, S, G)) {
    a.fail("labels must lie in [0, K)", true);
    return nullptr;
  }
  return undefinedValue(env);
}

// reluBiasGrad(dy, y, dz, db, rows, cols): dz = dy where y > 0 (else 0), db = dz summed over rows (db may be null).
napi_value ReluBiasGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 6, "reluBiasGrad");
  const int64_t rows = a.index(4), cols = a.index(5), n = rows * cols;
  float* Dy = a.f32(0, "dy", n);
  float* Y = a.f32(1, "y", n);
  float* Dz = a.f32(2, "dz", n);
  float* Db = a.f32(3, "db", cols, true);
  if (!a.ok()) return nullptr;
  sll::relu_bias_grad(Dy, Y, Dz, Db, rows, cols);
  return undefinedValue(env);
}

// batchNormTrain(x, gamma, beta, y, mean, var, rows, cols, eps): see sll::batch_norm_train.
napi_value BatchNormTrain(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "batchNormTrain");
  const int64_t rows = a.index(6), cols = a.index(7), n = rows * cols;
  const float eps = float(a.num(8));
  float* X = a.f32(0, "x", n);
  float* G = a.f32(1, "gamma", cols);
  float* B = a.f32(2, "beta", cols);
  float* Y = a.f32(3, "y", n);
  float* M = a.f32(4, "mean", cols);
  float* V = a.f32(5, "var", cols);
  if (!a.ok()) return nullptr;
  sll::batch_norm_train(X, G, B, Y, M, V, rows, cols, eps);
  return undefinedValue(env);
}

// batchNormTrainGrad(dy, x, gamma, mean, var, dx, dgamma, dbeta, rows, cols, eps): see sll::batch_norm_train_grad.
napi_value BatchNormTrainGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 11, "batchNormTrainGrad");
  const int64_t rows = a.index(8), cols = a.index(9), n = rows * cols;
  const float eps = float(a.num(10));
  float* Dy = a.f32(0, "dy", n);
  float* X = a.f32(1, "x", n);
  float* G = a.f32(2, "gamma", cols);
  float* M = a.f32(3, "mean", cols);
  float* V = a.f32(4, "var", cols);
  float* Dx = a.f32(5, "dx", n);
  float* Dg = a.f32(6, "dgamma", cols);
  float* Db = a.f32(7, "dbeta", cols);
  if (!a.ok()) return nullptr;
  sll::batch_norm_train_grad(Dy, X, G, M, V, Dx, Dg, Db, rows, cols, eps);
  return undefinedValue(env);
}

// batchNormInfer(x, mean, var, gamma | null, beta | null, y, rows, cols, eps): see sll::batch_norm_infer.
napi_value BatchNormInfer(napi_env env, napi_callback_info info) {
  Args a(env, info, 9, "batchNormInfer");
  const int64_t rows = a.index(6), cols = a.index(7), n = rows * cols;
  const float eps = float(a.num(8));
  float* X = a.f32(0, "x", n);
  float* M = a.f32(1, "mean", cols);
  float* V = a.f32(2, "var", cols);
  float* G = a.f32(3, "gamma", cols, true);
  float* B = a.f32(4, "beta", cols, true);
  float* Y = a.f32(5, "y", n);
  if (!a.ok()) return nullptr;
  sll::batch_norm_infer(X, M, V, G, B, Y, rows, cols, eps);
  return undefinedValue(env);
}

napi_value Config(napi_env env, napi_callback_info) {
  napi_value r;
  const char* cfg = sll::blas_config();
  napi_create_string_utf8(env, cfg, NAPI_AUTO_LENGTH, &r);
  return r;
}

}  // namespace

NAPI_MODULE_INIT() {
  struct Fn {
    const char* name;
    napi_callback cb;
  };
  const Fn fns[] = {
      {"sgemm", Sgemm},         {"sgemmBatched", SgemmBatched}, {"matmul", Matmul},
      {"epilogue", Epilogue},
      {"setThreads", SetThreads}, {"getThreads", GetThreads},   {"binary", Binary},
      {"unary", Unary},         {"reduce", Reduce},             {"softmax", Softmax},
      {"adam", Adam},           {"blasConfig", Config},
      {"conv2d", Conv2d},       {"conv2dBackpropFilter", Conv2dBackpropFilter},
      {"conv2dBackpropInput", Conv2dBackpropInput},
      {"pool2d", Pool2d},       {"pool2dBackprop", Pool2dBackprop},
      {"layerNorm", LayerNorm}, {"layerNormGrad", LayerNormGrad},
      {"gelu", Gelu},           {"geluGrad", GeluGrad},
      {"unitLoss", UnitLoss},   {"reluBiasGrad", ReluBiasGrad},
      {"batchNormTrain", BatchNormTrain}, {"batchNormTrainGrad", BatchNormTrainGrad},
      {"batchNormInfer", BatchNormInfer},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    if (napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn) != napi_ok ||
        napi_set_named_property(env, exports, f.name, fn) != napi_ok) {
      return nullptr;
    }
  }
  return exports;
}
