/**
 * Accuracy and loss of every unit's head (no mask: R_i as sampled), of the model's prediction (the last
 * head, or the BP classifier), and optionally of the ensemble of heads (mean of their softmaxes).
 */
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../data/errors.js';
import { checkKnownKeys } from './config.js';
import { yieldToEventLoop } from './event-loop.js';
import { batchSource, checkExampleShape, type BatchSource, type TrainingData } from '../data/source.js';
import { applyUnit, classify } from '../models/network.js';
import { predictionLoss } from '../objectives/unit-loss.js';
import { requireHeaded, type HeadedNetwork } from './model.js';

/** What {@link evaluate} measures. */
export interface Evaluation {
  /** Accuracy of the model's prediction, 0..1. */
  accuracy: number;
  /** Mean cross-entropy of the model's prediction. */
  loss: number;
  /** Accuracy of each unit's head (SLL); for BP the classifier's, its only head. */
  unitAccuracy: number[];
  /** Mean cross-entropy of each unit's head (SLL); for BP the classifier's. */
  unitLoss: number[];
  /** Accuracy of the mean of the heads' softmaxes, when asked for (SLL only). */
  ensembleAccuracy: number | null;
  /** Examples evaluated. */
  examples: number;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Examples per batch for tensors and image data sets. Default 500. */
  batchSize?: number;
  /** Also the ensemble of heads (SLL). Default false. */
  ensemble?: boolean;
  /** K: the model's, which it may repeat; another value is refused (DataError). */
  numClasses?: number;
}

/** Every head's accuracy and loss on `data` (inference mode). */
export async function evaluate(model: HeadedNetwork, data: TrainingData, opts: EvaluateOptions = {}): Promise<Evaluation> {
  requireHeaded(model, 'evaluate');
  checkKnownKeys(opts, ['batchSize', 'ensemble', 'numClasses']);
  const { network, heads } = model;
  const K = network.spec.numClasses;
  if (opts.numClasses !== undefined && opts.numClasses !== K) throw new DataError(`evaluate: numClasses ${opts.numClasses} disagrees with the model's ${K} classes`);
  const source: BatchSource = batchSource(data, { numClasses: K, normalization: model.normalization });
  checkExampleShape(source, network.spec.inputShape, 'evaluate');
  const bp = network.classifier != null;
  const rows = bp ? 1 : network.units.length;
  const ensemble = (opts.ensemble ?? false) && !bp;
  // Per row: [correct, summed loss]; the ensemble's row counts only correct.
  let sums = tf.zeros([rows + (ensemble ? 1 : 0), 2]);
  let examples = 0;
  try {
    for await (const batch of source.batches({ batchSize: opts.batchSize ?? 500, shuffle: false, seed: 0, epoch: 0 })) {
      let next: tf.Tensor;
      try {
        next = tf.tidy(() => {
          const targets = tf.oneHot(batch.labels, network.spec.numClasses).toFloat() as tf.Tensor2D;
          const score = (logits: tf.Tensor2D) =>
            tf.stack([
              tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), batch.labels), 'float32')),
              tf.mul(predictionLoss(logits, targets), batch.n),
            ]);
          let logits: tf.Tensor2D[];
          if (bp) {
            logits = [classify(network, batch.x, false)];
          } else {
            let h: tf.Tensor = batch.x;
            logits = network.units.map((unit) => {
              h = applyUnit(unit, h, false);
              return heads[unit.index].project(h);
            });
          }
          const scores = logits.map(score);
          if (ensemble) scores.push(score(tf.log(tf.div(tf.addN(logits.map((v) => tf.softmax(v))), logits.length)) as tf.Tensor2D));
          return tf.add(sums, tf.stack(scores));
        });
      } finally {
        tf.dispose([batch.x, batch.labels]);
      }
      sums.dispose();
      sums = next;
      examples += batch.n;
      await yieldToEventLoop();
    }
  } catch (e) {
    sums.dispose();
    throw e;
  }
  const values = (await sums.array()) as number[][];
  sums.dispose();
  if (examples === 0) throw new DataError('evaluate: the data hold no examples');
  const unitAccuracy = values.slice(0, rows).map((r) => r[0] / examples);
  const unitLoss = values.slice(0, rows).map((r) => r[1] / examples);
  return {
    accuracy: unitAccuracy[rows - 1],
    loss: unitLoss[rows - 1],
    unitAccuracy,
    unitLoss,
    ensembleAccuracy: ensemble ? values[rows][0] / examples : null,
    examples,
  };
}

/** How much of each unit's output h_i is in use (ReLU units that never fire carry nothing to the next unit). */
export interface UnitActivity {
  /** Fraction of h_i's entries that are exactly 0, over the data set. */
  zeroFraction: number;
  /** Channels (last axis of h_i) nonzero for at least one example and position. */
  activeChannels: number;
  /** Channels of h_i. */
  channels: number;
}

/** UnitActivity of every unit on `data` (inference mode), for SLL and BP networks alike. */
export async function unitActivity(model: HeadedNetwork, data: TrainingData, opts: { batchSize?: number } = {}): Promise<UnitActivity[]> {
  requireHeaded(model, 'unitActivity');
  checkKnownKeys(opts, ['batchSize']);
  const { units } = model.network;
  const source = batchSource(data, { numClasses: model.network.spec.numClasses, normalization: model.normalization });
  const channels = units.map((u) => u.outputShape[u.outputShape.length - 1]);
  let zeros = tf.zeros([units.length]);
  let channelMax = units.map((_, i) => tf.zeros([channels[i]]));
  let examples = 0;
  try {
    for await (const batch of source.batches({ batchSize: opts.batchSize ?? 500, shuffle: false, seed: 0, epoch: 0 })) {
      let next: tf.Tensor[];
      try {
        next = tf.tidy(() => {
          let h: tf.Tensor = batch.x;
          const counts: tf.Tensor[] = [];
          const maxima = units.map((unit, i) => {
            h = applyUnit(unit, h, false);
            counts.push(tf.sum(tf.cast(tf.equal(h, 0), 'float32')));
            return tf.maximum(channelMax[i], tf.max(tf.abs(tf.reshape(h, [-1, channels[i]])), 0));
          });
          return [tf.add(zeros, tf.stack(counts)), ...maxima];
        });
      } finally {
        tf.dispose([batch.x, batch.labels]);
      }
      tf.dispose([zeros, ...channelMax]);
      [zeros, ...channelMax] = next;
      examples += batch.n;
      await yieldToEventLoop();
    }
  } catch (e) {
    tf.dispose([zeros, ...channelMax]);
    throw e;
  }
  // Read asynchronously: the webgpu backend cannot read synchronously in Node.
  const zeroCounts = await zeros.data();
  const maxima = await Promise.all(channelMax.map((m) => m.data()));
  const result = units.map((unit, i) => ({
    zeroFraction: zeroCounts[i] / (examples * unit.outputShape.reduce((a, b) => a * b, 1)),
    activeChannels: (maxima[i] as Float32Array).filter((m) => m > 0).length,
    channels: channels[i],
  }));
  tf.dispose([zeros, ...channelMax]);
  return result;
}
