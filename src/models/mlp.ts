/** The MLP of the paper's section 5.1: L fully connected ReLU units of width W. */
import * as tf from '@tensorflow/tfjs';
import { networkFromUnits, type Network } from './network.js';

/** The MLP's architecture. */
export interface MlpOptions {
  inputShape: readonly number[];
  numClasses: number;
  /** Number of hidden layers L, one unit each. */
  layers: number;
  /** Width W of every hidden layer. */
  width: number;
  /** Seeds the initial weights. */
  seed: number;
}

/** An MLP of `layers` dense ReLU units of `width` (the first flattens its input), He-initialised from `seed`. */
export function buildMlp(opts: MlpOptions): Network {
  const { inputShape, numClasses, layers, width, seed } = opts;
  const unitLayers: tf.layers.Layer[][] = [];
  for (let i = 0; i < layers; i++) {
    const dense = tf.layers.dense({
      units: width,
      activation: 'relu',
      kernelInitializer: tf.initializers.heUniform({ seed: seed * 1000 + i }),
      name: `unit${i + 1}_dense`,
    });
    unitLayers.push(i === 0 ? [tf.layers.flatten({ inputShape: [...inputShape], name: 'flatten' }), dense] : [dense]);
  }
  return networkFromUnits(
    { model: 'mlp', inputShape, numClasses, options: { layers, width, seed } },
    unitLayers,
  );
}
