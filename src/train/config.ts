/**
 * How a network is trained, kept apart from what the network is and where its data come from (as tfjs
 * keeps `fit`'s options apart from the model): the SLL strategy (the paper's knobs, section 3.3), the BP
 * baseline's, and the loop's (epochs, batches). The defaults are the documented recipe (README, "Default
 * recipe"); `resolveSllStrategy`, `resolveBpStrategy` and `resolveLoopConfig` fill them in and check every
 * value at the boundary, with a message naming the option.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  MASK_SCALES,
  PROJECTION_DISTRIBUTIONS,
  PROJECTION_SCALES,
  type MaskScale,
  type ProjectionDistribution,
  type ProjectionScale,
} from '../objectives/projection.js';
import { TOKEN_POOLINGS, type TokenPooling } from '../models/tokens.js';

/** The optimizers available by name: Adam (PyTorch's epsilon, 1e-8) and SGD with momentum. */
export type OptimizerName = 'adam' | 'sgd';
/** Every {@link OptimizerName}. */
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd'];
/**
 * An optimizer by name, or a factory that makes a fresh `tf.train` optimizer for a unit (given its
 * 0-based index; BP's single optimizer is unit 0). SLL calls it once per unit: each unit has its own.
 * Its learning rate is set at every epoch from `lr` and `lrSchedule`, as for the named ones: the rate the
 * factory gives it is replaced (for a fixed rate r, give `lr: r, lrSchedule: 'constant'`).
 */
export type OptimizerSpec = OptimizerName | ((unit: number) => tf.Optimizer);

/** Learning-rate schedules by name: constant, or cosine-annealed from the peak to 0 over the epochs. */
export type LrScheduleName = 'constant' | 'cosine';
/** Every {@link LrScheduleName}. */
export const LR_SCHEDULES: readonly LrScheduleName[] = ['constant', 'cosine'];
/**
 * The learning rate of a unit in an epoch: a schedule by name, or a function of the epoch and unit (both
 * 0-based), the unit's peak rate and the number of epochs.
 */
export type LrSchedule = LrScheduleName | ((epoch: number, unit: number, peak: number, epochs: number) => number);

/** The first unit's parent: none (no alignment term) or a fixed random projection of the input x. */
export type FirstParent = 'none' | 'input';
/** Every {@link FirstParent}. */
export const FIRST_PARENTS: readonly FirstParent[] = ['none', 'input'];

/** lambda_i of eq. (5): one value for every unit, one per unit, or a function of the epoch and unit (0-based). */
export type LambdaSpec = number | readonly number[] | ((epoch: number, unit: number) => number);

/** The optimizer of a strategy and its learning rate. */
export interface OptimizerConfig {
  /** Default 'adam'. */
  optimizer: OptimizerSpec;
  /** Peak learning rate: one for every unit, or (SLL, each unit having its own optimizer) one per unit. Default 1e-3. */
  lr: number | readonly number[];
  /** Default 'cosine'. */
  lrSchedule: LrSchedule;
  /** SGD's momentum (with optimizer 'sgd'). Default 0.9. */
  momentum: number;
}

/** The fixed random projection heads R_i (paper section 3.3, "Stochastic Random Projection"). */
export interface HeadsConfig {
  /** Keep probability of the Bernoulli mask on R_i, fresh each step (1: no mask). Default 0.5. */
  keep: number;
  /** 'inverted' divides the masked R_i by keep, as inverted dropout does. Default 'inverted'. */
  maskScale: MaskScale;
  /** The sub-Gaussian distribution R_i is drawn from. Default 'gaussian'. */
  projection: ProjectionDistribution;
  /** The 1/sqrt(d') of the heads: d' = the features R_i reads ('features') or K ('classes'). Default 'features'. */
  projScale: ProjectionScale;
  /**
   * Adaptive average pooling of h_i to this many features before R_i (conv units: each channel to s x s
   * with s*s*C <= projDim); null projects a dense unit's h_i whole and pools a conv unit's to 4096. Default null.
   */
  projDim: number | null;
  /**
   * Subtract each example's mean feature before R_i, so that a ReLU unit's mean activation adds no random
   * class bias (not in the paper; ProjectionHeadConfig.center). Default false.
   */
  projCenter: boolean;
  /** The first unit's parent. Default 'none'. */
  firstParent: FirstParent;
  /**
   * Units whose output has rank 2 per example, [T, D], are read as tokens (as a ViT's): the head reads the
   * first ('cls', the class token) or their mean ('mean'). Default 'cls'; for a conv1d or sequence model
   * without a class token, 'mean' is what you want.
   */
  token: TokenPooling;
  /** Seeds every head (and every mask, with the step). Default 0. */
  seed: number;
}

/** The SLL training strategy: the heads, the unit loss's lambda_i, and each unit's optimizer. */
export interface SllStrategy extends OptimizerConfig, HeadsConfig {
  /** lambda_i of eq. (5). Default 1. */
  lambda: LambdaSpec;
}

/** The backprop baseline's strategy: one optimizer over every weight, including its linear classifier. */
export interface BpStrategy extends OptimizerConfig {
  /** Seeds the classifier's initial weights. Default 0. */
  seed: number;
}

/** The training loop. */
export interface LoopConfig {
  /** Default 20. */
  epochs: number;
  /** Examples per step (for tensors and image data sets; a tf.data.Dataset comes batched). Default 128. */
  batchSize: number;
  /** Reshuffle tensors and image data sets every epoch, seeded by (seed, epoch). Default true. */
  shuffle: boolean;
  /** Also evaluate the ensemble of all heads (mean of their softmaxes) on the validation data. Default false. */
  ensemble: boolean;
}

/** The defaults of {@link SllStrategy}. */
export const SLL_DEFAULTS: Readonly<SllStrategy> = Object.freeze({
  optimizer: 'adam',
  lr: 1e-3,
  lrSchedule: 'cosine',
  momentum: 0.9,
  keep: 0.5,
  maskScale: 'inverted',
  projection: 'gaussian',
  projScale: 'features',
  projDim: null,
  projCenter: false,
  firstParent: 'none',
  token: 'cls',
  seed: 0,
  lambda: 1,
});

/** The defaults of {@link BpStrategy}. */
export const BP_DEFAULTS: Readonly<BpStrategy> = Object.freeze({
  optimizer: 'adam',
  lr: 1e-3,
  lrSchedule: 'cosine',
  momentum: 0.9,
  seed: 0,
});

/** The defaults of {@link LoopConfig}. */
export const LOOP_DEFAULTS: Readonly<LoopConfig> = Object.freeze({
  epochs: 20,
  batchSize: 128,
  shuffle: true,
  ensemble: false,
});

/** A configuration value that is not allowed; `option` names it, `problem` says what is wrong and allowed. */
export class ConfigError extends Error {
  /** `option` as named in the config (e.g. 'keep'); `problem` completes the sentence "keep ...". */
  constructor(
    readonly option: string,
    readonly problem: string,
  ) {
    super(`${option} ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * {@link SLL_DEFAULTS} with `config` over them, every value checked. `units`, when known, is the number
 * of units, which a list of learning rates or lambdas must match.
 */
export function resolveSllStrategy(config: Partial<SllStrategy> = {}, units?: number): SllStrategy {
  const s = { ...SLL_DEFAULTS, ...defined(config) } as SllStrategy;
  checkOptimizer(s, units);
  const c = checker(s as unknown as Record<string, unknown>);
  c.range('keep', s.keep, (v) => v > 0 && v <= 1, 'must be in (0, 1]');
  c.oneOf('maskScale', MASK_SCALES);
  c.oneOf('projection', PROJECTION_DISTRIBUTIONS);
  c.oneOf('projScale', PROJECTION_SCALES);
  if (s.projDim !== null) c.int('projDim', 1);
  c.bool('projCenter');
  c.oneOf('firstParent', FIRST_PARENTS);
  c.oneOf('token', TOKEN_POOLINGS);
  c.int('seed', 0);
  if (typeof s.lambda !== 'function') {
    c.perUnit('lambda', s.lambda, units);
    for (const l of list(s.lambda)) c.range('lambda', l, (v) => v >= 0, 'must be >= 0');
  }
  return s;
}

/** {@link BP_DEFAULTS} with `config` over them, every value checked. */
export function resolveBpStrategy(config: Partial<BpStrategy> = {}): BpStrategy {
  const s = { ...BP_DEFAULTS, ...defined(config) } as BpStrategy;
  if (Array.isArray(s.lr)) throw new ConfigError('lr', `takes one value for backprop (one optimizer), got ${s.lr.length}`);
  checkOptimizer(s, 1);
  checker(s as unknown as Record<string, unknown>).int('seed', 0);
  return s;
}

/** {@link LOOP_DEFAULTS} with `config` over them, every value checked. */
export function resolveLoopConfig(config: Partial<LoopConfig> = {}): LoopConfig {
  const l = { ...LOOP_DEFAULTS, ...defined(config) } as LoopConfig;
  const c = checker(l as unknown as Record<string, unknown>);
  c.int('epochs', 1);
  c.int('batchSize', 1);
  c.bool('shuffle');
  c.bool('ensemble');
  return l;
}

/** A per-unit value (lambda_i, a peak learning rate) for unit `unit`: the list's entry, or the one value. */
export function perUnit(value: number | readonly number[], unit: number): number {
  if (typeof value === 'number') return value;
  return value.length === 1 ? value[0] : value[unit];
}

function checkOptimizer(s: OptimizerConfig, units: number | undefined): void {
  const c = checker(s as unknown as Record<string, unknown>);
  if (typeof s.optimizer !== 'function') c.oneOf('optimizer', OPTIMIZERS);
  if (typeof s.lrSchedule !== 'function') c.oneOf('lrSchedule', LR_SCHEDULES);
  c.perUnit('lr', s.lr, units);
  for (const lr of list(s.lr)) c.range('lr', lr, (v) => v > 0, 'must be > 0');
  c.range('momentum', s.momentum, (v) => v >= 0 && v < 1, 'must be in [0, 1)');
}

/** A value as a message shows it: strings quoted, so that '2' is not taken for 2. */
export function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map(shown).join(', ')}]` : String(v);
}

function checker(o: Record<string, unknown>) {
  const fail = (option: string, problem: string): never => {
    throw new ConfigError(option, problem);
  };
  return {
    oneOf(option: string, allowed: readonly unknown[]) {
      if (!allowed.includes(o[option])) fail(option, `must be one of ${allowed.join(', ')}, got ${shown(o[option])}`);
    },
    int(option: string, min: number) {
      const v = o[option];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(option, `must be an integer >= ${min}, got ${shown(v)}`);
    },
    bool(option: string) {
      if (typeof o[option] !== 'boolean') fail(option, `must be true or false, got ${shown(o[option])}`);
    },
    range(option: string, v: unknown, ok: (v: number) => boolean, problem: string) {
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, `must be a number, got ${shown(v)}`);
      if (!ok(v as number)) fail(option, `${problem}, got ${shown(v)}`);
    },
    perUnit(option: string, v: unknown, units: number | undefined) {
      if (!Array.isArray(v)) return;
      if (v.length === 0) fail(option, 'needs at least one value');
      if (units !== undefined && v.length !== 1 && v.length !== units) {
        fail(option, `needs one value or one per unit (${units}), got ${v.length}`);
      }
    },
  };
}

function list(v: number | readonly number[]): readonly number[] {
  return Array.isArray(v) ? v : [v as number];
}

/** Levenshtein distance of a and b (small strings: option names). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** The known name closest to `name` (same letters in another case or kebab-case, or a typo or two away), or null. */
function nearestName(name: string, known: readonly string[]): string | null {
  const plain = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const same = known.find((k) => plain(k) === plain(name));
  if (same !== undefined) return same;
  let best: string | null = null;
  let bestDistance = Math.min(2, Math.floor(name.length / 3));
  for (const k of known) {
    const d = editDistance(plain(name), plain(k));
    if (d <= bestDistance) [best, bestDistance] = [k, d - 1];
  }
  return best;
}

/**
 * Throws ConfigError for the first key of `config` that is not in `known` (a misspelt or foreign option
 * would otherwise leave its default in place unnoticed): the message gives `hints[key]` when there is
 * one, else the nearest known name. Keys whose value is undefined count as not given.
 */
export function checkKnownKeys(config: object, known: readonly string[], hints: Readonly<Record<string, string>> = {}): void {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ConfigError('config', `must be an object of options, got ${Array.isArray(config) ? 'an array' : String(config)}`);
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined || known.includes(key)) continue;
    const near = nearestName(key, known);
    const hint = Object.hasOwn(hints, key) ? hints[key] : near !== null ? `did you mean ${near}?` : `known: ${known.join(', ')}`;
    throw new ConfigError(key, `is not an option here (${hint})`);
  }
}

/** `{a: undefined}` means "not given", as a spread of optional fields produces it. */
export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
