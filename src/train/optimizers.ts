import * as tf from '@tensorflow/tfjs';
import type { RunOptions } from '../options.js';

/** PyTorch's Adam epsilon; tfjs's default (1e-7) differs, which matters when comparing runs. */
const ADAM_EPSILON = 1e-8;

export function makeOptimizer(o: Pick<RunOptions, 'optimizer' | 'lr' | 'momentum'>): tf.Optimizer {
  return o.optimizer === 'adam'
    ? tf.train.adam(o.lr, 0.9, 0.999, ADAM_EPSILON)
    : tf.train.momentum(o.lr, o.momentum);
}

/** tfjs optimizers read their rate on every step, but only SGD exposes a setter. */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { learningRate: number; setLearningRate?(lr: number): void };
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Learning rate of epoch `epoch` (0-based): constant, or cosine-annealed to 0 over the run. */
export function learningRateAt(o: Pick<RunOptions, 'lr' | 'lrSchedule' | 'epochs'>, epoch: number): number {
  if (o.lrSchedule === 'constant') return o.lr;
  return 0.5 * o.lr * (1 + Math.cos((Math.PI * epoch) / o.epochs));
}
