/**
 * The backprop baseline: the same units plus a trainable linear classifier, trained end to end on
 * CE(classifier(h_L), y) by one optimizer over all weights.
 */
import * as tf from '@tensorflow/tfjs';
import { predictionLoss } from '../objectives/unit-loss.js';
import type { RunOptions } from '../options.js';
import type { Network } from '../models/network.js';
import { learningRateAt, makeOptimizer, setLearningRate } from './optimizers.js';
import type { Trainer } from './trainer.js';

export type BpOptions = Pick<RunOptions, 'optimizer' | 'lr' | 'lrSchedule' | 'epochs' | 'momentum'>;

export class BpTrainer implements Trainer {
  readonly optimizers: readonly tf.Optimizer[];
  readonly statRows = 1;

  constructor(
    readonly network: Network,
    readonly options: BpOptions,
  ) {
    if (!network.classifier) throw new Error('the BP baseline needs a network with a classifier (withClassifier)');
    this.optimizers = [makeOptimizer(options)];
  }

  setEpoch(epoch: number): void {
    setLearningRate(this.optimizers[0], learningRateAt(this.options, epoch));
  }

  step(x: tf.Tensor, labels: tf.Tensor1D): tf.Tensor2D {
    return tf.tidy(() => {
      const targets = tf.oneHot(labels, this.network.spec.numClasses).toFloat() as tf.Tensor2D;
      let stats!: tf.Tensor1D;
      const { grads } = tf.variableGrads(() => {
        const logits = this.network.model.apply(x, { training: true }) as tf.Tensor2D;
        const loss = predictionLoss(logits, targets);
        const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
        stats = tf.keep(tf.stack([loss, tf.zeros([]), loss, correct]) as tf.Tensor1D);
        return loss;
      }, this.network.model.trainableWeights.map((w) => w.read() as tf.Variable));
      this.optimizers[0].applyGradients(grads);
      tf.dispose(grads);
      const table = tf.expandDims(stats, 0) as tf.Tensor2D;
      stats.dispose();
      return table;
    });
  }

  dispose(): void {
    this.optimizers[0].dispose();
  }
}
