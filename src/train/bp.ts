/**
 * The backprop baseline: the same units plus a trainable linear classifier, trained end to end on
 * CE(classifier(h_L), y) by one optimizer over all weights.
 */
import * as tf from '@tensorflow/tfjs';
import { unitLossStats } from '../objectives/unit-loss.js';
import { classify, networkVariables, regularization, type Network } from '../models/network.js';
import type { BpStrategy } from './config.js';
import { disposeOptimizer, learningRateAt, makeOptimizer, setLearningRate } from './optimizers.js';
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
      let stats!: tf.Tensor1D;
      const { grads } = tf.variableGrads(() => {
        // CE at the classifier: eq. (5) without a parent, so its stats row is [CE, 0, CE, correct] and a
        // backend's fused loss kernel serves BP too.
        const loss = unitLossStats(classify(this.network, x, true, step), labels, null, 0);
        stats = loss.stats;
        const penalty = regularization(this.network.units.flatMap((u) => u.layers));
        return penalty ? (tf.add(loss.total, penalty) as tf.Scalar) : loss.total;
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
    disposeOptimizer(this.optimizers[0]);
  }
}
