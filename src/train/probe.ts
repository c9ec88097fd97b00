/**
 * Linear probes: a trained linear readout of the features each unit's head reads, beside the head's fixed R_i.
 * Where a probe beats its head, the unit's representation holds more than the fixed readout uses; where the
 * probes of later units stop rising, the representation itself has stopped gaining (the information that
 * layer-wise training discards cannot be read back by any readout). It works alike for SLL and BP networks,
 * so both can be compared layer by layer: a network without heads (BP) is read as default heads would read
 * it (a conv unit's maps pooled to at most CONV_PROJ_DIM features, a dense unit's output whole, not centred).
 */
import * as tf from '@tensorflow/tfjs';
import { batchSource, type TrainingData } from '../data/source.js';
import { applyUnit } from '../models/network.js';
import { predictionLoss } from '../objectives/unit-loss.js';
import { resolveSllStrategy } from './config.js';
import { attachHeads, disposeHeads, requireHeaded, type HeadedNetwork } from './model.js';

/** Options of {@link linearProbe}. */
export interface ProbeOptions {
  /** Passes over the training data. Default 5. */
  epochs?: number;
  /** Examples per batch. Default 256. */
  batchSize?: number;
  /** Adam's learning rate. Default 1e-3. */
  lr?: number;
  /** Seed of the batch order. Default 0. */
  seed?: number;
  /** K, for integer labels from tensors or a tf.data.Dataset. */
  numClasses?: number;
  /** Called after each epoch with the epoch (1-based) and every probe's training accuracy in it. */
  onEpoch?: (epoch: number, trainAccuracy: number[]) => void;
}

/** What {@link linearProbe} measures, per unit. */
export interface ProbeResult {
  /** Each unit's probe, test accuracy 0..1. */
  unitAccuracy: number[];
  /** Each unit's probe, training accuracy in its last epoch (while it trained). */
  unitTrainAccuracy: number[];
  /** Features each probe reads (those of the unit's head: pooled, centred as the head centres). */
  unitFeatures: number[];
}

/**
 * Trains a softmax regression W_i, b_i (zeros at the start, Adam) on the features f_i that unit i's head reads,
 * for every unit at once, on `train` with the network fixed (inference mode), and scores it on `test`.
 */
export async function linearProbe(model: HeadedNetwork, train: TrainingData, test: TrainingData, opts: ProbeOptions = {}): Promise<ProbeResult> {
  requireHeaded(model, 'linearProbe');
  const { network } = model;
  const K = network.spec.numClasses;
  const epochs = opts.epochs ?? 5;
  const batchSize = opts.batchSize ?? 256;
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`linearProbe: epochs must be a positive integer (got ${epochs})`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`linearProbe: batchSize must be a positive integer (got ${batchSize})`);
  // Only the heads' features are read (pooling and centring), never their R.
  const readers = model.heads.length > 0 ? null : attachHeads(network, resolveSllStrategy({}, network.units.length));
  const heads = readers?.heads ?? model.heads;
  const numClasses = opts.numClasses ?? K;
  const features = (x: tf.Tensor): tf.Tensor2D[] => {
    let h = x;
    return network.units.map((unit) => {
      h = applyUnit(unit, h, false);
      return heads[unit.index].features(h);
    });
  };
  const unitFeatures = tf.tidy(() => network.units.map((u) => heads[u.index].features(tf.zeros([1, ...u.outputShape])).shape[1]));
  // Variables escape tidy; the zeros they start from do not.
  const weights = tf.tidy(() => unitFeatures.map((d) => tf.variable(tf.zeros([d, K]))));
  const biases = tf.tidy(() => unitFeatures.map(() => tf.variable(tf.zeros([K]))));
  const optimizers = unitFeatures.map(() => tf.train.adam(opts.lr ?? 1e-3));
  const logits = (f: tf.Tensor2D, i: number) => tf.add(tf.matMul(f, weights[i]), biases[i]) as tf.Tensor2D;
  // [units]: how many of the batch each probe classifies correctly.
  const hitsOf = (f: tf.Tensor2D[], labels: tf.Tensor1D) =>
    tf.stack(f.map((fi, i) => tf.sum(tf.cast(tf.equal(tf.argMax(logits(fi, i), 1), labels), 'float32'))));
  try {
    const trainSource = batchSource(train, { numClasses, normalization: model.normalization });
    let unitTrainAccuracy: number[] = [];
    for (let epoch = 0; epoch < epochs; epoch++) {
      let correct = tf.zeros([unitFeatures.length]);
      let seen = 0;
      for await (const batch of trainSource.batches({ batchSize, shuffle: true, seed: opts.seed ?? 0, epoch })) {
        const f = tf.tidy(() => features(batch.x));
        const targets = tf.tidy(() => tf.oneHot(batch.labels, K).toFloat() as tf.Tensor2D);
        // Training accuracy of the probes as they stand before this batch's update.
        const next = tf.tidy(() => tf.add(correct, hitsOf(f, batch.labels)));
        f.forEach((fi, i) => optimizers[i].minimize(() => predictionLoss(logits(fi, i), targets), false, [weights[i], biases[i]]));
        tf.dispose([correct, ...f, targets, batch.x, batch.labels]);
        correct = next;
        seen += batch.n;
      }
      const counts = await correct.data();
      correct.dispose();
      if (seen === 0) throw new Error('linearProbe: the training data hold no examples');
      unitTrainAccuracy = Array.from(counts, (c) => c / seen);
      opts.onEpoch?.(epoch + 1, unitTrainAccuracy);
    }
    let correct = tf.zeros([unitFeatures.length]);
    let seen = 0;
    for await (const batch of batchSource(test, { numClasses, normalization: model.normalization }).batches({ batchSize: 500, shuffle: false, seed: 0, epoch: 0 })) {
      const next = tf.tidy(() => tf.add(correct, hitsOf(features(batch.x), batch.labels)));
      tf.dispose([correct, batch.x, batch.labels]);
      correct = next;
      seen += batch.n;
    }
    const counts = await correct.data();
    correct.dispose();
    if (seen === 0) throw new Error('linearProbe: the test data hold no examples');
    return { unitAccuracy: Array.from(counts, (c) => c / seen), unitTrainAccuracy, unitFeatures };
  } finally {
    tf.dispose([...weights, ...biases]);
    optimizers.forEach((o) => o.dispose());
    if (readers) disposeHeads(readers);
  }
}
