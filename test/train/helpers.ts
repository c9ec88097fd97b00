import * as tf from '@tensorflow/tfjs';
import { resolveOptions, type RunOptions } from '../../src/options.js';
import { buildModel } from '../../src/train/fit.js';
import type { HeadedNetwork } from '../../src/train/model.js';
import { unitVariables } from '../../src/models/network.js';
import { makeDataset } from '../../src/data/dataset.js';
import { Rng } from '../../src/data/random.js';

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

/** A data set of `n` random 6x6 images with random labels, in the loaders' format. */
export function randomImages(n: number, seed: number) {
  const rng = new Rng(seed);
  const pixels = Uint8Array.from({ length: n * INPUT_SHAPE[0] * INPUT_SHAPE[1] }, () => rng.int(256));
  const labels = Int32Array.from({ length: n }, () => rng.int(CLASSES));
  return makeDataset({ name: `random/${seed}`, pixels, labels, shape: INPUT_SHAPE, numClasses: CLASSES, mean: [0.5], std: [0.25] });
}
