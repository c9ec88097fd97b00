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
