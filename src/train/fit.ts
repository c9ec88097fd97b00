/**
 * The training loop shared by SLL and BP: epochs of minibatches, each epoch's schedule, per-unit
 * statistics, the divergence guard, checkpoints, an evaluation of every head on the validation data after
 * each epoch, and tfjs callbacks. Every random choice derives from (seed, epoch, batch) or (seed, step), so
 * the loop's whole state is its position plus the weights and optimizer state: a run resumed from a
 * checkpoint continues exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../data/errors.js';
import { checkExampleShape, type BatchSource } from '../data/source.js';
import { callbackList, watchedModel, type CallbackParams, type TfCallbacks } from './callbacks.js';
import type { LoopConfig } from './config.js';
import { assertFiniteStats, assertFiniteWeights } from './divergence.js';
import type { StepBatch, StepEngine } from './engine.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { yieldToEventLoop } from './event-loop.js';
import type { HeadedNetwork } from './model.js';
import type { OptimizerState } from './optimizers.js';
import type { EpochSchedule } from './trainer.js';

/** One line of metrics.jsonl: one unit (or the BP classifier) after one epoch. */
export interface UnitEpochMetrics {
  /** 1-based. */
  epoch: number;
  /** 1-based; BP's classifier is unit 1. */
  unit: number;
  prediction_loss: number;
  alignment_loss: number;
  loss: number;
  train_accuracy: number;
  /** Accuracy on the validation data (the test set in a CLI run); null without validation data. */
  test_accuracy: number | null;
  /** null for BP. */
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
  /** Steps done since the start of the run (the next step's number). */
  step: number;
  /** Per-unit sums of [prediction, alignment, loss] * n and correct over the epoch's batches so far. */
  sums: number[][];
  /** Examples seen in the epoch so far. */
  seen: number;
  metrics: UnitEpochMetrics[];
  trainSeconds: number;
  /** Seconds of training spent in the epoch in progress. */
  epochSeconds: number;
}

/** Progress after one step, for front ends. */
export interface BatchInfo {
  epoch: number;
  /** Batches done in this epoch. */
  batch: number;
  /** Batches per epoch, when known. */
  batches: number | null;
  step: number;
  /** Mean per-unit loss and accuracy of this epoch so far. */
  running: { loss: number; accuracy: number }[];
}

/** Progress of a fit, typed, for the library's own front ends (the CLI's progress and tables); users pass tfjs callbacks. */
export interface ProgressHooks {
  /** An epoch (0-based) of `batches` batches (null: unknown) begins. */
  onEpochBegin?(epoch: number, batches: number | null): void;
  /** A step is done. */
  onBatchEnd?(info: BatchInfo): void;
  /** An epoch is done: each unit's metrics and the evaluation on the validation data (null without any). */
  onEpochEnd?(epoch: number, metrics: UnitEpochMetrics[], evaluation: Evaluation | null): void;
}

/** ProgressHooks, and the hook that writes checkpoints. */
export interface FitHooks extends ProgressHooks {
  /**
   * Called every `checkpointEvery` steps, at each epoch end and when stopping on request, with the state
   * to resume from, the optimizers' states and the number of steps done.
   */
  onCheckpoint?(state: FitState, optimizers: OptimizerState[], steps: number): Promise<void>;
}

/** Resuming, checkpoint cadence and stopping. */
export interface FitControl {
  /** Continue from a checkpoint's loop state and optimizer states. */
  start?: { state: FitState; optimizers: OptimizerState[] };
  /** Steps between checkpoints; 0 checkpoints at epoch ends only. */
  checkpointEvery?: number;
  /**
   * Polled between steps: true stops the run after a last checkpoint (e.g. on SIGINT). A pipeline sends no
   * new step once it is true, and finishes the steps already in flight (at most its depth) first: the
   * checkpoint and FitInterrupted count them.
   */
  stopRequested?(): boolean;
}

/** What the loop trains, on what, and how. */
export interface FitSetup {
  model: HeadedNetwork;
  /** Runs the steps (and owns the trainer): disposed when the loop ends. */
  engine: StepEngine;
  train: BatchSource;
  /** Evaluated after every epoch; null: no evaluation. */
  validation: BatchSource | null;
  loop: LoopConfig;
  /** Seeds the order of the batches (with the epoch). */
  seed: number;
  /** tfjs callbacks; they see `model.network.model` (its `stopTraining`) and the epoch logs. */
  callbacks?: TfCallbacks;
}

/** What a fit returns. */
export interface FitResult {
  metrics: UnitEpochMetrics[];
  /** Per epoch, the logs the callbacks saw (tfjs History's `history`, by log name). */
  history: Record<string, number[]>;
  /** The last epoch's evaluation on the validation data; null without validation data. */
  evaluation: Evaluation | null;
  /** Seconds spent in training steps (evaluation excluded). */
  trainSeconds: number;
  samplesPerSecond: number;
  /** Epochs run (fewer than asked when a callback stopped training). */
  epochs: number;
  /** What the callbacks were given through setParams. */
  params: CallbackParams;
}

/** The run stopped on request after `steps` steps in all, with a checkpoint of them (checkpoints/step-<steps>). */
export class FitInterrupted extends Error {
  constructor(
    readonly steps: number,
    /** Whether a checkpoint after step `steps` was written (false: stopped before training, nothing new to save). */
    readonly checkpointed = true,
  ) {
    super(checkpointed ? `stopped on request after step ${steps}` : `stopped on request before training (at step ${steps})`);
    this.name = 'FitInterrupted';
  }
}

/** A loop state at the start of a run with `rows` rows of statistics. */
export function initialState(rows: number): FitState {
  return { epoch: 0, batch: 0, step: 0, sums: zeroSums(rows), seen: 0, metrics: [], trainSeconds: 0, epochSeconds: 0 };
}

/** Trains `setup.model` for `setup.loop.epochs` epochs; the engine is disposed however it ends. */
export async function fit(setup: FitSetup, hooks: FitHooks = {}, control: FitControl = {}): Promise<FitResult> {
  try {
    return await epochs(setup, hooks, control);
  } finally {
    await setup.engine.dispose();
  }
}

async function epochs(setup: FitSetup, hooks: FitHooks, control: FitControl): Promise<FitResult> {
  const { model, engine, train, validation, loop } = setup;
  checkExampleShape(train, model.network.spec.inputShape, 'training data');
  if (validation) checkExampleShape(validation, model.network.spec.inputShape, 'validation data');
  const bp = model.network.classifier != null;
  const perEpoch = train.numBatches(loop.batchSize);
  const every = control.checkpointEvery ?? 0;
  if (every > 0 && perEpoch === null) throw new Error('checkpoints every N steps need data whose batches per epoch are known');
  const state = structuredClone(control.start?.state ?? initialState(engine.statRows));
  const stopRequested = () => control.stopRequested?.() ?? false;
  const checkpoint = async (snapshot: FitState) => {
    if (!hooks.onCheckpoint) return;
    await engine.sync();
    await assertFiniteWeights(model.network, snapshot.step - 1);
    await hooks.onCheckpoint(snapshot, await engine.optimizerStates(), snapshot.step);
  };
  const watched = watchedModel(model.network.model);
  const params: CallbackParams = {
    epochs: loop.epochs,
    steps: perEpoch,
    samples: train.size,
    batchSize: train.size === null ? null : loop.batchSize,
    metrics: logNames(engine.statRows, bp, validation !== null, loop.ensemble),
  };
  const callbacks = callbackList(setup.callbacks, watched, params);
  const history: Record<string, number[]> = {};
  let evaluation: Evaluation | null = null;
  let epochsRun = state.epoch;
  watched.stopTraining = false;
  if (control.start) await engine.restoreOptimizerStates(control.start.optimizers);
  await callbacks.onTrainBegin();
  for (; state.epoch < loop.epochs && !watched.stopTraining; state.epoch++, state.batch = 0) {
    const epoch = state.epoch;
    const schedule = await engine.setEpoch(epoch);
    hooks.onEpochBegin?.(epoch, perEpoch);
    await callbacks.onEpochBegin(epoch);
    let clock = performance.now();
    const onStep = async (step: number, n: number, rows: number[][]) => {
      assertFiniteStats(rows, step, bp);
      rows.forEach((r, u) => {
        for (let c = 0; c < 3; c++) state.sums[u][c] += r[c] * n;
        state.sums[u][3] += r[3];
      });
      state.seen += n;
      state.batch++;
      state.step = step + 1;
      const now = performance.now();
      state.epochSeconds += (now - clock) / 1000;
      clock = now;
      hooks.onBatchEnd?.({
        epoch,
        batch: state.batch,
        batches: perEpoch,
        step,
        running: state.sums.map((r) => ({ loss: r[2] / state.seen, accuracy: r[3] / state.seen })),
      });
      await callbacks.onBatchEnd(state.batch - 1, batchLogs(rows, n, state.batch - 1));
      await yieldToEventLoop();
      clock = performance.now();
    };
    const more = () => !stopRequested() && !watched.stopTraining;
    // Segments end at checkpoint steps, so that every stage has finished the same step when one is written.
    let ended = false;
    while (!ended) {
      const startBatch = state.batch;
      const end = every > 0 ? Math.min(perEpoch!, startBatch + every - (state.step % every)) : null;
      const order = { batchSize: loop.batchSize, shuffle: loop.shuffle, seed: setup.seed, epoch, startBatch };
      const batches = numbered(train.batches(order), state.step, end === null ? null : end - startBatch, (b) => callbacks.onBatchBegin(startBatch + b), more);
      try {
        await engine.run(batches, onStep, more);
      } catch (e) {
        // A file of the data failed to read mid-epoch: keep the steps done so far, then stop.
        if (e instanceof DataError && hooks.onCheckpoint && state.batch > startBatch) {
          await checkpoint(structuredClone(state));
          e.checkpointStep = state.step;
        }
        throw e;
      }
      const stop = stopRequested();
      ended = perEpoch === null ? true : state.batch >= perEpoch;
      if (stop || !ended) await checkpoint(structuredClone(state));
      clock = performance.now();
      if (stop) throw new FitInterrupted(state.step);
      if (watched.stopTraining) break;
    }
    // A callback that stops training inside an epoch ends that epoch there, as in tfjs: its logs cover the
    // batches run, and its checkpoint is the one the loop above wrote (the epoch is not complete).
    const stoppedInEpoch = watched.stopTraining;
    if (state.seen === 0) break;
    await engine.sync();
    evaluation = validation ? await evaluate(model, validation, { ensemble: loop.ensemble, numClasses: model.network.spec.numClasses }) : null;
    const epochMetrics = state.sums.map((r, u) => ({
      epoch: epoch + 1,
      unit: u + 1,
      prediction_loss: r[0] / state.seen,
      alignment_loss: r[1] / state.seen,
      loss: r[2] / state.seen,
      train_accuracy: r[3] / state.seen,
      test_accuracy: evaluation ? evaluation.unitAccuracy[u] : null,
      lambda: schedule.lambdas ? schedule.lambdas[u] : null,
      lr: schedule.lrs[u],
      epoch_seconds: state.epochSeconds,
    }));
    state.metrics.push(...epochMetrics);
    state.trainSeconds += state.epochSeconds;
    Object.assign(state, { sums: zeroSums(engine.statRows), seen: 0, epochSeconds: 0 });
    epochsRun = epoch + 1;
    hooks.onEpochEnd?.(epoch, epochMetrics, evaluation);
    const logs = epochLogs(epochMetrics, evaluation, schedule, bp);
    for (const [k, v] of Object.entries(logs)) (history[k] ??= []).push(v);
    await callbacks.onEpochEnd(epoch, logs);
    if (!stoppedInEpoch) await checkpoint({ ...structuredClone(state), epoch: epoch + 1, batch: 0 });
  }
  if (evaluation === null && validation) {
    await engine.sync();
    evaluation = await evaluate(model, validation, { ensemble: loop.ensemble, numClasses: model.network.spec.numClasses });
  }
  await callbacks.onTrainEnd();
  const examples = (train.size ?? 0) * epochsRun;
  return {
    metrics: state.metrics,
    history,
    evaluation,
    trainSeconds: state.trainSeconds,
    samplesPerSecond: state.trainSeconds > 0 ? examples / state.trainSeconds : 0,
    epochs: epochsRun,
    params,
  };
}

/**
 * The source's batches numbered from step `first`, at most `count` of them, while `more()`; `onBegin(b)`
 * before each is used (after it is read, as in tfjs).
 */
async function* numbered(
  batches: AsyncGenerator<{ x: tf.Tensor; labels: tf.Tensor1D; n: number }>,
  first: number,
  count: number | null,
  onBegin: (b: number) => Promise<void>,
  more: () => boolean,
): AsyncGenerator<StepBatch> {
  let i = 0;
  try {
    while (count === null || i < count) {
      const next = await batches.next();
      if (next.done) return;
      if (!more()) {
        tf.dispose([next.value.x, next.value.labels]);
        return;
      }
      await onBegin(i);
      yield { step: first + i++, ...next.value };
    }
  } finally {
    await batches.return(undefined);
  }
}

/** The log names of {@link epochLogs}, in order. */
function logNames(rows: number, bp: boolean, validation: boolean, ensemble: boolean): string[] {
  const names = ['loss', 'acc', ...(validation ? ['val_loss', 'val_acc'] : [])];
  if (bp) return [...names, 'lr'];
  for (let u = 1; u <= rows; u++) {
    names.push(`unit${u}_loss`, `unit${u}_pred_loss`, `unit${u}_align_loss`, `unit${u}_acc`);
    if (validation) names.push(`unit${u}_val_loss`, `unit${u}_val_acc`);
    names.push(`unit${u}_lr`, `unit${u}_lambda`);
  }
  if (validation && ensemble) names.push('val_ensemble_acc');
  return names;
}

/**
 * An epoch's logs: `loss`, `acc` (training; the model's prediction: last head, or BP's classifier),
 * `val_loss`, `val_acc` (validation), and per unit i `unit{i}_loss`, `_pred_loss`, `_align_loss`, `_acc`,
 * `_val_loss`, `_val_acc`, `_lr`, `_lambda` (SLL) or `lr` (BP).
 */
function epochLogs(metrics: UnitEpochMetrics[], evaluation: Evaluation | null, schedule: EpochSchedule, bp: boolean): tf.Logs {
  const last = metrics[metrics.length - 1];
  const logs: tf.Logs = { loss: last.loss, acc: last.train_accuracy };
  if (evaluation) Object.assign(logs, { val_loss: evaluation.loss, val_acc: evaluation.accuracy });
  if (bp) return { ...logs, lr: schedule.lrs[0] };
  metrics.forEach((m, u) => {
    const p = `unit${u + 1}_`;
    Object.assign(logs, { [`${p}loss`]: m.loss, [`${p}pred_loss`]: m.prediction_loss, [`${p}align_loss`]: m.alignment_loss, [`${p}acc`]: m.train_accuracy });
    if (evaluation) Object.assign(logs, { [`${p}val_loss`]: evaluation.unitLoss[u], [`${p}val_acc`]: evaluation.unitAccuracy[u] });
    Object.assign(logs, { [`${p}lr`]: m.lr, [`${p}lambda`]: m.lambda ?? 0 });
  });
  if (evaluation?.ensembleAccuracy != null) logs.val_ensemble_acc = evaluation.ensembleAccuracy;
  return logs;
}

/** A batch's logs, as tfjs gives them: `batch`, `size`, `loss`, `acc`, and per unit `unit{i}_loss`, `unit{i}_acc`. */
function batchLogs(rows: number[][], n: number, batch: number): tf.Logs {
  const last = rows[rows.length - 1];
  const logs: tf.Logs = { batch, size: n, loss: last[2], acc: last[3] / n };
  if (rows.length > 1) rows.forEach((r, u) => Object.assign(logs, { [`unit${u + 1}_loss`]: r[2], [`unit${u + 1}_acc`]: r[3] / n }));
  return logs;
}

function zeroSums(rows: number): number[][] {
  return Array.from({ length: rows }, () => [0, 0, 0, 0]);
}
