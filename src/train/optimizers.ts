import * as tf from '@tensorflow/tfjs';
import type { RunOptions } from '../options.js';
import { NativeAdamOptimizer } from '../native/adam.js';
import { NATIVE_BACKEND_NAME } from '../native/backend.js';

/** PyTorch's Adam epsilon; tfjs's default (1e-7) differs, which matters when comparing runs. */
const ADAM_EPSILON = 1e-8;

/** The peak learning rate of unit `unit` (0-based; BP's one optimizer is unit 0). */
export function peakLearningRate(o: Pick<RunOptions, 'lr'>, unit: number): number {
  return Array.isArray(o.lr) ? o.lr[unit] : o.lr;
}

/** The optimizer `o` names for unit `unit`; on the native backend Adam is one fused native update per variable. */
export function makeOptimizer(o: Pick<RunOptions, 'optimizer' | 'lr' | 'momentum'>, unit = 0): tf.Optimizer {
  const lr = peakLearningRate(o, unit);
  if (o.optimizer === 'sgd') return tf.train.momentum(lr, o.momentum);
  return tf.getBackend() === NATIVE_BACKEND_NAME
    ? new NativeAdamOptimizer(lr, 0.9, 0.999, ADAM_EPSILON)
    : tf.train.adam(lr, 0.9, 0.999, ADAM_EPSILON);
}

/** tfjs optimizers read their rate on every step, but only SGD exposes a setter. */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { learningRate: number; setLearningRate?(lr: number): void };
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Learning rate of unit `unit` in epoch `epoch` (both 0-based): constant, or cosine-annealed to 0 over the run. */
export function learningRateAt(o: Pick<RunOptions, 'lr' | 'lrSchedule' | 'epochs'>, epoch: number, unit = 0): number {
  const peak = peakLearningRate(o, unit);
  if (o.lrSchedule === 'constant') return peak;
  return 0.5 * peak * (1 + Math.cos((Math.PI * epoch) / o.epochs));
}

/** An optimizer's state as plain data: its step count, scalar accumulators and slot tensors. */
export interface OptimizerState {
  iterations: number;
  /** Scalars tfjs keeps outside getWeights (Adam's running beta powers). */
  scalars: Record<string, number>;
  slots: { name: string; shape: number[]; values: Float32Array }[];
}

/** Scalar variables of tfjs optimizers that getWeights omits but a bit-exact resume needs. */
const HIDDEN_SCALARS = ['accBeta1', 'accBeta2'] as const;
type WithHidden = Partial<Record<(typeof HIDDEN_SCALARS)[number], tf.Variable>>;

export async function optimizerState(optimizer: tf.Optimizer): Promise<OptimizerState> {
  const [iter, ...slots] = await optimizer.getWeights();
  const scalars: Record<string, number> = {};
  for (const key of HIDDEN_SCALARS) {
    const v = (optimizer as unknown as WithHidden)[key];
    if (v) scalars[key] = v.dataSync()[0];
  }
  const state = {
    iterations: iter.tensor.dataSync()[0],
    scalars,
    slots: slots.map((s) => ({ name: s.name, shape: s.tensor.shape, values: s.tensor.dataSync() as Float32Array })),
  };
  iter.tensor.dispose();
  return state;
}

/**
 * Restores what optimizerState saved. setWeights recomputes Adam's beta powers as pow(beta, t), which
 * differs in the last bits from the running product a step-by-step run holds, so those are set back too.
 */
export async function restoreOptimizerState(optimizer: tf.Optimizer, state: OptimizerState): Promise<void> {
  const tensors = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...state.slots.map((s) => ({ name: s.name, tensor: tf.tensor(s.values, s.shape, 'float32') })),
  ];
  await optimizer.setWeights(tensors);
  tf.dispose(tensors.map((t) => t.tensor));
  for (const [key, value] of Object.entries(state.scalars)) {
    const v = (optimizer as unknown as WithHidden)[key as (typeof HIDDEN_SCALARS)[number]];
    if (!v) throw new Error(`optimizer has no ${key} to restore`);
    tf.tidy(() => v.assign(tf.scalar(value)));
  }
}
