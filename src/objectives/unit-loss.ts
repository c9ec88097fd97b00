/**
 * The SLL unit loss, paper eq. (5):
 *   L_i = L_pred(v_i, y) + lambda_i * L_BC(i),
 *   L_BC(i) = -(1/B) sum_b log BC(q_i^(b), p_i^(b)),   BC(u, v) = sum_k sqrt(u_k v_k),
 * with q_i = softmax(v_i) the unit's own posterior and p_i = softmax(v_{i-1}) its stop-gradient parent.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from './stop-gradient.js';

/**
 * -log BC(softmax(a), softmax(b)) for each row, in log space:
 *   log BC = log sum_k exp((log q_k + log p_k) / 2) = logsumexp_k((logsoftmax(a)_k + logsoftmax(b)_k) / 2),
 * which stays finite when probabilities underflow to zero (one-hot or near-degenerate rows), where
 * sqrt(q * p) would give log(0).
 */
export function negLogBhattacharyya(logitsA: tf.Tensor2D, logitsB: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() =>
    tf.neg(tf.logSumExp(tf.mul(tf.add(tf.logSoftmax(logitsA), tf.logSoftmax(logitsB)), 0.5), 1)),
  ) as tf.Tensor1D;
}

/** Mean cross-entropy of `logits` against one-hot targets: the prediction loss L_pred of eq. (5). */
export function predictionLoss(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1)))) as tf.Scalar;
}

/** The alignment loss L_BC of eq. (5): mean over the batch of -log BC(q_i, p_i). */
export function alignmentLoss(logits: tf.Tensor2D, parentLogits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(negLogBhattacharyya(logits, stopGradient(parentLogits)))) as tf.Scalar;
}

/** Eq. (5) of one unit, in parts. */
export interface UnitLossParts {
  /** L_pred + lambda * L_BC, the scalar the unit's optimizer minimises. */
  total: tf.Scalar;
  prediction: tf.Scalar;
  /** L_BC, or zero when the unit has no parent (the first unit by default). */
  alignment: tf.Scalar;
}

/** Eq. (5) for one unit. `parentLogits` is null for a unit without a parent; its alignment term is 0. */
export function unitLoss(
  logits: tf.Tensor2D,
  targets: tf.Tensor2D,
  parentLogits: tf.Tensor2D | null,
  lambda: number,
): UnitLossParts {
  const prediction = predictionLoss(logits, targets);
  if (parentLogits == null || lambda === 0) {
    return { total: prediction, prediction, alignment: tf.zeros([]) as tf.Scalar };
  }
  const alignment = alignmentLoss(logits, parentLogits);
  return { total: tf.add(prediction, tf.mul(alignment, lambda)) as tf.Scalar, prediction, alignment };
}

/**
 * One unit's loss and its stats row: `total` (differentiable with respect to `logits`) and `stats`, a
 * [4] tensor [prediction, alignment, total, correct] (correct: how many argmax(logits) equal the label).
 */
export type UnitLossStatsFn = (
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  parentLogits: tf.Tensor2D | null,
  lambda: number,
) => { total: tf.Scalar; stats: tf.Tensor1D };

const fusedByBackend = new Map<string, UnitLossStatsFn>();

/**
 * Makes `fn` compute {@link unitLossStats} while `backend` is tfjs's backend (a backend with a fused
 * kernel for it registers one: webgpu does); it must give the same values as the tfjs ops below. `null`
 * goes back to the tfjs ops.
 */
export function registerUnitLossStats(backend: string, fn: UnitLossStatsFn | null): void {
  if (fn) fusedByBackend.set(backend, fn);
  else fusedByBackend.delete(backend);
}

/**
 * The unit loss (eq. 5) of `logits` against integer `labels` and the parent's logits, with the stats row a
 * training step reports: a backend's fused kernel when one is registered, else tfjs ops ({@link unitLoss}).
 * Call it inside a tidy or a gradient scope (the tfjs ops' temporaries are freed there); the stats are kept:
 * the caller disposes them.
 */
export function unitLossStats(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  parentLogits: tf.Tensor2D | null,
  lambda: number,
): { total: tf.Scalar; stats: tf.Tensor1D } {
  const fused = fusedByBackend.get(tf.getBackend());
  if (fused) return fused(logits, labels, parentLogits, lambda);
  const targets = tf.oneHot(labels, logits.shape[1]).toFloat() as tf.Tensor2D;
  const loss = unitLoss(logits, targets, parentLogits, lambda);
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
  const stats = tf.keep(tf.stack([loss.prediction, loss.alignment, loss.total, correct]) as tf.Tensor1D);
  return { total: loss.total, stats };
}
