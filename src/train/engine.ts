/**
 * How the fit loop gets steps done: one after another on this thread (SequentialEngine), or by units on
 * worker threads in a pipeline (PipelineEngine, Node). Both produce the same steps; the loop around them
 * (epochs, metrics, checkpoints, evaluation) is shared.
 */
import * as tf from '@tensorflow/tfjs';
import type { EpochSchedule, Trainer } from './trainer.js';
import { optimizerState, restoreOptimizerState, type OptimizerState } from './optimizers.js';
import { submitRecorded } from '../gpu/tfjs-webgpu.js';

/** A minibatch numbered by its step; the engine disposes x and labels once the step is done. */
export interface StepBatch {
  step: number;
  x: tf.Tensor;
  labels: tf.Tensor1D;
  n: number;
}

/** What the fit loop needs to get steps done. */
export interface StepEngine {
  /** Rows of per-step stats: one per unit (SLL) or one (BP). */
  readonly statRows: number;
  /** Sets the learning rates and lambdas of `epoch` and returns them. */
  setEpoch(epoch: number): Promise<EpochSchedule>;
  /**
   * Runs `batches` in order and hands each step's stats rows to `onStep`, in step order. `more()` is asked
   * before each batch is started; false stops feeding (steps already started still complete).
   */
  run(
    batches: AsyncIterable<StepBatch>,
    onStep: (step: number, n: number, rows: number[][]) => Promise<void>,
    more: () => boolean,
  ): Promise<void>;
  /** Makes the main thread's model hold the trained weights (for evaluation and saving). */
  sync(): Promise<void>;
  /** Every optimizer's state, in the trainer's order (what a checkpoint saves). */
  optimizerStates(): Promise<OptimizerState[]>;
  /** Restores what optimizerStates gave. */
  restoreOptimizerStates(states: OptimizerState[]): Promise<void>;
  /** Frees the trainer's state (and stops workers). */
  dispose(): Promise<void>;
}

/**
 * How many steps' stats the sequential engine reads at once on `backend`: 1 on the CPU backends (a read
 * costs nothing there), 16 on a GPU, where each read waits for the GPU and copies back to the CPU.
 */
export function statsReadEvery(backend: string): number {
  return backend === 'webgpu' || backend === 'webgl' ? 16 : 1;
}

/**
 * Steps on this thread, on the model itself. The stats of `readEvery` steps (default:
 * {@link statsReadEvery} of the backend in use) are read together, and `onStep` then runs for each of them
 * in order; the pending ones are always read before `run` returns or throws, so a checkpoint written after
 * it holds exactly the steps `onStep` saw. Callbacks that stop training take effect at the next read.
 */
export class SequentialEngine implements StepEngine {
  constructor(
    private readonly trainer: Trainer,
    readonly readEvery: number = statsReadEvery(tf.getBackend()),
  ) {
    if (!Number.isInteger(readEvery) || readEvery < 1) throw new Error(`readEvery must be an integer >= 1, got ${readEvery}`);
  }

  get statRows(): number {
    return this.trainer.statRows;
  }

  async setEpoch(epoch: number): Promise<EpochSchedule> {
    return this.trainer.setEpoch(epoch);
  }

  async run(
    batches: AsyncIterable<StepBatch>,
    onStep: (step: number, n: number, rows: number[][]) => Promise<void>,
    more: () => boolean,
  ): Promise<void> {
    const pending: { step: number; n: number; stats: tf.Tensor2D }[] = [];
    // Read asynchronously: tfjs-backend-webgpu cannot read synchronously in Node (it needs OffscreenCanvas).
    const read = async () => {
      const done = pending.splice(0);
      if (done.length === 0) return;
      const stacked = done.length === 1 ? done[0].stats : tf.stack(done.map((p) => p.stats));
      const values = await stacked.array();
      tf.dispose([stacked, ...done.map((p) => p.stats)]);
      const rows = (done.length === 1 ? [values] : values) as number[][][];
      for (const [i, p] of done.entries()) await onStep(p.step, p.n, rows[i]);
    };
    try {
      for await (const b of batches) {
        if (!more()) {
          tf.dispose([b.x, b.labels]);
          return;
        }
        try {
          pending.push({ step: b.step, n: b.n, stats: this.trainer.step(b.x, b.labels, b.step) });
        } finally {
          tf.dispose([b.x, b.labels]);
        }
        // On webgpu, each step's work submitted at its end, so that every step gets the same buffers.
        submitRecorded();
        if (pending.length >= this.readEvery) await read();
      }
    } finally {
      await read();
    }
  }

  async sync(): Promise<void> {}

  /** {@inheritDoc StepEngine.optimizerStates} */
  optimizerStates(): Promise<OptimizerState[]> {
    return Promise.all(this.trainer.optimizers.map(optimizerState));
  }

  /** {@inheritDoc StepEngine.restoreOptimizerStates} */
  async restoreOptimizerStates(states: OptimizerState[]): Promise<void> {
    if (states.length !== this.trainer.optimizers.length) {
      throw new Error(`checkpoint has ${states.length} optimizers, the trainer ${this.trainer.optimizers.length}`);
    }
    for (const [i, opt] of this.trainer.optimizers.entries()) await restoreOptimizerState(opt, states[i]);
  }

  /** {@inheritDoc StepEngine.dispose} */
  async dispose(): Promise<void> {
    this.trainer.dispose();
  }
}
