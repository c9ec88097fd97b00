/**
 * One pipeline stage, whatever carries its messages: the units first..end-1 of the network with their
 * heads and optimizers, handling the chain's messages (pipeline-protocol.ts) in `seq` order. The
 * transports (worker threads in pipeline-worker.ts, Redis Streams in redis-stages.ts) only move the
 * messages and replies this class takes and gives.
 */
import * as tf from '@tensorflow/tfjs';
import { layerFromJson } from '../models/clone.js';
import { networkFromModel, type Unit } from '../models/network.js';
import { ProjectionHead } from '../objectives/projection.js';
import { optimizerState, restoreOptimizerState, type OptimizerState } from './optimizers.js';
import { stageName, type ChainMessage, type HeadData, type StageInit, type StageReply, type StepMessage } from './pipeline-protocol.js';
import { SllTrainer } from './sll.js';

/** What a stage is after the messages up to `seq`: what its own checkpoint saves. */
export interface StageSnapshot {
  /** The last message handled. */
  seq: number;
  /** The epoch of the last schedule set (-1: none yet). */
  epoch: number;
  /** Per layer of the stage's units, its weights' values. */
  weights: Float32Array[][];
  optimizers: OptimizerState[];
}

/** What handling one message gives: the message for the next stage (null: none) and the replies. */
export interface StageOutput {
  forward: ChainMessage | null;
  replies: StageReply[];
}

const headFrom = (h: HeadData, numClasses: number) =>
  new ProjectionHead(h.config, tf.tensor2d(h.projection, [h.projection.length / numClasses, numClasses]));

/** A stage's units and their training state; build one with `Stage.create` once tfjs's backend is set. */
export class Stage {
  /** The last message handled (0: none). */
  seq = 0;
  private epoch = -1;
  readonly name: string;

  private constructor(
    readonly init: StageInit,
    private readonly units: Unit[],
    private readonly trainer: SllTrainer,
  ) {
    this.name = stageName(init.stage, init);
  }

  /** The stage `init` describes, its units holding init's weights and heads. */
  static create(init: StageInit): Stage {
    const layers = init.layers.map((l, i) => layerFromJson(l.className, l.config as tf.serialization.ConfigDict, i === 0 ? init.inputShape : undefined));
    const network = networkFromModel(tf.sequential({ layers }), { numClasses: init.numClasses, grouping: init.unitLayerCounts });
    // Only this stage's units get weights and heads; the others are never stepped here.
    const own = network.units.slice(init.first, init.end);
    const stage = (trainer: SllTrainer) => new Stage(init, own, trainer);
    const heads: ProjectionHead[] = [];
    own.forEach((u, k) => (heads[u.index] = headFrom(init.heads[k], init.numClasses)));
    const inputHead = init.inputHead ? headFrom(init.inputHead, init.numClasses) : null;
    const s = stage(new SllTrainer({ network, heads, inputHead, normalization: null }, init.run.strategy, init.run.epochs, { first: init.first, end: init.end }));
    s.setWeights(init.weights);
    return s;
  }

  private setWeights(weights: Float32Array[][]): void {
    tf.tidy(() =>
      this.units.flatMap((u) => u.layers).forEach((l, k) => l.setWeights(l.getWeights().map((w, j) => tf.tensor(weights[k][j], w.shape)))),
    );
  }

  private weights(): Float32Array[][] {
    return this.units.flatMap((u) => u.layers.map((l) => l.getWeights().map((w) => (w.dataSync() as Float32Array).slice())));
  }

  /** Handles `m`, which must follow the last message handled; a message already handled gives nothing. */
  async handle(m: ChainMessage): Promise<StageOutput> {
    if (m.seq <= this.seq) return { forward: null, replies: [] };
    const { stage } = this.init;
    let out: StageOutput;
    if (m.type === 'step') {
      out = this.step(m);
    } else if (m.type === 'epoch') {
      const { lrs, lambdas } = this.trainer.setEpoch(m.epoch);
      this.epoch = m.epoch;
      out = { forward: m, replies: [{ type: 'epoch', stage, seq: m.seq, lrs, lambdas: lambdas ?? [] }] };
    } else if (m.type === 'state') {
      const optimizers = await Promise.all(this.trainer.optimizers.map(optimizerState));
      out = { forward: m, replies: [{ type: 'state', stage, seq: m.seq, weights: this.weights(), optimizers, tensors: tf.memory().numTensors }] };
    } else if (m.type === 'restore') {
      const own = m.optimizers.slice(this.init.first, this.init.end);
      for (const [k, opt] of this.trainer.optimizers.entries()) await restoreOptimizerState(opt, own[k]);
      out = { forward: m, replies: [{ type: 'restored', stage, seq: m.seq }] };
    } else {
      out = { forward: m, replies: [] };
    }
    this.seq = m.seq;
    if (this.init.stage === this.init.stages - 1) out.forward = null;
    return out;
  }

  private step(m: StepMessage): StageOutput {
    const { numClasses, first, stage } = this.init;
    // tf.tidy returns tensors only: handed a typed array it would walk every element looking for tensors.
    const r = tf.tidy(() => {
      const labels = tf.tensor1d(m.y, 'int32');
      const input = tf.tensor(m.h, m.shape);
      const parent = m.v == null ? (first === 0 ? this.trainer.inputParent(input) : null) : tf.tensor2d(m.v, [m.n, numClasses]);
      return this.trainer.stepUnits(input, parent, labels, m.step);
    });
    const replies: StageReply[] = [{ type: 'stats', stage, seq: m.seq, step: m.step, rows: r.stats.arraySync() }];
    if (stage === this.init.stages - 1) {
      tf.dispose([r.h, r.v, r.stats]);
      return { forward: null, replies };
    }
    // Copies: the backend's own storage may be shared with other tensors, and a transport may move them.
    const h = (r.h.dataSync() as Float32Array).slice();
    const v = (r.v.dataSync() as Float32Array).slice();
    const forward: StepMessage = { type: 'step', seq: m.seq, step: m.step, n: m.n, h, shape: r.h.shape, v, y: m.y };
    tf.dispose([r.h, r.v, r.stats]);
    return { forward, replies };
  }

  /** The stage's state after the last message handled. */
  async snapshot(): Promise<StageSnapshot> {
    return { seq: this.seq, epoch: this.epoch, weights: this.weights(), optimizers: await Promise.all(this.trainer.optimizers.map(optimizerState)) };
  }

  /** Returns the stage to `s` (a snapshot of a stage of the same run and range). */
  async restore(s: StageSnapshot): Promise<void> {
    this.setWeights(s.weights);
    for (const [k, opt] of this.trainer.optimizers.entries()) await restoreOptimizerState(opt, s.optimizers[k]);
    if (s.epoch >= 0) this.trainer.setEpoch(s.epoch);
    this.epoch = s.epoch;
    this.seq = s.seq;
  }
}
