/** Each unit's optimizer: made from a strategy's OptimizerConfig, its learning-rate schedule, and its state as plain data. */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, perUnit, type OptimizerConfig } from './config.js';

/** PyTorch's Adam epsilon; tfjs's default (1e-7) differs, which matters when comparing runs. */
export const ADAM_EPSILON = 1e-8;

/** Makes an Adam optimizer from its learning rate, betas and epsilon. */
export type AdamFactory = (lr: number, beta1: number, beta2: number, epsilon: number) => tf.Optimizer;
const adamByBackend = new Map<string, AdamFactory>();

/**
 * Makes `factory` the Adam that 'adam' means while `backend` is tfjs's backend (a backend with a fused
 * update registers one: the native backend does); elsewhere 'adam' is tf.train.adam.
 */
export function registerAdam(backend: string, factory: AdamFactory): void {
  adamByBackend.set(backend, factory);
}

/** Makes an SGD-with-momentum optimizer from its learning rate and momentum. */
export type MomentumFactory = (lr: number, momentum: number) => tf.Optimizer;
const momentumByBackend = new Map<string, MomentumFactory>();

/**
 * Makes `factory` the SGD with momentum that 'sgd' means while `backend` is tfjs's backend (webgpu
 * registers a fused one); elsewhere 'sgd' is tf.train.momentum.
 */
export function registerMomentum(backend: string, factory: MomentumFactory): void {
  momentumByBackend.set(backend, factory);
}

/** The optimizer `o` names for unit `unit` (0-based), at the unit's peak learning rate. */
export function makeOptimizer(o: OptimizerConfig, unit = 0): tf.Optimizer {
  if (typeof o.optimizer === 'function') {
    const made: unknown = o.optimizer(unit);
    if (!(made instanceof tf.Optimizer)) throw new ConfigError('optimizer', `factory must return a tf.Optimizer (e.g. tf.train.adam()), got ${String(made)} for unit ${unit + 1}`);
    return made;
  }
  const lr = perUnit(o.lr, unit);
  if (o.optimizer === 'sgd') return (momentumByBackend.get(tf.getBackend()) ?? ((l, m) => tf.train.momentum(l, m)))(lr, o.momentum);
  const adam = adamByBackend.get(tf.getBackend()) ?? tf.train.adam;
  return adam(lr, 0.9, 0.999, ADAM_EPSILON);
}

/** Frees an optimizer's state; tfjs's MomentumOptimizer.dispose keeps its learning-rate scalar, freed here. */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  if (optimizer instanceof tf.MomentumOptimizer) (optimizer as unknown as { c?: tf.Tensor }).c?.dispose();
}

/** tfjs optimizers read their rate on every step, but only SGD exposes a setter. */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { learningRate: number; setLearningRate?(lr: number): void };
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Learning rate of unit `unit` in epoch `epoch` (both 0-based) of `epochs`: constant, cosine-annealed to 0, or the schedule's own. */
export function learningRateAt(o: Pick<OptimizerConfig, 'lr' | 'lrSchedule'>, epoch: number, epochs: number, unit = 0): number {
  const peak = perUnit(o.lr, unit);
  if (typeof o.lrSchedule === 'function') {
    const lr = o.lrSchedule(epoch, unit, peak, epochs);
    if (!(Number.isFinite(lr) && lr >= 0)) throw new ConfigError('lrSchedule', `returned ${lr} for epoch ${epoch}, unit ${unit}: a learning rate must be a number >= 0`);
    return lr;
  }
  if (o.lrSchedule === 'constant') return peak;
  return 0.5 * peak * (1 + Math.cos((Math.PI * epoch) / epochs));
}

/** An optimizer's state as plain data: its step count, scalar accumulators and slot tensors. */
export interface OptimizerState {
  /** Steps taken. */
  iterations: number;
  /** Scalars tfjs keeps outside getWeights (Adam's running beta powers). */
  scalars: Record<string, number>;
  /** The optimizer's slot variables (moments), in getWeights order. */
  slots: { name: string; shape: number[]; values: Float32Array }[];
}

/**
 * Scalars of Adam that getWeights omits but a bit-exact resume needs: tf.Variables in tfjs's Adam, float32
 * numbers in the fused Adams (train/fused-adam.ts).
 */
const HIDDEN_SCALARS = ['accBeta1', 'accBeta2'] as const;
type WithHidden = Partial<Record<(typeof HIDDEN_SCALARS)[number], tf.Variable | number>>;

/** The state of `optimizer` as plain data (copied out of its tensors). */
export async function optimizerState(optimizer: tf.Optimizer): Promise<OptimizerState> {
  // Read asynchronously: the webgpu backend cannot read synchronously in Node.
  const [iter, ...slots] = await optimizer.getWeights();
  const scalars: Record<string, number> = {};
  for (const key of HIDDEN_SCALARS) {
    const v = (optimizer as unknown as WithHidden)[key];
    if (typeof v === 'number') scalars[key] = v;
    else if (v) scalars[key] = (await v.data())[0];
  }
  const state = {
    iterations: (await iter.tensor.data())[0],
    scalars,
    slots: await Promise.all(slots.map(async (s) => ({ name: s.name, shape: s.tensor.shape, values: ((await s.tensor.data()) as Float32Array).slice() }))),
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
    const hidden = optimizer as unknown as WithHidden;
    const v = hidden[key as (typeof HIDDEN_SCALARS)[number]];
    if (typeof v === 'number') hidden[key as (typeof HIDDEN_SCALARS)[number]] = Math.fround(value);
    else if (v) tf.tidy(() => v.assign(tf.scalar(value)));
    else throw new Error(`optimizer has no ${key} to restore`);
  }
}
