/**
 * The SLL local step (paper section 3.3). For every unit i, in order, on the same minibatch:
 *   h_i = f_i(sg(h_{i-1})),  v_i = (M_i ⊙ R_i) h_i / sqrt(d'),
 *   L_i = CE(v_i, y) + lambda_i * mean_b -log BC(softmax(v_i), softmax(sg(v_{i-1})))     (eq. 5)
 * and unit i's own optimizer updates only unit i's weights from grad L_i. No gradient crosses a unit
 * boundary, so unit i+1 sees h_i from unit i's weights before unit i's update on this minibatch, and
 * only h_{i-1}, v_{i-1} and one unit's activations are alive at a time: memory is flat in depth.
 */
import * as tf from '@tensorflow/tfjs';
import { applyUnit, unitVariables } from '../models/network.js';
import { stopGradient } from '../objectives/stop-gradient.js';
import { unitLoss } from '../objectives/unit-loss.js';
import { unitLambdas, type RunOptions } from '../options.js';
import type { HeadedNetwork } from './model.js';
import { learningRateAt, makeOptimizer, setLearningRate } from './optimizers.js';
import type { Trainer } from './trainer.js';

export type SllOptions = Pick<RunOptions, 'optimizer' | 'lr' | 'lrSchedule' | 'epochs' | 'momentum' | 'lambda'> & {
  /** Per-epoch override of lambda_i (the paper's lambda_i may follow a schedule). */
  lambdaSchedule?: (epoch: number, unit: number, lambda: number) => number;
};

export class SllTrainer implements Trainer {
  /** One optimizer per unit: each sees only its unit's variables. */
  readonly optimizers: tf.Optimizer[];
  readonly statRows: number;
  private lambdas: number[];

  constructor(
    readonly model: HeadedNetwork,
    readonly options: SllOptions,
  ) {
    const units = model.network.units;
    this.optimizers = units.map(() => makeOptimizer(options));
    this.statRows = units.length;
    this.lambdas = unitLambdas(options.lambda, units.length);
  }

  setEpoch(epoch: number): void {
    const lr = learningRateAt(this.options, epoch);
    this.optimizers.forEach((o) => setLearningRate(o, lr));
    const base = unitLambdas(this.options.lambda, this.statRows);
    const schedule = this.options.lambdaSchedule;
    this.lambdas = base.map((l, i) => (schedule ? schedule(epoch, i, l) : l));
  }

  /** The lambda_i in force for each unit. */
  get currentLambdas(): readonly number[] {
    return this.lambdas;
  }

  step(x: tf.Tensor, labels: tf.Tensor1D, step: number): tf.Tensor2D {
    const { network, heads, inputHead } = this.model;
    return tf.tidy(() => {
      const targets = tf.oneHot(labels, network.spec.numClasses).toFloat() as tf.Tensor2D;
      let h = x;
      let parent: tf.Tensor2D | null = inputHead ? inputHead.project(x) : null;
      const stats: tf.Tensor1D[] = [];
      for (const unit of network.units) {
        const i = unit.index;
        let out!: { h: tf.Tensor; v: tf.Tensor2D; stats: tf.Tensor1D };
        const { grads } = tf.variableGrads(() => {
          const hi = applyUnit(unit, stopGradient(h), true);
          const vi = heads[i].project(hi, step);
          const loss = unitLoss(vi, targets, parent, this.lambdas[i]);
          const correct = tf.sum(tf.cast(tf.equal(tf.argMax(vi, 1), labels), 'float32'));
          out = {
            h: tf.keep(hi),
            v: tf.keep(vi),
            stats: tf.keep(tf.stack([loss.prediction, loss.alignment, loss.total, correct]) as tf.Tensor1D),
          };
          return loss.total;
        }, unitVariables(unit));
        this.optimizers[i].applyGradients(grads);
        tf.dispose(grads);
        // Drop h_{i-1} and v_{i-1} now rather than at the end of the step, or memory grows with depth.
        if (h !== x) h.dispose();
        parent?.dispose();
        h = out.h;
        parent = out.v;
        stats.push(out.stats);
      }
      // Kept tensors outlive tidy: release the last unit's outputs and the per-unit rows by hand.
      if (h !== x) h.dispose();
      parent?.dispose();
      const table = tf.stack(stats) as tf.Tensor2D;
      tf.dispose(stats);
      return table;
    });
  }

  dispose(): void {
    this.optimizers.forEach((o) => o.dispose());
  }
}
