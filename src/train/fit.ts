/**
 * The training loop shared by SLL and BP: epochs of seeded, shuffled minibatches, a per-epoch learning
 * rate, per-unit statistics accumulated on the device (read back only when a callback asks), and an
 * evaluation of every head after each epoch.
 */
import * as tf from '@tensorflow/tfjs';
import { batches, numBatches, type DataSplits } from '../data/index.js';
import { buildNetwork, withClassifier } from '../models/index.js';
import { mixSeed } from '../data/random.js';
import type { RunOptions } from '../options.js';
import { BpTrainer } from './bp.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { attachHeads, type HeadedNetwork } from './model.js';
import { learningRateAt } from './optimizers.js';
import { SllTrainer } from './sll.js';
import type { Trainer } from './trainer.js';

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

export interface BatchInfo {
  epoch: number;
  batch: number;
  batches: number;
  step: number;
  /** Mean per-unit stats of this epoch so far; reads from the device, so call it sparingly. */
  running(): { loss: number; accuracy: number }[];
}

export interface FitCallbacks {
  onEpochBegin?(epoch: number, batches: number): void;
  onBatchEnd?(info: BatchInfo): void;
  onEpochEnd?(epoch: number, metrics: UnitEpochMetrics[], evaluation: Evaluation): void;
}

export interface FitResult {
  metrics: UnitEpochMetrics[];
  evaluation: Evaluation;
  /** Seconds spent in training steps (evaluation excluded). */
  trainSeconds: number;
  samplesPerSecond: number;
}

/** The network of `o`, with its projection heads, and the BP classifier when `o.method` is bp. */
export function buildModel(o: RunOptions, inputShape: readonly number[], numClasses: number): HeadedNetwork {
  const network = buildNetwork(o, inputShape, numClasses);
  return attachHeads(o.method === 'bp' ? withClassifier(network, mixSeed(o.seed, 3)) : network, o);
}

export function makeTrainer(model: HeadedNetwork, o: RunOptions): Trainer {
  return o.method === 'sll' ? new SllTrainer(model, o) : new BpTrainer(model.network, o);
}

export async function fit(
  model: HeadedNetwork,
  data: DataSplits,
  o: RunOptions,
  callbacks: FitCallbacks = {},
): Promise<FitResult> {
  const trainer = makeTrainer(model, o);
  const { train, test } = data;
  const perEpoch = numBatches(train, { batchSize: o.batchSize });
  const metrics: UnitEpochMetrics[] = [];
  let evaluation: Evaluation | null = null;
  let trainSeconds = 0;
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      trainer.setEpoch(epoch);
      callbacks.onEpochBegin?.(epoch, perEpoch);
      let sums: tf.Tensor2D = tf.zeros([trainer.statRows, 4]);
      let seen = 0;
      const started = performance.now();
      const augment = o.cropPadding > 0 ? { cropPadding: o.cropPadding } : undefined;
      let b = 0;
      for (const batch of batches(train, { batchSize: o.batchSize, shuffle: true, seed: o.seed, epoch, augment })) {
        const step = epoch * perEpoch + b;
        const stats = tf.tidy(() =>
          trainer.step(tf.tensor(batch.x, [batch.n, ...train.shape]), tf.tensor1d(batch.y, 'int32'), step),
        );
        const next = tf.add(sums, tf.mul(stats, [[batch.n, batch.n, batch.n, 1]])) as tf.Tensor2D;
        tf.dispose([sums, stats]);
        sums = next;
        seen += batch.n;
        b++;
        const n = seen;
        callbacks.onBatchEnd?.({
          epoch,
          batch: b,
          batches: perEpoch,
          step,
          running: () => rows(sums).map((r) => ({ loss: r[2] / n, accuracy: r[3] / n })),
        });
        // Let signals and timers through on long epochs.
        if (b % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      const epochSeconds = (performance.now() - started) / 1000;
      trainSeconds += epochSeconds;
      const epochSums = rows(sums);
      sums.dispose();
      evaluation = evaluate(model, test, { ensemble: o.ensemble });
      const lambdas = trainer instanceof SllTrainer ? trainer.currentLambdas : null;
      const lr = learningRateAt(o, epoch);
      const epochMetrics = epochSums.map((r, u) => ({
        epoch: epoch + 1,
        unit: u + 1,
        prediction_loss: r[0] / seen,
        alignment_loss: r[1] / seen,
        loss: r[2] / seen,
        train_accuracy: r[3] / seen,
        test_accuracy: evaluation!.unitAccuracy[u],
        lambda: lambdas ? lambdas[u] : null,
        lr,
        epoch_seconds: epochSeconds,
      }));
      metrics.push(...epochMetrics);
      callbacks.onEpochEnd?.(epoch, epochMetrics, evaluation);
    }
  } finally {
    trainer.dispose();
  }
  return {
    metrics,
    evaluation: evaluation!,
    trainSeconds,
    samplesPerSecond: (train.size * o.epochs) / trainSeconds,
  };
}

function rows(t: tf.Tensor2D): number[][] {
  return t.arraySync();
}
