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

}  // namespace sll
