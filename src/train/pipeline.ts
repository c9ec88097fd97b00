/**
 * Layer-parallel SLL: the units split into contiguous stages, minibatches flowing through them like an
 * assembly line (the protocol and why it equals sequential training: pipeline-protocol.ts). The stages
 * run on worker threads of this process (`PipelineEngine.start`) or anywhere a transport reaches, e.g.
 * processes on other machines joined by Redis Streams (redis-stages.ts). At most `depth` minibatches are
 * in flight, which bounds every stage's queue (backpressure).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { StepBatch, StepEngine } from './engine.js';
import type { HeadedNetwork } from './model.js';
import type { OptimizerState } from './optimizers.js';
import { stageName, type ChainMessage, type HeadData, type StageInit, type StageReply, type StageRun, type StepMessage } from './pipeline-protocol.js';
import type { ThreadStageInit } from './pipeline-worker.js';
import { checkStageRanges, type StageRange } from './stages.js';
import type { EpochSchedule } from './trainer.js';

/** A stage failed (crashed, exited, threw, or stopped answering): the message names it and its units. */
export class StageError extends Error {
  override name = 'StageError';
}

/**
 * What carries the chain's messages to stage 1 and brings every stage's replies back to the coordinator.
 * Delivery may repeat a message or a reply (the protocol ignores repeats), never reorder the chain.
 */
export interface StageTransport {
  /** Sends `m` to stage 1. */
  send(m: ChainMessage): Promise<void>;
  /** Starts delivering replies to `onReply` and a failure of the transport or of a stage to `onFailure`. */
  listen(onReply: (r: StageReply) => void, onFailure: (e: Error) => void): void;
  /** Ends the stages and the transport: after a 'stop' message when the run ended normally, else `failure` says why. */
  close(failure?: Error | null): Promise<void>;
  /** Why no reply can arrive now (e.g. the broker is unreachable), or null: named when a stage times out. */
  unreachable?(): string | null;
}

/** How a PipelineEngine watches its stages. */
export interface PipelineOptions {
  /** Minibatches in flight at most (default: twice the stages). */
  depth?: number;
  /** A wait with no reply from the awaited stage for this long fails, naming it (default: no limit). */
  stageTimeoutMs?: number | null;
  /** Told when a stage reports ready again after the start (a restarted stage). */
  onStageRestart?: (name: string, seq: number) => void;
}

/** Steps on pipeline stages (worker threads, or processes behind a transport), minibatches flowing through them. */
export class PipelineEngine implements StepEngine {
  readonly statRows: number;
  /** Minibatches in flight at most. */
  readonly depth: number;
  private readonly listeners = new Map<string, (m: StageReply) => void>();
  private onStats: ((m: Extract<StageReply, { type: 'stats' }>) => void) | null = null;
  private failure: Error | null = null;
  /** The most minibatches that were in flight at once (never more than the queue depth). */
  peakInFlight = 0;
  /** Rejecters of the waits in progress: a failure rejects them all. */
  private readonly waiting = new Set<(e: Error) => void>();
  private seq = 0;
  private readonly ready = new Set<number>();
  /** Per wait in progress: the stages whose answer it needs, and since when it waits. */
  private readonly awaited = new Set<{ stages: () => number[]; since: number }>();
  private lastReply: number[];
  private readonly watchdog: ReturnType<typeof setInterval> | null;
  private readonly names: string[];

  constructor(
    private readonly model: HeadedNetwork,
    /** What carries the messages to the stages. */
    readonly transport: StageTransport,
    private readonly ranges: readonly StageRange[],
    private readonly options: PipelineOptions = {},
  ) {
    this.statRows = model.network.units.length;
    checkStageRanges(ranges, this.statRows);
    this.depth = options.depth ?? 2 * ranges.length;
    if (!(Number.isInteger(this.depth) && this.depth >= 1)) throw new RangeError(`depth must be an integer >= 1, got ${this.depth}`);
    const timeoutMs = options.stageTimeoutMs;
    if (timeoutMs != null && !(timeoutMs > 0)) throw new RangeError(`stageTimeoutMs must be > 0 (null: no limit), got ${timeoutMs}`);
    this.names = ranges.map((r, s) => stageName(s, r));
    this.lastReply = ranges.map(() => Date.now());
    transport.listen(
      (m) => this.dispatch(m),
      (e) => this.fail(e),
    );
    const timeout = options.stageTimeoutMs;
    this.watchdog = timeout
      ? setInterval(() => {
          for (const a of this.awaited) {
            const missing = a.stages();
            if (missing.some((s) => Date.now() - Math.max(a.since, this.lastReply[s]) > timeout)) {
              // Messages flow down the chain: the first stage that owes an answer holds up the ones after it.
              const first = Math.min(...missing);
              const after = missing.length > 1 ? ' (the stages after it wait on it)' : '';
              const cause = this.transport.unreachable?.();
              return this.fail(new StageError(`pipeline ${this.names[first]} did not answer within ${Math.round(timeout / 1000)} s${cause ? `: ${cause}` : after}`));
            }
          }
        }, Math.min(1000, timeout))
      : null;
    this.watchdog?.unref();
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
  private guarded<T>(p: Promise<T>, stages: () => number[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting.add(reject);
      const awaited = { stages, since: Date.now() };
      this.awaited.add(awaited);
      p.then(
        (v) => {
          this.waiting.delete(reject);
          this.awaited.delete(awaited);
          resolve(v);
        },
        (e: Error) => {
          this.waiting.delete(reject);
          this.awaited.delete(awaited);
          reject(e);
        },
      );
    });
  }

  /**
   * Starts one worker thread per stage, each holding its units' current weights and heads, and waits
   * until every stage is ready; if one fails to start, every worker is ended and the error names it.
   */
  static async start(model: HeadedNetwork, run: StageRun, ranges: StageRange[], options: PipelineOptions = {}): Promise<PipelineEngine> {
    const transport = new ThreadTransport(stageInits(model, run, ranges));
    let engine: PipelineEngine;
    try {
      engine = new PipelineEngine(model, transport, ranges, options);
    } catch (e) {
      await transport.close();
      throw e;
    }
    try {
      await engine.started();
    } catch (e) {
      await engine.dispose();
      throw e;
    }
    return engine;
  }

  /** Resolves once every stage has reported ready. */
  started(): Promise<void> {
    const pending = () => this.ranges.map((_, s) => s).filter((s) => !this.ready.has(s));
    return this.guarded(
      Promise.all(pending().map((s) => new Promise<void>((resolve) => this.listeners.set(`ready:${s}`, () => resolve())))).then(() => {}),
      pending,
    );
  }

  private dispatch(m: StageReply): void {
    if (m.type !== 'error') this.lastReply[m.stage] = Date.now();
    if (m.type === 'error') {
      this.fail(new StageError(`pipeline ${m.who} failed: ${m.message}`));
    } else if (m.type === 'stats') {
      this.onStats?.(m);
    } else if (m.type === 'ready') {
      if (this.ready.has(m.stage)) this.options.onStageRestart?.(this.names[m.stage], m.seq);
      this.ready.add(m.stage);
      const listener = this.listeners.get(`ready:${m.stage}`);
      this.listeners.delete(`ready:${m.stage}`);
      listener?.(m);
    } else {
      // Keyed by the message answered: a repeated reply finds no listener and is dropped.
      const key = `${m.seq}:${m.stage}`;
      const listener = this.listeners.get(key);
      this.listeners.delete(key);
      listener?.(m);
    }
  }

  /** Sends `message` down the chain and waits for every stage's reply to it, of type `type`. */
  private async all<T extends StageReply['type']>(type: T, message: (seq: number) => ChainMessage): Promise<Extract<StageReply, { type: T }>[]> {
    const seq = ++this.seq;
    const got = new Set<number>();
    const replies = this.ranges.map(
      (_, s) =>
        new Promise<Extract<StageReply, { type: T }>>((resolve) => {
          this.listeners.set(`${seq}:${s}`, (m) => {
            if (m.type !== type) return this.fail(new StageError(`pipeline ${this.names[s]} answered ${m.type} to a ${type} request`));
            got.add(s);
            resolve(m as Extract<StageReply, { type: T }>);
          });
        }),
    );
    const answered = this.guarded(Promise.all(replies), () => this.ranges.map((_, s) => s).filter((s) => !got.has(s)));
    // If the send fails, `answered` is never awaited: its rejection (the same failure) must not go unhandled.
    answered.catch(() => {});
    await this.guarded(this.transport.send(message(seq)), () => [0]);
    return answered;
  }

  async setEpoch(epoch: number): Promise<EpochSchedule> {
    const replies = await this.all('epoch', (seq) => ({ type: 'epoch', seq, epoch }));
    return { lrs: replies.flatMap((r) => r.lrs), lambdas: replies.flatMap((r) => r.lambdas) };
  }

  async run(
    batches: AsyncIterable<StepBatch>,
    onStep: (step: number, n: number, rows: number[][]) => Promise<void>,
    more: () => boolean,
  ): Promise<void> {
    if (this.failure) throw this.failure;
    const stages = this.ranges.length;
    const inFlight: { step: number; n: number; rows: (number[][] | null)[]; reported: number }[] = [];
    let wake: (() => void) | null = null;
    this.onStats = (m) => {
      const entry = inFlight.find((e) => e.step === m.step);
      if (!entry || entry.rows[m.stage]) return; // a repeat
      entry.rows[m.stage] = m.rows;
      entry.reported++;
      wake?.();
    };
    // The stages the oldest step in flight still waits for.
    const missing = () => (inFlight.length === 0 ? [] : inFlight[0].rows.flatMap((r, s) => (r ? [] : [s])));
    const nextCompletion = () => this.guarded(new Promise<void>((resolve) => (wake = resolve)), missing);
    // Hands finished steps to onStep in step order.
    const flush = async () => {
      while (inFlight.length > 0 && inFlight[0].reported === stages) {
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
          // Copies of the batch, handed to the first stage; the backend's own storage stays put.
          const h = (b.x.dataSync() as Float32Array).slice();
          const y = Int32Array.from(b.labels.dataSync());
          tf.dispose([b.x, b.labels]);
          await flush();
          while (inFlight.length >= this.depth) {
            await nextCompletion();
            await flush();
          }
          if (!more()) break;
          inFlight.push({ step: b.step, n: b.n, rows: this.ranges.map(() => null), reported: 0 });
          this.peakInFlight = Math.max(this.peakInFlight, inFlight.length);
          const message: StepMessage = { type: 'step', seq: ++this.seq, step: b.step, n: b.n, h, shape: [b.n, ...this.model.network.spec.inputShape], v: null, y };
          await this.guarded(this.transport.send(message), () => [0]);
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
    const replies = await this.all('state', (seq) => ({ type: 'state', seq }));
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
    await this.all('restored', (seq) => ({ type: 'restore', seq, optimizers: states }));
  }

  /** Ends every stage: a run that ended normally tells them to stop, then the transport closes; `reason`: why it did not. */
  async dispose(reason?: Error): Promise<void> {
    if (reason) this.fail(reason);
    if (this.watchdog) clearInterval(this.watchdog);
    const failure = this.failure;
    if (!this.failure) {
      try {
        await this.transport.send({ type: 'stop', seq: ++this.seq });
      } catch {
        // the transport is gone: nothing to stop
      }
    }
    this.failure ??= new StageError('the pipeline was shut down');
    await this.transport.close(failure);
  }
}

/** Each stage's init: the network's layers and spec, and the stage's units' current weights and heads. */
export function stageInits(model: HeadedNetwork, run: StageRun, ranges: readonly StageRange[]): StageInit[] {
  const { network, heads, inputHead } = model;
  checkStageRanges(ranges, network.units.length);
  const { strategy } = run;
  for (const key of ['optimizer', 'lrSchedule', 'lambda'] as const) {
    if (typeof strategy[key] === 'function') throw new Error(`a pipeline's stages run apart: give ${key} by name or value, not as a function`);
  }
  const layers = network.units.flatMap((u) => u.layers);
  const layerJson = layers.map((l) => ({ className: l.getClassName(), config: l.getConfig() as Record<string, unknown> }));
  const headData = (h: (typeof heads)[number]): HeadData => ({ config: h.config, projection: (h.projection.dataSync() as Float32Array).slice() });
  return ranges.map((range, s) => {
    const units = network.units.slice(range.first, range.end);
    return {
      run,
      layers: layerJson,
      inputShape: network.spec.inputShape,
      numClasses: network.spec.numClasses,
      unitLayerCounts: network.spec.unitLayerCounts,
      stage: s,
      stages: ranges.length,
      ...range,
      weights: units.flatMap((u) => u.layers.map((l) => l.getWeights().map((w) => (w.dataSync() as Float32Array).slice()))),
      heads: units.map((u) => headData(heads[u.index])),
      inputHead: s === 0 && inputHead ? headData(inputHead) : null,
    };
  });
}

/** Stages on worker threads of this process, each passing the chain to the next over a MessagePort. */
export class ThreadTransport implements StageTransport {
  /** One worker thread per stage. */
  readonly workers: Worker[];
  private readonly names: string[];

  constructor(inits: StageInit[]) {
    this.names = inits.map((init) => stageName(init.stage, init));
    const channels = inits.slice(1).map(() => new MessageChannel());
    this.workers = inits.map((init, s) => {
      const data: ThreadStageInit = {
        init,
        upstream: s > 0 ? channels[s - 1].port2 : null,
        downstream: s < inits.length - 1 ? channels[s].port1 : null,
      };
      const ports = [data.upstream, data.downstream].filter((p): p is MessagePort => p != null);
      return new Worker(new URL('./pipeline-worker.js', import.meta.url), { workerData: data, transferList: ports });
    });
  }

  async send(m: ChainMessage): Promise<void> {
    const transfer = m.type === 'step' ? [m.h.buffer as ArrayBuffer, m.y.buffer as ArrayBuffer] : [];
    this.workers[0].postMessage(m, transfer);
  }

  listen(onReply: (r: StageReply) => void, onFailure: (e: Error) => void): void {
    this.workers.forEach((w, s) => {
      w.on('message', onReply);
      w.on('error', (e) => onFailure(new StageError(`pipeline ${this.names[s]} crashed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) onFailure(new StageError(`pipeline ${this.names[s]} exited with code ${code}`));
      });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
