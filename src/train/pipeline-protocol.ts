/** The messages between the pipeline's main thread and its stage workers (Node worker_threads). */
import type { MessagePort } from 'node:worker_threads';
import type { SllStrategy } from './config.js';
import type { OptimizerState } from './optimizers.js';
import type { ProjectionHeadConfig } from '../objectives/projection.js';

/** How every stage trains and where it runs: plain data, the same for all stages. */
export interface StageRun {
  /** The SLL strategy (an optimizer or schedule given as a function cannot cross to a worker). */
  strategy: SllStrategy;
  epochs: number;
  /** The tfjs backend each worker uses (its own tfjs instance). */
  backend: string;
  /** BLAS threads per stage (native backend). */
  threads: number | null;
}

/** A layer as plain data: its registered class and configuration (tfjs serialization). */
export interface LayerJson {
  className: string;
  config: Record<string, unknown>;
}

/** What a stage worker starts from (its workerData). */
export interface StageInit {
  run: StageRun;
  /** The network's layers, its input shape, K, and how its layers form units. */
  layers: LayerJson[];
  inputShape: readonly number[];
  numClasses: number;
  unitLayerCounts: readonly number[];
  stage: number;
  first: number;
  end: number;
  /** Per layer of the stage's units, in order, its weights' values (getWeights order). */
  weights: Float32Array[][];
  /** Per unit of the stage, its head's configuration and matrix R. */
  heads: { config: ProjectionHeadConfig; projection: Float32Array }[];
  /** The input's head (the first unit's parent), for the first stage when the strategy has one. */
  inputHead: { config: ProjectionHeadConfig; projection: Float32Array } | null;
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

/** Requests from the main thread to a stage. */
export type StageRequest = { type: 'epoch'; epoch: number } | { type: 'state' } | { type: 'restore'; optimizers: OptimizerState[] };

/** Replies of a stage to the main thread. */
export type StageReply =
  | { type: 'ready'; stage: number }
  | { type: 'stats'; stage: number; step: number; rows: number[][] }
  | { type: 'epoch'; stage: number; lrs: number[]; lambdas: number[] }
  | { type: 'state'; stage: number; weights: Float32Array[][]; optimizers: OptimizerState[]; tensors: number }
  | { type: 'restored'; stage: number }
  | { type: 'error'; who: string; message: string; stack: string };
