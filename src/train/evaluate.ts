/**
 * Test accuracy of every unit's head (no mask: R_i as sampled), of the model's prediction (the last head,
 * or the BP classifier), and optionally of the ensemble of heads (mean of their softmaxes).
 */
import * as tf from '@tensorflow/tfjs';
import { batches, type ImageDataset } from '../data/index.js';
import { applyUnit } from '../models/network.js';
import type { HeadedNetwork } from './model.js';

export interface Evaluation {
  /** Accuracy of the model's prediction, 0..1. */
  accuracy: number;
  /** Accuracy of each unit's head (SLL); for BP the classifier's, its only head. */
  unitAccuracy: number[];
  /** Accuracy of the mean of the heads' softmaxes, when asked for (SLL only). */
  ensembleAccuracy: number | null;
}

export function evaluate(
  model: HeadedNetwork,
  data: ImageDataset,
  opts: { batchSize?: number; ensemble?: boolean } = {},
): Evaluation {
  const { network, heads } = model;
  const bp = network.classifier != null;
  const rows = bp ? 1 : network.units.length;
  const ensemble = (opts.ensemble ?? false) && !bp;
  let correct = tf.zeros([rows + (ensemble ? 1 : 0)]);
  for (const batch of batches(data, { batchSize: opts.batchSize ?? 500 })) {
    const next = tf.tidy(() => {
      const x = tf.tensor(batch.x, [batch.n, ...data.shape]);
      const labels = tf.tensor1d(batch.y, 'int32');
      const hits = (logits: tf.Tensor) => tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
      let counts: tf.Tensor[];
      if (bp) {
        counts = [hits(network.model.apply(x, { training: false }) as tf.Tensor)];
      } else {
        let h: tf.Tensor = x;
        const logits = network.units.map((unit) => {
          h = applyUnit(unit, h, false);
          return heads[unit.index].project(h);
        });
        counts = logits.map(hits);
        if (ensemble) counts.push(hits(tf.addN(logits.map((v) => tf.softmax(v)))));
      }
      return tf.add(correct, tf.stack(counts));
    });
    correct.dispose();
    correct = next;
  }
  const acc = Array.from(correct.dataSync(), (c) => c / data.size);
  correct.dispose();
  const unitAccuracy = acc.slice(0, rows);
  return {
    accuracy: unitAccuracy[rows - 1],
    unitAccuracy,
    ensembleAccuracy: ensemble ? acc[rows] : null,
  };
}

/** How much of each unit's output h_i is in use (ReLU units that never fire carry nothing to the next unit). */
export interface UnitActivity {
  /** Fraction of h_i's entries that are exactly 0, over the data set. */
  zeroFraction: number;
  /** Channels (last axis of h_i) nonzero for at least one example and position. */
  activeChannels: number;
  channels: number;
}

/** UnitActivity of every unit on `data` (inference mode), for SLL and BP networks alike. */
export function unitActivity(model: HeadedNetwork, data: ImageDataset, opts: { batchSize?: number } = {}): UnitActivity[] {
  const { units } = model.network;
  const channels = units.map((u) => u.outputShape[u.outputShape.length - 1]);
  let zeros = tf.zeros([units.length]);
  let channelMax = units.map((_, i) => tf.zeros([channels[i]]));
  for (const batch of batches(data, { batchSize: opts.batchSize ?? 500 })) {
    const [nextZeros, ...nextMax] = tf.tidy(() => {
      let h: tf.Tensor = tf.tensor(batch.x, [batch.n, ...data.shape]);
      const counts: tf.Tensor[] = [];
      const maxima = units.map((unit, i) => {
        h = applyUnit(unit, h, false);
        counts.push(tf.sum(tf.cast(tf.equal(h, 0), 'float32')));
        return tf.maximum(channelMax[i], tf.max(tf.abs(tf.reshape(h, [-1, channels[i]])), 0));
      });
      return [tf.add(zeros, tf.stack(counts)), ...maxima];
    });
    tf.dispose([zeros, ...channelMax]);
    zeros = nextZeros;
    channelMax = nextMax;
  }
  const zeroCounts = zeros.dataSync();
  const result = units.map((unit, i) => ({
    zeroFraction: zeroCounts[i] / (data.size * unit.outputShape.reduce((a, b) => a * b, 1)),
    activeChannels: (channelMax[i].dataSync() as Float32Array).filter((m) => m > 0).length,
    channels: channels[i],
  }));
  tf.dispose([zeros, ...channelMax]);
  return result;
}
