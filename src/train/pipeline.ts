/**
 * Layer-parallel SLL: the units split into contiguous stages, each on its own worker thread
 * (pipeline-worker.ts), minibatches flowing through them like an assembly line. SLL has no backward
 * locking, so stage s can take minibatch t+1 while stage s+1 takes t, and each unit still sees exactly
 * what it sees in sequential training: h_{i-1}(t) from unit i-1's weights before its own update on t.
 * At most `depth` minibatches are in flight, which bounds every stage's queue (backpressure).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { unitVariables } from '../models/network.js';
import type { RunOptions } from '../options.js';
import type { StepBatch, StepEngine } from './engine.js';
import type { HeadedNetwork } from './model.js';
import type { OptimizerState } from './optimizers.js';
import { SllTrainer } from './sll.js';

export interface StageRange {
  first: number;
  end: number;
}

export interface StageInit {
  options: RunOptions;
  inputShape: readonly number[];
  numClasses: number;
  stage: number;
  first: number;
  end: number;
  /** Per unit of the stage, its variables' values. */
  weights: Float32Array[][];
  /** Per unit of the stage, its projection matrix. */
  heads: Float32Array[];
  upstream: MessagePort | null;
  downstream: MessagePort | null;
}

/** A minibatch between stages: h_{first-1} (the input x for stage 1), its logits v (null: none yet), labels. */
export interface StepMessage {
  type: 'step';
  step: number;
  n: number;
  h: Float32Array;
  shape: number[];
  v: Float32Array | null;
  y: Int32Array;
}

export type StageRequest = { type: 'epoch'; epoch: number } | { type: 'state' } | { type: 'restore'; optimizers: OptimizerState[] };

export type StageReply =
  | { type: 'ready'; stage: number }
  | { type: 'stats'; stage: number; step: number; rows: number[][] }
  | { type: 'epoch'; stage: number; lambdas: number[] }
  | { type: 'state'; stage: number; weights: Float32Array[][]; optimizers: OptimizerState[] }
  | { type: 'restored'; stage: number }
  | { type: 'error'; who: string; message: string; stack: string };

/** Contiguous ranges of `units` units over `stages` stages, as even in count as can be. */
export function evenStages(units: number, stages: number): StageRange[] {
  return Array.from({ length: stages }, (_, s) => ({
    first: Math.round((s * units) / stages),
    end: Math.round(((s + 1) * units) / stages),
  }));
}

/** Contiguous ranges over `stages` stages that minimise the costliest stage (exhaustive over cut points). */
export function balancedStages(costs: readonly number[], stages: number): StageRange[] {
  const n = costs.length;
  const prefix = costs.reduce<number[]>((p, c) => [...p, p[p.length - 1] + c], [0]);
  // best[s][i]: the smallest max-stage cost splitting units 0..i-1 into s stages; cut[s][i]: its last cut.
  const best = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(Infinity));
  const cut = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(0));
  best[0][0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let i = s; i <= n; i++) {
      for (let j = s - 1; j < i; j++) {
        const cost = Math.max(best[s - 1][j], prefix[i] - prefix[j]);
        if (cost < best[s][i]) {
          best[s][i] = cost;
          cut[s][i] = j;
        }
      }
    }
  }
  const ranges: StageRange[] = [];
  for (let s = stages, i = n; s > 0; s--) {
    ranges.unshift({ first: cut[s][i], end: i });
    i = cut[s][i];
  }
  return ranges;
}

/** Seconds per local step of each unit, measured on a throwaway copy of the network and random data. */
export function measureUnitCosts(model: HeadedNetwork, o: RunOptions, inputShape: readonly number[], repeats = 3): number[] {
  const units = model.network.units;
  return units.map((unit) => {
    const trainer = new SllTrainer(model, { ...o, lr: 0 }, { first: unit.index, end: unit.index + 1 });
    const shape = unit.index === 0 ? inputShape : units[unit.index - 1].outputShape;
    const times: number[] = [];
    for (let r = 0; r <= repeats; r++) {
      const started = performance.now();
      tf.tidy(() => {
        const x = tf.randomNormal([o.batchSize, ...shape]);
        const labels = tf.zeros([o.batchSize], 'int32') as tf.Tensor1D;
        const out = trainer.stepUnits(x, null, labels, 0);
        out.stats.dataSync();
        tf.dispose([out.h, out.v, out.stats]);
      });
      if (r > 0) times.push(performance.now() - started);
    }
    trainer.dispose();
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] / 1000;
  });
}

export class StageError extends Error {}

export class PipelineEngine implements StepEngine {
  readonly statRows: number;
  private readonly listeners = new Map<string, (m: StageReply) => void>();
  private onStats: ((m: Extract<StageReply, { type: 'stats' }>) => void) | null = null;
  private failure: Error | null = null;
  /** The most minibatches that were in flight at once (never more than the queue depth). */
  peakInFlight = 0;
  private readonly failed: Promise<never>;
  private fail!: (e: Error) => void;

  private constructor(
    private readonly model: HeadedNetwork,
    /** One worker thread per stage. */
    readonly workers: readonly Worker[],
    private readonly ranges: StageRange[],
    /** Minibatches in flight at most. */
    readonly depth: number,
  ) {
    this.statRows = model.network.units.length;
    this.failed = new Promise<never>((_, reject) => {
      this.fail = (e) => {
        this.failure ??= e;
        reject(this.failure);
      };
    });
    this.failed.catch(() => {});
    workers.forEach((w, s) => {
      w.on('message', (m: StageReply) => this.dispatch(m));
      const who = `stage ${s + 1} (units ${ranges[s].first + 1}-${ranges[s].end})`;
      w.on('error', (e) => this.fail(new StageError(`pipeline ${who} crashed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new StageError(`pipeline ${who} exited with code ${code}`));
      });
    });
  }

  /** Starts one worker per stage, each holding its units' current weights and heads. */
  static async start(model: HeadedNetwork, o: RunOptions, ranges: StageRange[]): Promise<PipelineEngine> {
    const { network, heads } = model;
    const channels = ranges.slice(1).map(() => new MessageChannel());
    const workers = ranges.map((range, s) => {
      const units = network.units.slice(range.first, range.end);
      const init: StageInit = {
        options: o,
        inputShape: network.spec.inputShape,
        numClasses: network.spec.numClasses,
        stage: s,
        ...range,
        weights: units.map((u) => unitVariables(u).map((v) => v.dataSync() as Float32Array)),
        heads: units.map((u) => heads[u.index].projection.dataSync() as Float32Array),
        upstream: s > 0 ? channels[s - 1].port2 : null,
        downstream: s < ranges.length - 1 ? channels[s].port1 : null,
      };
      const ports = [init.upstream, init.downstream].filter((p): p is MessagePort => p != null);
      return new Worker(new URL('./pipeline-worker.js', import.meta.url), { workerData: init, transferList: ports });
    });
    const engine = new PipelineEngine(model, workers, ranges, 2 * ranges.length);
    await engine.all('ready');
    return engine;
  }

  private dispatch(m: StageReply): void {
    if (m.type === 'error') {
      this.fail(new StageError(`pipeline ${m.who} failed: ${m.message}`));
    } else if (m.type === 'stats') {
      this.onStats?.(m);
    } else {
      const key = `${m.type}:${m.stage}`;
      const listener = this.listeners.get(key);
      this.listeners.delete(key);
      listener?.(m);
    }
  }

  /** Sends `request` (if any) to every stage and waits for each stage's reply of type `type`. */
  private all<T extends StageReply['type']>(type: T, request?: (stage: number) => StageRequest): Promise<Extract<StageReply, { type: T }>[]> {
    const replies = this.workers.map(
      (w, s) =>
        new Promise<Extract<StageReply, { type: T }>>((resolve) => {
          this.listeners.set(`${type}:${s}`, resolve as (m: StageReply) => void);
          if (request) w.postMessage(request(s));
        }),
    );
    return Promise.race([Promise.all(replies), this.failed]);
  }

  async setEpoch(epoch: number): Promise<readonly number[] | null> {
    const replies = await this.all('epoch', () => ({ type: 'epoch', epoch }));
    return replies.flatMap((r) => r.lambdas);
  }

  async run(
    batches: Iterable<StepBatch>,
    onStep: (step: number, n: number, rows: number[][]) => Promise<void>,
    more: () => boolean,
  ): Promise<void> {
    if (this.failure) throw this.failure;
    const inFlight: { step: number; n: number; rows: (number[][] | null)[]; reported: number }[] = [];
    let wake: (() => void) | null = null;
    this.onStats = (m) => {
      const entry = inFlight.find((e) => e.step === m.step);
      if (!entry) return;
      entry.rows[m.stage] = m.rows;
      entry.reported++;
      wake?.();
    };
    const nextCompletion = () => Promise.race([new Promise<void>((resolve) => (wake = resolve)), this.failed]);
    // Hands finished steps to onStep in step order.
    const flush = async () => {
      while (inFlight.length > 0 && inFlight[0].reported === this.workers.length) {
        const done = inFlight.shift()!;
        await onStep(done.step, done.n, done.rows.flatMap((r) => r!));
      }
    };
    try {
      for (const b of batches) {
        await flush();
        while (inFlight.length >= this.depth) {
          await nextCompletion();
          await flush();
        }
        if (!more()) break;
        inFlight.push({ step: b.step, n: b.n, rows: this.workers.map(() => null), reported: 0 });
        this.peakInFlight = Math.max(this.peakInFlight, inFlight.length);
        const message: StepMessage = { type: 'step', step: b.step, n: b.n, h: b.x, shape: [b.n, ...this.model.network.spec.inputShape], v: null, y: b.y };
        this.workers[0].postMessage(message, [b.x.buffer as ArrayBuffer, b.y.buffer as ArrayBuffer]);
      }
      await flush();
      while (inFlight.length > 0) {
        await nextCompletion();
        await flush();
      }
    } finally {
      this.onStats = null;
    }
  }

  private cachedOptimizers: OptimizerState[] | null = null;

  async sync(): Promise<void> {
    const replies = await this.all('state', () => ({ type: 'state' }));
    replies.forEach((r, s) => {
      const units = this.model.network.units.slice(this.ranges[s].first, this.ranges[s].end);
      units.forEach((u, k) => unitVariables(u).forEach((v, j) => v.assign(tf.tensor(r.weights[k][j], v.shape))));
    });
    this.cachedOptimizers = replies.flatMap((r) => r.optimizers);
  }

  async optimizerStates(): Promise<OptimizerState[]> {
    if (!this.cachedOptimizers) await this.sync();
    const states = this.cachedOptimizers!;
    this.cachedOptimizers = null;
    return states;
  }

  async restoreOptimizerStates(states: OptimizerState[]): Promise<void> {
    if (states.length !== this.statRows) throw new Error(`checkpoint has ${states.length} optimizers, the pipeline ${this.statRows}`);
    await this.all('restored', (s) => ({ type: 'restore', optimizers: states.slice(this.ranges[s].first, this.ranges[s].end) }));
  }

  async dispose(): Promise<void> {
    this.failure ??= new StageError('the pipeline was shut down');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
