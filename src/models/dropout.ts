/**
 * Dropout with reproducible masks. tfjs draws a dropout mask from an unseeded generator (or, given a seed,
 * the same mask at every call), so a run with it could be neither repeated nor resumed exactly. Here the
 * mask of training step t is drawn from the counter-based stream keyed by (the layer's seed, t), the
 * stream the projection heads' masks come from: a run with dropout is bit-reproducible, resumes exactly
 * and draws the same masks on every backend. Inverted dropout: kept entries are scaled by 1 / (1 - rate).
 */
import * as tf from '@tensorflow/tfjs';
import { bernoulliMask, mixSeed } from '../data/random.js';

/** x with each entry dropped with probability `rate` (kept ones times 1 / (1 - rate)), the mask drawn from stream `key`. */
export function stepDropout(x: tf.Tensor, rate: number, key: number): tf.Tensor {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  if (rate === 0) return x;
  const keep = Math.fround(1 - rate);
  return tf.tidy(() => tf.mul(x, tf.tensor(bernoulliMask(key, x.size, keep, Math.fround(1 / keep)), x.shape, 'float32')));
}

/** tfjs-layers' Dropout fields read here (the package does not export the class). */
interface DropoutInternals {
  rate: number;
  seed?: number;
  noiseShape?: number[] | null;
}

/**
 * A tf.layers.dropout layer applied to `x` at training step `step` with the mask of {@link stepDropout},
 * keyed by the layer's seed and the step; null when `layer` is not such a layer (another class, no seed,
 * or a noise shape), which the caller then applies as tfjs does.
 */
export function applySeededDropout(layer: tf.layers.Layer, x: tf.Tensor, step: number): tf.Tensor | null {
  if (layer.getClassName() !== 'Dropout') return null;
  const { rate, seed, noiseShape } = layer as unknown as DropoutInternals;
  if (seed == null || !Number.isSafeInteger(seed) || noiseShape != null) return null;
  return stepDropout(x, rate, mixSeed(seed, step));
}
