import type * as tf from '@tensorflow/tfjs';

/** Per-unit statistics of one step, one row per unit: [prediction loss, alignment loss, total loss, correct]. */
export const STAT_COLUMNS = ['prediction', 'alignment', 'loss', 'correct'] as const;

/** What an epoch's schedule sets: each optimizer's learning rate, and SLL's lambda_i (null for BP). */
export interface EpochSchedule {
  lrs: number[];
  lambdas: number[] | null;
}

/** What the fit loop needs of a training strategy (SLL or BP): a step, and its schedule. */
export interface Trainer {
  /** Rows of the stats this trainer reports: one per unit for SLL, one (the classifier) for BP. */
  readonly statRows: number;
  /** Every optimizer of the strategy (one per unit for SLL), in a fixed order: checkpoints save them. */
  readonly optimizers: readonly tf.Optimizer[];
  /**
   * One training step on a minibatch; `step` counts steps from the start of the run (it seeds the
   * projection masks). Returns the stats [statRows, 4]; the caller owns (disposes) them.
   */
  step(x: tf.Tensor, labels: tf.Tensor1D, step: number): tf.Tensor2D;
  /** Sets the learning rates (and lambdas) of epoch `epoch` (0-based) and returns them. */
  setEpoch(epoch: number): EpochSchedule;
  /** Frees the optimizers' state. */
  dispose(): void;
}
