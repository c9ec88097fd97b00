/**
 * The unit loss (paper eq. 5), its stats row and its gradient in one native call per unit (the native
 * backend's {@link unitLossStats}; the math is written out in native/src/fused.h). With tfjs's ops the loss,
 * the accuracy count and their gradients are ~40 kernels per unit, each with its engine bookkeeping.
 */
import * as tf from '@tensorflow/tfjs';
import type { UnitLossStatsFn } from '../objectives/unit-loss.js';
import { float32Values, nativeAddon, NativeBackend } from './backend.js';

/** The values of `t` where the native backend holds them, else read (a tensor made on another backend). */
function floats(backend: NativeBackend, t: tf.Tensor): Float32Array {
  return (backend.data.has(t.dataId) ? float32Values(backend, t) : null) ?? Float32Array.from(t.dataSync());
}

function ints(backend: NativeBackend, t: tf.Tensor): Int32Array {
  const values = backend.data.has(t.dataId) ? backend.data.get(t.dataId)?.values : null;
  return values instanceof Int32Array ? values : Int32Array.from(t.dataSync());
}

/**
 * The unit loss of logits `v` [B, K] against `labels` [B] (int32) and the `parent` logits (or none), with the
 * stats row [prediction, alignment, total, correct], on the `native` backend. `total` is differentiable with
 * respect to `v` (its gradient is computed with it); the stats are not (kept: the caller disposes them).
 */
export const nativeUnitLossStats: UnitLossStatsFn = (v, labels, parent, lambda) => {
  const [B, K] = v.shape;
  if (labels.dtype !== 'int32' || labels.size !== B) throw new Error(`nativeUnitLossStats: labels must be int32 [${B}], got ${labels.dtype} [${labels.shape}]`);
  const withParent = parent != null && lambda !== 0;
  if (withParent && !tf.util.arraysEqual(parent.shape, v.shape)) throw new Error(`nativeUnitLossStats: parent [${parent.shape}] differs from v [${v.shape}]`);
  const backend = tf.backend();
  if (!(backend instanceof NativeBackend)) throw new Error(`nativeUnitLossStats runs on the native backend, not ${tf.getBackend()}`);
  let stats!: tf.Tensor1D;
  const lossOf = tf.customGrad(((logits: tf.Tensor, save: tf.GradSaveFunc) => {
    const total = new Float32Array(1);
    const row = new Float32Array(4);
    const grad = backend.allocFloat32(B * K);
    nativeAddon().unitLoss(floats(backend, logits), ints(backend, labels), withParent ? floats(backend, parent) : null, B, K, lambda, total, row, grad);
    // Kept: customGrad disposes what its forward made but did not return or save; the caller disposes it.
    stats = tf.keep(tf.tensor1d(row));
    const g = tf.tensor2d(grad, [B, K]);
    save([g]);
    return {
      value: tf.scalar(total[0]),
      // The seed of tf.grad is dy = 1: the saved gradient as it is (a clone shares its storage).
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => (dy.size === 1 && floats(backend, dy)[0] === 1 ? tf.clone(saved[0]) : tf.mul(dy, saved[0])),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const total = lossOf(v) as tf.Scalar;
  return { total, stats };
};
