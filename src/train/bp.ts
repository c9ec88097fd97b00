/**
 * The backprop baseline: the same units plus a trainable linear classifier, trained end to end on
 * CE(classifier(h_L), y) by one optimizer over all weights.
 */
import * as tf from '@tensorflow/tfjs';
import { predictionLoss } from '../objectives/unit-loss.js';
import { classify, networkVariables, type Network } from '../models/network.js';
import type { BpStrategy } from './config.js';
import { learningRateAt, makeOptimizer, setLearningRate } from './optimizers.js';
import type { EpochSchedule, Trainer } from './trainer.js';

/** The BP strategy: one loss at the classifier, one optimizer over every weight. */
export class BpTrainer implements Trainer {
  readonly optimizers: readonly tf.Optimizer[];
  readonly statRows = 1;

  /** Trains `network` (which needs its classifier: withClassifier) with `strategy` over `epochs` epochs. */
  constructor(
    readonly network: Network,
    readonly strategy: BpStrategy,
    readonly epochs: number,
  ) {
    if (!network.classifier) throw new Error('the BP baseline needs a network with a classifier (withClassifier)');
    this.optimizers = [makeOptimizer(strategy)];
  }

  setEpoch(epoch: number): EpochSchedule {
    const lr = learningRateAt(this.strategy, epoch, this.epochs);
    setLearningRate(this.optimizers[0], lr);
    return { lrs: [lr], lambdas: null };
  }

  step(x: tf.Tensor, labels: tf.Tensor1D, step: number): tf.Tensor2D {
    return tf.tidy(() => {
      const targets = tf.oneHot(labels, this.network.spec.numClasses).toFloat() as tf.Tensor2D;
      let stats!: tf.Tensor1D;
      const { grads } = tf.variableGrads(() => {
        const logits = classify(this.network, x, true, step);
        const loss = predictionLoss(logits, targets);
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
        stats = tf.keep(tf.stack([loss, tf.zeros([]), loss, correct]) as tf.Tensor1D);
        return loss;
      }, networkVariables(this.network));
      this.optimizers[0].applyGradients(grads);
      tf.dispose(grads);
      const table = tf.expandDims(stats, 0) as tf.Tensor2D;
      stats.dispose();
      return table;
    });
  }

  /** Frees the optimizer's state. */
  dispose(): void {
    this.optimizers[0].dispose();
  }
}
