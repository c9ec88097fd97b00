/**
 * Layer-parallel SLL: the units split into contiguous stages, each on its own worker thread
 * (pipeline-worker.ts), minibatches flowing through them like an assembly line. SLL has no backward
 * locking, so stage s can take minibatch t+1 while stage s+1 takes t, and each unit still sees exactly
 * what it sees in sequential training: h_{i-1}(t) from unit i-1's weights before its own update on t.
 * At most `depth` minibatches are in flight, which bounds every stage's queue (backpressure).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { StepBatch, StepEngine } from './engine.js';
import type { HeadedNetwork } from './model.js';
import type { OptimizerState } from './optimizers.js';
import type { StageInit, StageReply, StageRequest, StageRun, StepMessage } from './pipeline-protocol.js';
import type { StageRange } from './stages.js';
import type { EpochSchedule } from './trainer.js';

/** A stage failed (crashed, exited, or threw): the message names it and its units. */
export class StageError extends Error {
  override name = 'StageError';
}

/** Steps on worker threads, one per stage, minibatches flowing through them. */
export class PipelineEngine implements StepEngine {
  readonly statRows: number;
  private readonly listeners = new Map<string, (m: StageReply) => void>();
  private onStats: ((m: Extract<StageReply, { type: 'stats' }>) => void) | null = null;
  private failure: Error | null = null;
  /** The most minibatches that were in flight at once (never more than the queue depth). */
  peakInFlight = 0;
  /** Rejecters of the waits in progress: a failure rejects them all. */
  private readonly waiting = new Set<(e: Error) => void>();

  private constructor(
    private readonly model: HeadedNetwork,
    /** One worker thread per stage. */
    readonly workers: readonly Worker[],
    private readonly ranges: StageRange[],
    /** Minibatches in flight at most. */
    readonly depth: number,
  ) {
    this.statRows = model.network.units.length;
    workers.forEach((w, s) => {
      w.on('message', (m: StageReply) => this.dispatch(m));
      const who = `stage ${s + 1} (units ${ranges[s].first + 1}-${ranges[s].end})`;
      w.on('error', (e) => this.fail(new StageError(`pipeline ${who} crashed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new StageError(`pipeline ${who} exited with code ${code}`));
      });
    });
  }

  /** Records the first failure and rejects every wait in progress. */
  private fail(e: Error): void {
    this.failure ??= e;
    for (const reject of this.waiting) reject(this.failure);
    this.waiting.clear();
  }

  /**
   * `p`, or the pipeline's failure if that comes first. Not Promise.race with one long-lived failure
   * promise: every race stays attached to a promise that never settles, and keeps its result (a sync's
   * weights and optimizer states) alive for good, ~90 MB an epoch on a 4x1024 MLP.
   */
  private guarded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting.add(reject);
      p.then(
        (v) => {
          this.waiting.delete(reject);
          resolve(v);
        },
        (e: Error) => {
          this.waiting.delete(reject);
          reject(e);
        },
      );
    });
  }

  /** Starts one worker per stage, each holding its units' current weights and heads. */
  static async start(model: HeadedNetwork, run: StageRun, ranges: StageRange[]): Promise<PipelineEngine> {
    const { network, heads, inputHead } = model;
    const { strategy } = run;
    for (const key of ['optimizer', 'lrSchedule', 'lambda'] as const) {
      if (typeof strategy[key] === 'function') throw new Error(`a pipeline's stages are workers: give ${key} by name or value, not as a function`);
    }
    const layers = network.units.flatMap((u) => u.layers);
    const layerJson = layers.map((l) => ({ className: l.getClassName(), config: l.getConfig() as Record<string, unknown> }));
    const channels = ranges.slice(1).map(() => new MessageChannel());
    const headData = (h: (typeof heads)[number]) => ({ config: h.config, projection: (h.projection.dataSync() as Float32Array).slice() });
    const workers = ranges.map((range, s) => {
      const units = network.units.slice(range.first, range.end);
      const init: StageInit = {
        run,
        layers: layerJson,
        inputShape: network.spec.inputShape,
        numClasses: network.spec.numClasses,
        unitLayerCounts: network.spec.unitLayerCounts,
        stage: s,
        ...range,
        weights: units.flatMap((u) => u.layers.map((l) => l.getWeights().map((w) => (w.dataSync() as Float32Array).slice()))),
        heads: units.map((u) => headData(heads[u.index])),
        inputHead: s === 0 && inputHead ? headData(inputHead) : null,
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
    return this.guarded(Promise.all(replies));
  }

  async setEpoch(epoch: number): Promise<EpochSchedule> {
    const replies = await this.all('epoch', () => ({ type: 'epoch', epoch }));
    return { lrs: replies.flatMap((r) => r.lrs), lambdas: replies.flatMap((r) => r.lambdas) };
  }

  async run(
    batches: AsyncIterable<StepBatch>,
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
    const nextCompletion = () => this.guarded(new Promise<void>((resolve) => (wake = resolve)));
    // Hands finished steps to onStep in step order.
    const flush = async () => {
      while (inFlight.length > 0 && inFlight[0].reported === this.workers.length) {
        const done = inFlight.shift()!;
        await onStep(done.step, done.n, done.rows.flatMap((r) => r!));
      }
    };
    const drain = async () => {
      await flush();
      while (inFlight.length > 0) {
        await nextCompletion();
        await flush();
      }
    };
    try {
      try {
        for await (const b of batches) {
          // Copies of the batch, transferred to the first stage; the backend's own storage stays put.
          const h = (b.x.dataSync() as Float32Array).slice();
          const y = Int32Array.from(b.labels.dataSync());
          tf.dispose([b.x, b.labels]);
          await flush();
          while (inFlight.length >= this.depth) {
            await nextCompletion();
            await flush();
          }
          if (!more()) break;
          inFlight.push({ step: b.step, n: b.n, rows: this.workers.map(() => null), reported: 0 });
          this.peakInFlight = Math.max(this.peakInFlight, inFlight.length);
          const message: StepMessage = { type: 'step', step: b.step, n: b.n, h, shape: [b.n, ...this.model.network.spec.inputShape], v: null, y };
          this.workers[0].postMessage(message, [h.buffer as ArrayBuffer, y.buffer as ArrayBuffer]);
        }
      } catch (e) {
        // The batches failed (e.g. an unreadable image): finish the steps in flight, so that the weights
        // match the steps reported and a checkpoint can be written, then pass the error on.
        if (!this.failure) await drain();
        throw e;
      }
      await drain();
    } finally {
      this.onStats = null;
    }
  }

  private cachedOptimizers: OptimizerState[] | null = null;
  /** Each stage's live tensors at the last sync (flat over a run: a stage leaks nothing). */
  stageTensors: number[] = [];

  async sync(): Promise<void> {
    const replies = await this.all('state', () => ({ type: 'state' }));
    replies.forEach((r, s) => {
      const layers = this.model.network.units.slice(this.ranges[s].first, this.ranges[s].end).flatMap((u) => u.layers);
      tf.tidy(() => layers.forEach((l, k) => l.setWeights(l.getWeights().map((w, j) => tf.tensor(r.weights[k][j], w.shape)))));
    });
    this.cachedOptimizers = replies.flatMap((r) => r.optimizers);
    this.stageTensors = replies.map((r) => r.tensors);
  }

  /** {@inheritDoc StepEngine.optimizerStates} */
  async optimizerStates(): Promise<OptimizerState[]> {
    if (!this.cachedOptimizers) await this.sync();
    const states = this.cachedOptimizers!;
    this.cachedOptimizers = null;
    return states;
  }

  /** {@inheritDoc StepEngine.restoreOptimizerStates} */
  async restoreOptimizerStates(states: OptimizerState[]): Promise<void> {
    if (states.length !== this.statRows) throw new Error(`checkpoint has ${states.length} optimizers, the pipeline ${this.statRows}`);
    await this.all('restored', (s) => ({ type: 'restore', optimizers: states.slice(this.ranges[s].first, this.ranges[s].end) }));
  }

  /** Ends every worker. */
  async dispose(): Promise<void> {
    this.failure ??= new StageError('the pipeline was shut down');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
