// Fused kernels of SLL's training step (see fused.cc): the unit loss of eq. (5) with its statistics and
// gradient in one pass, and the backward pass of a ReLU layer's activation and bias in one pass.
#pragma once

#include <cstdint>

namespace sll {

// Eq. (5) for one unit, logits v [B, K], integer labels [B], the parent's logits [B, K] (or null: no
// alignment term), weight lambda:
//   total = mean_b CE_b + lambda mean_b A_b,   CE_b = -log softmax(v_b)_y,
//   A_b = -log BC(softmax(v_b), softmax(parent_b)) = -logsumexp_k((logsoftmax(v_b)_k + logsoftmax(parent_b)_k) / 2),
// stats = [mean CE, mean A (0 without a parent), total, count of argmax(v_b) == y_b (first maximum)],
// grad = dtotal/dv = ((p - onehot(y)) + lambda (p - w) / 2) / B with p = softmax(v_b),
// w = sqrt(p q) / BC(p, q). Row terms in double. Labels outside [0, K) make the call return false.
bool unit_loss(const float* v, const int32_t* labels, const float* parent, int64_t B, int64_t K,
               double lambda, float* total, float* stats, float* grad);

// The backward pass of y = relu(z) with z = ... + bias: dz = dy where y > 0, else 0, over [rows, cols];
// and db[j] = sum over rows of dz[., j] (in double, rows in order: the same bits at any thread count).
// db may be null. Threads split the columns.
void relu_bias_grad(const float* dy, const float* y, float* dz, float* db, int64_t rows, int64_t cols);

// Batch normalisation over the rows of x [rows, cols] (the columns are the channels), in training:
//   mean_j = sum_r x_rj / rows,  var_j = sum_r (x_rj - mean_j)^2 / rows (biased, as tf.moments),
//   y_rj = (x_rj - mean_j) / sqrt(var_j + eps) * gamma_j + beta_j.
// Sums in double, rows in fixed blocks added in order: the same bits at any thread count.
void batch_norm_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                      float* var, int64_t rows, int64_t cols, float eps);

// Its backward pass, given dy and the forward's x, gamma, mean and var: with xhat = (x - mean) rstd,
// rstd = 1 / sqrt(var + eps), dbeta_j = sum_r dy_rj, dgamma_j = sum_r dy_rj xhat_rj and
//   dx_rj = gamma_j rstd_j (dy_rj - dbeta_j / rows - xhat_rj dgamma_j / rows)
// (the gradient through mean and var included). Deterministic as above.
void batch_norm_train_grad(const float* dy, const float* x, const float* gamma, const float* mean,
                           const float* var, float* dx, float* dgamma, float* dbeta, int64_t rows,
                           int64_t cols, float eps);

// Batch normalisation with given statistics (inference): y = (x - mean) / sqrt(var + eps) * gamma + beta
// per column; gamma and beta may be null (1 and 0).
void batch_norm_infer(const float* x, const float* mean, const float* var, const float* gamma,
                      const float* beta, float* y, int64_t rows, int64_t cols, float eps);

}  // namespace sll
