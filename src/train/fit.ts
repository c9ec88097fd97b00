/**
 * The training loop shared by SLL and BP: epochs of seeded, shuffled minibatches, a per-epoch learning
 * rate, per-unit statistics, a divergence guard, checkpoints, and an evaluation of every head after each
 * epoch. Every random choice derives from (seed, epoch, batch) or (seed, step), so the loop's whole state
 * is its position plus the weights and optimizer state: a run resumed from a checkpoint continues exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { batchesFrom, numBatches, type Batch, type DataSplits } from '../data/index.js';
import { mixSeed } from '../data/random.js';
import { buildNetwork, unitVariables, withClassifier } from '../models/index.js';
import type { RunOptions } from '../options.js';
import { BpTrainer } from './bp.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { attachHeads, type HeadedNetwork } from './model.js';
import { learningRateAt, type OptimizerState } from './optimizers.js';
import { SequentialEngine, type StepBatch, type StepEngine } from './engine.js';
import { SllTrainer } from './sll.js';
import { STAT_COLUMNS, type Trainer } from './trainer.js';

/** One line of metrics.jsonl: one unit (or the BP classifier) after one epoch. */
export interface UnitEpochMetrics {
  epoch: number;
  unit: number;
  prediction_loss: number;
  alignment_loss: number;
  loss: number;
  train_accuracy: number;
  test_accuracy: number;
  lambda: number | null;
  lr: number;
  epoch_seconds: number;
}

/** Where a run stands: what a checkpoint stores besides weights and optimizer state. Plain data. */
export interface FitState {
  /** The epoch in progress (0-based). */
  epoch: number;
  /** The next batch of that epoch. */
  batch: number;
  /** Per-unit sums of [prediction, alignment, loss] * n and correct over the epoch's batches so far. */
  sums: number[][];
  /** Examples seen in the epoch so far. */
  seen: number;
  metrics: UnitEpochMetrics[];
  trainSeconds: number;
  /** Seconds of training spent in the epoch in progress. */
  epochSeconds: number;
}

export interface BatchInfo {
  epoch: number;
  batch: number;
  batches: number;
  step: number;
  /** Mean per-unit loss and accuracy of this epoch so far. */
  running: { loss: number; accuracy: number }[];
}

export interface FitCallbacks {
  onEpochBegin?(epoch: number, batches: number): void;
  onBatchEnd?(info: BatchInfo): void;
  onEpochEnd?(epoch: number, metrics: UnitEpochMetrics[], evaluation: Evaluation): void;
  /**
   * Called every `checkpointEvery` steps, at each epoch end and when stopping on request, with the state
   * to resume from, the optimizers' states and the number of steps done.
   */
  onCheckpoint?(state: FitState, optimizers: OptimizerState[], steps: number): Promise<void>;
}

export interface FitControl {
  /** Continue from a checkpoint's loop state and optimizer states. */
  start?: { state: FitState; optimizers: OptimizerState[] };
  /** Steps between checkpoints; 0 checkpoints at epoch ends only. */
  checkpointEvery?: number;
  /** Polled between steps: true stops the run after a last checkpoint (e.g. on SIGINT). */
  stopRequested?(): boolean;
  /** Runs the steps some other way than on this thread (e.g. a pipeline of workers). */
  engine?(model: HeadedNetwork, o: RunOptions): Promise<StepEngine>;
}

export interface FitResult {
  metrics: UnitEpochMetrics[];
  evaluation: Evaluation;
  /** Seconds spent in training steps (evaluation excluded). */
  trainSeconds: number;
  samplesPerSecond: number;
}

/** A non-finite loss: names the unit, the step and the loss part. */
export class DivergenceError extends Error {
  /**
   * `part` is the loss part that turned non-finite (prediction, alignment, loss) or 'weights'; `unit` is
   * 1-based, and null for BP, whose one loss belongs to the whole network.
   */
  constructor(
    readonly unit: number | null,
    readonly step: number,
    readonly part: string,
    value: number,
  ) {
    const who = unit === null ? 'the network' : `unit ${unit}`;
    const what = part === 'weights' ? 'its weights hold NaN or Inf' : `its ${part} loss is ${value}`;
    super(`${who} diverged at step ${step}: ${what}`);
  }
}

/** The run stopped on request, after writing a checkpoint. */
export class FitInterrupted extends Error {
  constructor(readonly step: number) {
    super(`stopped on request at step ${step}`);
  }
}

/** The network of `o`, with its projection heads, and the BP classifier when `o.method` is bp. */
export function buildModel(o: RunOptions, inputShape: readonly number[], numClasses: number): HeadedNetwork {
  const network = buildNetwork(o, inputShape, numClasses);
  return attachHeads(o.method === 'bp' ? withClassifier(network, mixSeed(o.seed, 3)) : network, o);
}

export function makeTrainer(model: HeadedNetwork, o: RunOptions): Trainer {
  return o.method === 'sll' ? new SllTrainer(model, o) : new BpTrainer(model.network, o);
}

export function initialState(rows: number): FitState {
  return { epoch: 0, batch: 0, sums: zeroSums(rows), seen: 0, metrics: [], trainSeconds: 0, epochSeconds: 0 };
}

export async function fit(
  model: HeadedNetwork,
  data: DataSplits,
  o: RunOptions,
  callbacks: FitCallbacks = {},
  control: FitControl = {},
): Promise<FitResult> {
  const { train, test } = data;
  const engine = control.engine
    ? await control.engine(model, o)
    : new SequentialEngine(makeTrainer(model, o), train.shape);
  const perEpoch = numBatches(train, { batchSize: o.batchSize });
  const state = structuredClone(control.start?.state ?? initialState(engine.statRows));
  const every = control.checkpointEvery ?? 0;
  const bp = o.method === 'bp';
  const augment = o.cropPadding > 0 || o.flip ? { cropPadding: o.cropPadding, flip: o.flip } : undefined;
  const stopRequested = () => control.stopRequested?.() ?? false;
  const checkpoint = async (snapshot: FitState, steps: number) => {
    if (!callbacks.onCheckpoint) return;
    await engine.sync();
    assertFiniteWeights(model, steps - 1);
    await callbacks.onCheckpoint(snapshot, await engine.optimizerStates(), steps);
  };
  let evaluation: Evaluation | null = null;
  try {
    if (control.start) await engine.restoreOptimizerStates(control.start.optimizers);
    for (; state.epoch < o.epochs; state.epoch++, state.batch = 0) {
      const epoch = state.epoch;
      const lambdas = await engine.setEpoch(epoch);
      callbacks.onEpochBegin?.(epoch, perEpoch);
      const order = { batchSize: o.batchSize, shuffle: true, seed: o.seed, epoch, augment };
      let clock = performance.now();
      const onStep = async (step: number, n: number, rows: number[][]) => {
        rows.forEach((r, u) => {
          for (let c = 0; c < 3; c++) {
            if (!Number.isFinite(r[c])) throw new DivergenceError(bp ? null : u + 1, step, STAT_COLUMNS[c], r[c]);
          }
          for (let c = 0; c < 3; c++) state.sums[u][c] += r[c] * n;
          state.sums[u][3] += r[3];
        });
        state.seen += n;
        state.batch = step - epoch * perEpoch + 1;
        const now = performance.now();
        state.epochSeconds += (now - clock) / 1000;
        clock = now;
        callbacks.onBatchEnd?.({
          epoch,
          batch: state.batch,
          batches: perEpoch,
          step,
          running: state.sums.map((r) => ({ loss: r[2] / state.seen, accuracy: r[3] / state.seen })),
        });
        // Let signals (SIGINT) and timers run between steps.
        await new Promise((resolve) => setImmediate(resolve));
      };
      // Segments end at checkpoint steps, so that every stage has finished the same step when one is written.
      while (state.batch < perEpoch) {
        const first = epoch * perEpoch + state.batch;
        const end = every > 0 ? Math.min(perEpoch, (Math.floor(first / every) + 1) * every - epoch * perEpoch) : perEpoch;
        await engine.run(stepBatches(batchesFrom(train, order, state.batch), first, end - state.batch), onStep, () => !stopRequested());
        const stop = stopRequested();
        if (stop || state.batch < perEpoch) {
          await checkpoint(structuredClone(state), epoch * perEpoch + state.batch);
          clock = performance.now();
        }
        if (stop) throw new FitInterrupted(epoch * perEpoch + state.batch - 1);
      }
      await engine.sync();
      evaluation = evaluate(model, test, { ensemble: o.ensemble });
      const epochMetrics = state.sums.map((r, u) => ({
        epoch: epoch + 1,
        unit: u + 1,
        prediction_loss: r[0] / state.seen,
        alignment_loss: r[1] / state.seen,
        loss: r[2] / state.seen,
        train_accuracy: r[3] / state.seen,
        test_accuracy: evaluation!.unitAccuracy[u],
        lambda: lambdas ? lambdas[u] : null,
        lr: learningRateAt(o, epoch, u),
        epoch_seconds: state.epochSeconds,
      }));
      state.metrics.push(...epochMetrics);
      state.trainSeconds += state.epochSeconds;
      Object.assign(state, { sums: zeroSums(engine.statRows), seen: 0, epochSeconds: 0 });
      callbacks.onEpochEnd?.(epoch, epochMetrics, evaluation);
      await checkpoint({ ...structuredClone(state), epoch: epoch + 1, batch: 0 }, (epoch + 1) * perEpoch);
    }
  } finally {
    await engine.dispose();
  }
  evaluation ??= evaluate(model, test, { ensemble: o.ensemble });
  return {
    metrics: state.metrics,
    evaluation,
    trainSeconds: state.trainSeconds,
    samplesPerSecond: (train.size * o.epochs) / state.trainSeconds,
  };
}

/** The next `count` batches, numbered from step `first`. */
function* stepBatches(batches: Iterable<Batch>, first: number, count: number): Generator<StepBatch> {
  let i = 0;
  for (const b of batches) {
    if (i === count) return;
    yield { step: first + i++, x: b.x, y: b.y, n: b.n };
  }
}

/** A checkpoint must never hold weights a diverged update left behind. */
function assertFiniteWeights(model: HeadedNetwork, step: number): void {
  const { network } = model;
  const groups = network.classifier
    ? [network.model.trainableWeights.map((w) => w.read())]
    : network.units.map((unit) => unitVariables(unit));
  groups.forEach((variables, u) => {
    const finite = tf.tidy(() => variables.every((v) => tf.all(tf.isFinite(v)).dataSync()[0] === 1));
    if (!finite) throw new DivergenceError(network.classifier ? null : u + 1, step, 'weights', NaN);
  });
}

function zeroSums(rows: number): number[][] {
  return Array.from({ length: rows }, () => [0, 0, 0, 0]);
}
