/**
 * The stage protocol of the layer-parallel pipeline, whatever carries it (worker threads' message ports,
 * or Redis Streams between processes and machines).
 *
 * The coordinator (the process that runs the fit loop) numbers every message it sends with `seq` and sends
 * them all to stage 1; each stage handles them in `seq` order and passes each one (a step with its own
 * output in place of its input) to the next stage, so every stage sees the same sequence: the epoch's
 * schedule before its steps, a state request after the steps it must cover. A stage answers the
 * coordinator with replies that carry the `seq` they answer. A stage ignores a message whose `seq` it has
 * handled, and the coordinator a reply it has had: a transport may deliver twice (a restarted stage
 * replays what its checkpoint did not cover), never out of order.
 *
 * Why the result is that of sequential training: unit i's step on minibatch t needs h_{i-1}(t) and
 * v_{i-1}(t), computed by unit i-1 before its own update on t, and nothing back from later units (no
 * backward locking). Each stage applies its units' updates in step order, so it computes exactly what
 * the sequential loop computes, while stage s works on t+1 as stage s+1 works on t.
 */
import type { SllStrategy } from './config.js';
import type { OptimizerState } from './optimizers.js';
import type { ProjectionHeadConfig } from '../objectives/projection.js';

/** How every stage trains and where it runs: plain data, the same for all stages. */
export interface StageRun {
  /** The SLL strategy (an optimizer or schedule given as a function cannot cross to a stage). */
  strategy: SllStrategy;
  epochs: number;
  /** The tfjs backend each stage uses (its own tfjs instance). */
  backend: string;
  /** BLAS threads per stage (native backend). */
  threads: number | null;
}

/** A layer as plain data: its registered class and configuration (tfjs serialization). */
export interface LayerJson {
  className: string;
  config: Record<string, unknown>;
}

/** A projection head as plain data. */
export interface HeadData {
  config: ProjectionHeadConfig;
  projection: Float32Array;
}

/** What a stage starts from: plain data (typed arrays inside), whatever the transport. */
export interface StageInit {
  run: StageRun;
  /** The network's layers, its input shape, K, and how its layers form units. */
  layers: LayerJson[];
  inputShape: readonly number[];
  numClasses: number;
  unitLayerCounts: readonly number[];
  stage: number;
  /** The pipeline's number of stages. */
  stages: number;
  first: number;
  end: number;
  /** Per layer of the stage's units, in order, its weights' values (getWeights order). */
  weights: Float32Array[][];
  /** Per unit of the stage, its head's configuration and matrix R. */
  heads: HeadData[];
  /** The input's head (the first unit's parent), for the first stage when the strategy has one. */
  inputHead: HeadData | null;
}

/** A minibatch between stages: h_{first-1} (the input x for stage 1), its logits v (null: none yet), labels. */
export interface StepMessage {
  type: 'step';
  seq: number;
  step: number;
  n: number;
  h: Float32Array;
  shape: number[];
  v: Float32Array | null;
  y: Int32Array;
}

/** Everything that flows down the chain of stages, in `seq` order. */
export type ChainMessage =
  | StepMessage
  /** Set the learning rates and lambdas of `epoch`. */
  | { type: 'epoch'; seq: number; epoch: number }
  /** Reply with the stage's weights and optimizer states as they are after every earlier message. */
  | { type: 'state'; seq: number }
  /** Take these optimizer states (every unit's; each stage takes its own). */
  | { type: 'restore'; seq: number; optimizers: OptimizerState[] }
  /** The run is over: pass it on and end. */
  | { type: 'stop'; seq: number };

/** A stage's replies to the coordinator; `seq` is the message answered (a ready stage: the last it handled). */
export type StageReply =
  | { type: 'ready'; stage: number; seq: number }
  | { type: 'stats'; stage: number; seq: number; step: number; rows: number[][] }
  | { type: 'epoch'; stage: number; seq: number; lrs: number[]; lambdas: number[] }
  | { type: 'state'; stage: number; seq: number; weights: Float32Array[][]; optimizers: OptimizerState[]; tensors: number }
  | { type: 'restored'; stage: number; seq: number }
  | { type: 'error'; stage: number; who: string; message: string; stack: string };

/** How stage `s` of `range` is named in messages. */
export function stageName(stage: number, range: { first: number; end: number }): string {
  return `stage ${stage + 1} (units ${range.first + 1}-${range.end})`;
}
