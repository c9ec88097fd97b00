import * as tf from '@tensorflow/tfjs';
import { resolveOptions, type RunOptions } from '../../src/options.js';
import { buildModel } from '../../src/train/fit.js';
import type { HeadedNetwork } from '../../src/train/model.js';
import { unitVariables } from '../../src/models/network.js';

export const INPUT_SHAPE = [6, 6, 1] as const;
export const CLASSES = 4;

/** A small SLL/BP model on 6x6 inputs, 4 classes. */
export function smallModel(o: Partial<RunOptions> = {}): { model: HeadedNetwork; options: RunOptions } {
  const options = resolveOptions({ layers: 3, width: 16, keep: 0.5, ...o });
  return { model: buildModel(options, INPUT_SHAPE, CLASSES), options };
}

export function batch(seed: number, n = 16): { x: tf.Tensor4D; labels: tf.Tensor1D } {
  const x = tf.randomNormal([n, ...INPUT_SHAPE], 0, 1, 'float32', seed) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7 + seed) % CLASSES), 'int32');
  return { x, labels };
}

/** Copies of the weights of unit `i`, as plain arrays. */
export function unitWeights(model: HeadedNetwork, i: number): Float32Array[] {
  return unitVariables(model.network.units[i]).map((v) => v.dataSync() as Float32Array);
}
