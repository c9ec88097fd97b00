/** The MLP of the paper's section 5.1: L fully connected ReLU units of width W. */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from '../data/random.js';
import { networkFromUnits, type Network } from './network.js';

/** The MLP's architecture. */
export interface MlpOptions {
  inputShape: readonly number[];
  numClasses: number;
  /** Number of hidden layers L, one unit each. */
  layers: number;
  /** Width W of every hidden layer. */
  width: number;
  /** Dropout rate on each unit's output h_i during training (0: none); its masks are seeded (dropout.ts). */
  dropout?: number;
  /** Seeds the initial weights and the dropout masks. */
  seed: number;
}

/**
 * An MLP of `layers` dense ReLU units of `width` (the first flattens its input), He-initialised from `seed`;
 * with `dropout`, each unit ends in a tf.layers.dropout on h_i (which both its head and the next unit read).
 */
export function buildMlp(opts: MlpOptions): Network {
  const { inputShape, numClasses, layers, width, seed, dropout = 0 } = opts;
  const unitLayers: tf.layers.Layer[][] = [];
  for (let i = 0; i < layers; i++) {
    const dense = tf.layers.dense({
      units: width,
      activation: 'relu',
      kernelInitializer: tf.initializers.heUniform({ seed: seed * 1000 + i }),
      name: `unit${i + 1}_dense`,
    });
    const unit: tf.layers.Layer[] = i === 0 ? [tf.layers.flatten({ inputShape: [...inputShape], name: 'flatten' }), dense] : [dense];
    if (dropout > 0) unit.push(tf.layers.dropout({ rate: dropout, seed: mixSeed(seed, 8, i), name: `unit${i + 1}_dropout` }));
    unitLayers.push(unit);
  }
  return networkFromUnits(
    { model: 'mlp', inputShape, numClasses, options: { layers, width, seed, ...(dropout > 0 ? { dropout } : {}) } },
    unitLayers,
  );
}
