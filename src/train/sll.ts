/**
 * The SLL local step (paper section 3.3). For every unit i, in order, on the same minibatch:
 *   h_i = f_i(sg(h_{i-1})),  v_i = (M_i ⊙ R_i) h_i / sqrt(d'),
 *   L_i = CE(v_i, y) + lambda_i * mean_b -log BC(softmax(v_i), softmax(sg(v_{i-1})))     (eq. 5)
 * and unit i's own optimizer updates only unit i's weights from grad L_i. No gradient crosses a unit
 * boundary, so unit i+1 sees h_i from unit i's weights before unit i's update on this minibatch, and
 * only h_{i-1}, v_{i-1} and one unit's activations are alive at a time: memory is flat in depth.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelError, applyUnit, regularization, unitVariables, type Unit } from '../models/network.js';
import { stopGradient } from '../objectives/stop-gradient.js';
import { unitLossStats } from '../objectives/unit-loss.js';
import { ConfigError, perUnit, type SllStrategy } from './config.js';
import type { HeadedNetwork } from './model.js';
import { disposeOptimizer, learningRateAt, makeOptimizer, setLearningRate } from './optimizers.js';
import type { EpochSchedule, Trainer } from './trainer.js';

/** The SLL strategy: every unit trained on its own loss (eq. 5) by its own optimizer. */
export class SllTrainer implements Trainer {
  /** One optimizer per trained unit: each sees only its unit's variables. */
  readonly optimizers: tf.Optimizer[];
  readonly statRows: number;
  /** The units this trainer steps: all by default, a contiguous range for a pipeline stage. */
  readonly units: readonly Unit[];
  private lambdas: number[];

  /** Trains `model`'s units `range` (default all) with `strategy` over `epochs` epochs (the schedule's length). */
  constructor(
    readonly model: HeadedNetwork,
    readonly strategy: SllStrategy,
    readonly epochs: number,
    range: { first: number; end: number } = { first: 0, end: model.network.units.length },
  ) {
    this.units = model.network.units.slice(range.first, range.end);
    for (const u of this.units) {
      if (unitVariables(u).length === 0) {
        throw new ModelError(
          `unit ${u.index + 1} (${u.layers.map((l) => l.name).join(', ')}) has no trainable weights, and SLL trains each unit by its ` +
            'own loss: group its layers with a unit that has some (units), or make them trainable',
        );
      }
    }
    this.lambdas = this.lambdasAt(0);
    this.optimizers = this.units.map((u) => makeOptimizer(strategy, u.index));
    this.statRows = this.units.length;
  }

  setEpoch(epoch: number): EpochSchedule {
    const lrs = this.units.map((u) => learningRateAt(this.strategy, epoch, this.epochs, u.index));
    this.optimizers.forEach((o, i) => setLearningRate(o, lrs[i]));
    this.lambdas = this.lambdasAt(epoch);
    return { lrs, lambdas: [...this.lambdas] };
  }

  private lambdasAt(epoch: number): number[] {
    const { lambda } = this.strategy;
    return this.units.map((u) => {
      if (typeof lambda !== 'function') return perUnit(lambda, u.index);
      const value = lambda(epoch, u.index);
      if (!(Number.isFinite(value) && value >= 0)) throw new ConfigError('lambda', `returned ${value} for epoch ${epoch}, unit ${u.index}: it must be a number >= 0`);
      return value;
    });
  }

  /** The first unit's parent logits for input x: a fixed projection of x, or none. */
  inputParent(x: tf.Tensor): tf.Tensor2D | null {
    return this.model.inputHead ? this.model.inputHead.project(x) : null;
  }

  step(x: tf.Tensor, labels: tf.Tensor1D, step: number): tf.Tensor2D {
    return tf.tidy(() => {
      const out = this.stepUnits(x, this.inputParent(x), labels, step);
      tf.dispose([out.h, out.v]);
      return out.stats;
    });
  }

  /**
   * The local steps of this trainer's units, in order, from h_{first-1} and its logits v_{first-1}.
   * Returns the last unit's h and v (what the next unit, or pipeline stage, needs) and the stats rows.
   */
  stepUnits(
    input: tf.Tensor,
    inputParent: tf.Tensor2D | null,
    labels: tf.Tensor1D,
    step: number,
  ): { h: tf.Tensor; v: tf.Tensor2D; stats: tf.Tensor2D } {
    const { heads } = this.model;
    let h = input;
    let parent = inputParent;
    const stats: tf.Tensor1D[] = [];
    for (const [k, unit] of this.units.entries()) {
      const i = unit.index;
      let out!: { h: tf.Tensor; v: tf.Tensor2D; stats: tf.Tensor1D };
      const { grads } = tf.variableGrads(() => {
        const hi = applyUnit(unit, stopGradient(h), true, step);
        const vi = heads[i].project(hi, step);
        const loss = unitLossStats(vi, labels, parent, this.lambdas[k]);
        out = { h: tf.keep(hi), v: tf.keep(vi), stats: loss.stats };
        const penalty = regularization(unit.layers);
        return penalty ? (tf.add(loss.total, penalty) as tf.Scalar) : loss.total;
      }, unitVariables(unit));
      this.optimizers[k].applyGradients(grads);
      tf.dispose(grads);
      // Drop h_{i-1} and v_{i-1} now rather than at the end of the step, or memory grows with depth.
      if (h !== input) h.dispose();
      if (parent !== inputParent) parent?.dispose();
      h = out.h;
      parent = out.v;
      stats.push(out.stats);
    }
    const table = tf.stack(stats) as tf.Tensor2D;
    tf.dispose(stats);
    return { h, v: parent!, stats: table };
  }

  /** Frees every unit's optimizer state. */
  dispose(): void {
    this.optimizers.forEach(disposeOptimizer);
  }
}
