/**
 * Training a tfjs user's own model: `fitSll(model, data, config)` trains it with SLL, `fitBp` with the
 * backprop baseline, as `model.fit` / `model.fitDataset` would: the model's weights are trained in place,
 * `data` is a tf.data.Dataset or tensors, `config` holds only how to train (the strategy, the loop,
 * tfjs callbacks), and a History-like result comes back with the heads.
 */
import * as tf from '@tensorflow/tfjs';
import type { Augmentation } from '../data/batches.js';
import { DataError } from '../data/errors.js';
import { batchSource, type BatchSource, type TrainingData } from '../data/source.js';
import { networkFromModel, unitGrouping, withClassifier, type Network, type UnitGrouping } from '../models/network.js';
import type { TokenPooling } from '../models/tokens.js';
import type { ProjectionHead } from '../objectives/projection.js';
import { BpTrainer } from './bp.js';
import type { CallbackParams, TfCallbacks } from './callbacks.js';
import {
  BP_DEFAULTS,
  ConfigError,
  LOOP_DEFAULTS,
  SLL_DEFAULTS,
  checkKnownKeys,
  resolveBpStrategy,
  resolveLoopConfig,
  resolveSllStrategy,
  type BpStrategy,
  type LoopConfig,
  type SllStrategy,
} from './config.js';
import { SequentialEngine } from './engine.js';
import type { Evaluation } from './evaluate.js';
import { fit, type UnitEpochMetrics } from './fit.js';
import { attachHeads, disposeHeads, isHeadedNetwork, normalizationOf, type HeadedNetwork } from './model.js';
import { SllTrainer } from './sll.js';

/** What fitSll and fitBp take besides the strategy: the loop, the data's details, callbacks. */
export interface FitOptions extends Partial<LoopConfig> {
  /** Evaluated after every epoch: `val_loss`, `val_acc` and each head's in the logs. */
  validationData?: TrainingData;
  /** tfjs callbacks (tf.callbacks.earlyStopping, tfjs-vis, or plain `{onEpochEnd(epoch, logs) {...}}`). */
  callbacks?: TfCallbacks;
  /** K; needed only with integer labels from tensors or a tf.data.Dataset. */
  numClasses?: number;
  /** Image data sets only: random crop and flip of the training batches. */
  augment?: Augmentation;
  /**
   * tf.data only: batches per epoch, for an endless or long data set. Epochs go on through one iterator,
   * as in tfjs's fitDataset: the data set must give batchesPerEpoch * epochs batches in all.
   */
  batchesPerEpoch?: number;
}

/**
 * fitSll's configuration: the SLL strategy, how the model's layers form units, and the loop. A key that is
 * none of these is refused (ConfigError), with what to use instead for model.fit's validationSplit,
 * stepsPerEpoch, verbose, initialEpoch and classWeight.
 */
export interface SllFitConfig extends Partial<SllStrategy>, FitOptions {
  /** How the layers form units (layer counts, or whether a layer starts one); default: each weighted layer starts a unit. */
  units?: UnitGrouping;
  /** SLL^{i+}: merge this many consecutive units into one (backprop inside). Default 1. */
  unitLayers?: number;
}

/**
 * fitBp's configuration: the BP strategy and the loop. fitBp also takes an SllFitConfig's keys (and leaves
 * the SLL-only ones unused), so that one object configures both sides of a comparison.
 */
export interface BpFitConfig extends Partial<BpStrategy>, FitOptions {
  /** A model whose last layer outputs tokens [T, D]: the classifier reads the class token or their mean. Default 'cls'. */
  token?: TokenPooling;
}

/** FitOptions' own keys (the loop's are LOOP_DEFAULTS'); the type makes sure none is missing. */
const FIT_KEYS = Object.keys({
  validationData: 0,
  callbacks: 0,
  numClasses: 0,
  augment: 0,
  batchesPerEpoch: 0,
} satisfies Record<Exclude<keyof FitOptions, keyof LoopConfig>, 0>);
const SLL_FIT_KEYS = [...Object.keys(SLL_DEFAULTS), ...Object.keys(LOOP_DEFAULTS), ...FIT_KEYS, ...Object.keys({ units: 0, unitLayers: 0 } satisfies Record<Exclude<keyof SllFitConfig, keyof SllStrategy | keyof FitOptions>, 0>)];
// fitBp takes fitSll's configuration too (its SLL-only options unused), so that one object serves both.
const BP_FIT_KEYS = [...new Set([...SLL_FIT_KEYS, ...Object.keys(BP_DEFAULTS), ...Object.keys({ token: 0 } satisfies Record<Exclude<keyof BpFitConfig, keyof BpStrategy | keyof FitOptions>, 0>)])];

/** The kinds of fitSll's and fitBp's arguments, checked before anything reads them; then `config`'s keys. */
function checkFitArgs(fn: 'fitSll' | 'fitBp', model: unknown, data: unknown, config: object, keys: readonly string[]): void {
  if (!isHeadedNetwork(model) && !(model instanceof tf.LayersModel)) {
    throw new TypeError(`${fn} trains a tf.LayersModel (tf.sequential(...), tf.model(...)) or a HeadedNetwork (a result's .model, loadModel's), got ${model === null ? 'null' : typeof model}`);
  }
  if (data instanceof tf.Tensor) throw new DataError(`${fn} takes (model, data, config): give the inputs and labels together as data, e.g. ${fn}(model, [x, y], { epochs })`);
  checkKnownKeys(config, keys, fitHints(fn));
}

/** What keys that tfjs's model.fit takes mean here. */
function fitHints(fn: 'fitSll' | 'fitBp'): Record<string, string> {
  return {
    validationSplit: 'tfjs\'s model.fit splits it off; give validationData',
    stepsPerEpoch: 'give batchesPerEpoch, as for tfjs\'s fitDataset',
    verbose: `${fn} prints nothing itself: follow it with callbacks`,
    initialEpoch: `the model ${fn} returned (FitHistory.model) trains further from its weights; epochs count from 0`,
    classWeight: 'not supported: every example counts alike',
  };
}

/** What fitSll and fitBp return: tfjs History's fields, the trained model with its heads, and the run's measures. */
export interface FitHistory {
  /** The epochs run, 0-based (tfjs History's `epoch`). */
  epoch: number[];
  /** Per log name, its value after each epoch (tfjs History's `history`). */
  history: Record<string, number[]>;
  /** The parameters the callbacks got. */
  params: CallbackParams;
  /** The network (over the user's model, trained in place) and its projection heads (for BP, its classifier). */
  model: HeadedNetwork;
  /** R_i of every unit (empty for BP). */
  heads: readonly ProjectionHead[];
  /** Per epoch and unit, the training losses and accuracies and the validation accuracy. */
  metrics: UnitEpochMetrics[];
  /** The last evaluation on the validation data; null without validation data. */
  evaluation: Evaluation | null;
  /** Seconds spent in training steps. */
  trainSeconds: number;
}

/**
 * Trains `model` with SLL: its layers form units (see `config.units`), each with a fixed random projection
 * head and its own optimizer, and no gradient crosses a unit boundary. `model` is a tf.Sequential or a
 * chain-shaped tf.LayersModel (its weights are trained in place), or a HeadedNetwork from an earlier
 * fitSll or `loadModel` (trained further with its own heads).
 */
export async function fitSll(model: tf.LayersModel | HeadedNetwork, data: TrainingData, config: SllFitConfig = {}): Promise<FitHistory> {
  checkFitArgs('fitSll', model, data, config, SLL_FIT_KEYS);
  const loop = resolveLoopConfig(config);
  const train = trainingSource(model, data, config);
  let headed: HeadedNetwork;
  let strategy: SllStrategy;
  if (isHeadedNetwork(model)) {
    headed = model;
    if (headed.network.classifier) throw new Error('fitSll: this network was trained with BP (it has a classifier); use fitBp');
    strategy = resolveSllStrategy(config, headed.network.units.length);
    checkHeads(headed, config);
  } else {
    const numClasses = await classesOf(train, config.numClasses);
    const network = networkFromModel(model, { numClasses, grouping: config.units, unitLayers: config.unitLayers });
    strategy = resolveSllStrategy(config, network.units.length);
    headed = attachHeads(network, strategy, train.images ? normalizationOf(train.images) : null);
  }
  try {
    return await run(headed, () => new SequentialEngine(new SllTrainer(headed, strategy, loop.epochs)), train, loop, strategy.seed, config);
  } catch (e) {
    // Heads made here are the caller's only through the result: free them when there is none.
    if (headed !== model) disposeHeads(headed);
    throw e;
  }
}

/**
 * Trains `model` with the backprop baseline: its layers plus a new trainable linear classifier (h_L,
 * flattened, -> K logits), end to end by one optimizer on the classifier's cross-entropy.
 */
export async function fitBp(model: tf.LayersModel | HeadedNetwork, data: TrainingData, config: BpFitConfig = {}): Promise<FitHistory> {
  checkFitArgs('fitBp', model, data, config, BP_FIT_KEYS);
  const loop = resolveLoopConfig(config);
  const strategy = resolveBpStrategy(config);
  const train = trainingSource(model, data, config);
  let network: Network;
  let normalization = train.images ? normalizationOf(train.images) : null;
  if (isHeadedNetwork(model)) {
    network = withClassifier(model.network, strategy.seed, config.token);
    normalization = model.normalization;
  } else {
    network = withClassifier(networkFromModel(model, { numClasses: await classesOf(train, config.numClasses) }), strategy.seed, config.token);
  }
  const headed: HeadedNetwork = { network, heads: [], inputHead: null, normalization };
  try {
    return await run(headed, () => new SequentialEngine(new BpTrainer(network, strategy, loop.epochs)), train, loop, strategy.seed, config);
  } catch (e) {
    // A classifier made here is the caller's only through the result: free it when there is none.
    if (!(isHeadedNetwork(model) && model.network.classifier)) network.classifier?.dispose();
    throw e;
  }
}

async function run(
  model: HeadedNetwork,
  makeEngine: () => SequentialEngine,
  train: BatchSource,
  loop: LoopConfig,
  seed: number,
  config: FitOptions,
): Promise<FitHistory> {
  const numClasses = model.network.spec.numClasses;
  const k = await train.classes();
  if (k !== null && k !== numClasses) throw new DataError(`the training data have ${k} classes, the model ${numClasses}`);
  const validation = config.validationData ? batchSource(config.validationData, { numClasses, normalization: model.normalization }) : null;
  const result = await fit({ model, engine: makeEngine(), train, validation, loop, seed, callbacks: config.callbacks });
  return {
    epoch: Array.from({ length: result.epochs }, (_, i) => i),
    history: result.history,
    params: result.params,
    model,
    heads: model.heads,
    metrics: result.metrics,
    evaluation: result.evaluation,
    trainSeconds: result.trainSeconds,
  };
}

/** The training batches; for a model that has its K already, labels are checked against it. */
function trainingSource(model: tf.LayersModel | HeadedNetwork, data: TrainingData, config: FitOptions): BatchSource {
  let numClasses = config.numClasses;
  if (isHeadedNetwork(model)) {
    const k = model.network.spec.numClasses;
    if (numClasses !== undefined && numClasses !== k) throw new DataError(`numClasses is ${numClasses}, but the model has ${k} classes`);
    numClasses = k;
  }
  const normalization = isHeadedNetwork(model) ? model.normalization : undefined;
  return batchSource(data, { numClasses, normalization, augment: config.augment, batchesPerEpoch: config.batchesPerEpoch });
}

/**
 * A model trained further keeps its units and heads: an option that shapes them must agree with them (it
 * would otherwise be ignored without a word).
 */
function checkHeads(model: HeadedNetwork, config: SllFitConfig): void {
  if (config.units !== undefined || config.unitLayers !== undefined) {
    const has = model.network.spec.unitLayerCounts;
    const given = unitGrouping(model.network.units.flatMap((u) => u.layers), config.units, config.unitLayers ?? 1);
    if (given.join() !== has.join()) {
      const option = config.units !== undefined ? 'units' : 'unitLayers';
      throw new ConfigError(option, `gives units of [${given}] layers, but this model's units hold [${has}] (a model trained further keeps its units)`);
    }
  }
  const tokens = model.heads.map((h) => h.config.token).filter((t) => t !== undefined);
  if (config.token !== undefined && tokens.some((t) => t !== config.token)) {
    throw new ConfigError('token', `is ${config.token}, but this model's heads read tokens by ${tokens[0]} (a model trained further keeps its heads)`);
  }
  const head = model.heads[0]?.config;
  if (!head) return;
  const kept: [keyof SllStrategy, unknown, unknown][] = [
    ['keep', config.keep, head.keep],
    ['maskScale', config.maskScale, head.maskScale],
    ['projection', config.projection, head.distribution],
    ['projScale', config.projScale, head.scale],
    ['projCenter', config.projCenter, head.center ?? false],
    ['firstParent', config.firstParent, model.inputHead ? 'input' : 'none'],
  ];
  for (const [option, given, has] of kept) {
    if (given !== undefined && given !== has) {
      throw new ConfigError(option, `is ${String(given)}, but this model's heads were made with ${String(has)} (a model trained further keeps its heads)`);
    }
  }
  if (config.projDim !== undefined && model.heads.some((h) => h.config.poolDim !== config.projDim)) {
    throw new ConfigError('projDim', `is ${String(config.projDim)}, but this model's heads pool to ${model.heads.map((h) => String(h.config.poolDim)).join(', ')} (a model trained further keeps its heads)`);
  }
}

async function classesOf(train: BatchSource, given: number | undefined): Promise<number> {
  const k = given ?? (await train.classes());
  if (k === null) throw new DataError('cannot tell the number of classes from integer labels: give numClasses');
  return k;
}

