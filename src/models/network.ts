/**
 * A network is a chain of units: unit i maps h_{i-1} to h_i. The units are consecutive layers of one tfjs
 * model (a user's own tf.Sequential or chain-shaped tf.LayersModel, or one built here), so the network
 * keeps tfjs's formats, while each unit stays a separate piece that a trainer can step on its own (and on
 * its own worker).
 */
import * as tf from '@tensorflow/tfjs';
import { applySeededDropout } from './dropout.js';
import { applyFused } from './fused-layers.js';
import { mixSeed } from '../data/random.js';
import { LAYER_NORM_EPSILON } from './transformer-ops.js';
import { TokenPool, type TokenPooling } from './tokens.js';

/** One unit of a network: consecutive layers of its model. */
export interface Unit {
  /** 0-based position in the chain. */
  readonly index: number;
  readonly layers: readonly tf.layers.Layer[];
  /** Shape of h_i without the batch dimension. */
  readonly outputShape: readonly number[];
}

/** What a network is, as plain data: saved beside its weights. */
export interface NetworkSpec {
  /** Architecture name, e.g. 'mlp'; 'custom' for a user's own model. */
  readonly model: string;
  /** Shape of one input x, without the batch dimension. */
  readonly inputShape: readonly number[];
  /** K, the number of classes. */
  readonly numClasses: number;
  /** How many of the model's layers each unit owns, in order. */
  readonly unitLayerCounts: readonly number[];
  /** Architecture options, recorded so that a saved network says what it is. */
  readonly options: Readonly<Record<string, unknown>>;
  /** True when the network has the BP baseline's trainable linear classifier. */
  readonly classifier: boolean;
}

/** A chain of units over the layers of one tfjs model, and the BP baseline's classifier when it has one. */
export interface Network {
  readonly spec: NetworkSpec;
  /** The model whose layers the units are, in order. */
  readonly model: tf.LayersModel;
  readonly units: readonly Unit[];
  /** The BP baseline's trainable linear readout of h_L ([flatten,] dense K); null for SLL. Not part of `model`. */
  readonly classifier: tf.Sequential | null;
}

/**
 * How a model's layers form units: the number of layers of each unit, in order, or a function saying
 * whether a layer starts a new unit (the first layer always does).
 */
export type UnitGrouping = readonly number[] | ((layer: tf.layers.Layer, index: number) => boolean);

/** Layers that normalise the layer before them: they belong to its unit rather than starting one. */
const NORMALIZATION_LAYERS = new Set(['BatchNormalization', 'LayerNormalization']);

/**
 * The default grouping: each layer with trainable weights starts a unit (normalisation layers excepted),
 * and the layers without weights that follow it (activations, pooling, dropout, flatten) join it; layers
 * before the first weighted layer join the first unit.
 */
export function startsUnit(layer: tf.layers.Layer): boolean {
  return layer.trainableWeights.length > 0 && !NORMALIZATION_LAYERS.has(layer.getClassName());
}

/**
 * h_i = f_i(h_{i-1}): each layer through the backend's fused kernels where they apply (fused-layers.ts).
 * `step`, the training step, seeds the step's dropout masks (dropout.ts); layers are called with
 * `{ training, step }`.
 */
export function applyUnit(unit: Unit, input: tf.Tensor, training: boolean, step?: number): tf.Tensor {
  return unit.layers.reduce((h, layer) => {
    const seeded = training && step !== undefined ? applySeededDropout(layer, h, step) : null;
    return seeded ?? applyFused(layer, h, training) ?? (layer.apply(h, { training, step }) as tf.Tensor);
  }, input);
}

/** The trainable variables of a unit: what its own optimizer updates, and nothing else. */
export function unitVariables(unit: Unit): tf.Variable[] {
  return unit.layers.flatMap((layer) => layer.trainableWeights.map((w) => w.read() as tf.Variable));
}

/**
 * The weight penalties of `layers` (their kernelRegularizer, biasRegularizer, ...), summed, or null when they
 * have none: added to the loss they train on, as `model.fit` adds them.
 */
export function regularization(layers: readonly tf.layers.Layer[]): tf.Scalar | null {
  const penalties = layers.flatMap((layer) => layer.calculateLosses());
  return penalties.length === 0 ? null : (tf.addN(penalties) as tf.Scalar);
}

/** A model, its shape or its grouping into units that sll cannot train; the message says why. */
export class ModelError extends Error {
  override name = 'ModelError';
}

/** The layers of `model` in order, without its input layer; throws ModelError unless they form a chain. */
export function chainLayers(model: tf.LayersModel): tf.layers.Layer[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new ModelError(`a network needs a model with one input and one output, got ${model.inputs.length} and ${model.outputs.length}`);
  }
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  if (model instanceof tf.Sequential) return layers;
  let previous = model.inputs[0].sourceLayer;
  for (const layer of layers) {
    const from = layer.inboundNodes.flatMap((n) => n.inboundLayers);
    if (from.length !== 1 || from[0] !== previous) {
      throw new ModelError(
        `layer '${layer.name}' does not take exactly the previous layer's output: units are consecutive layers of a chain ` +
          '(put branching parts inside one layer, or use a tf.Sequential)',
      );
    }
    previous = layer;
  }
  if (model.outputs[0].sourceLayer !== previous) throw new ModelError('the model\'s output is not its last layer\'s');
  return layers;
}

/** The layer counts of each unit under `grouping` (default: {@link startsUnit}). */
export function unitLayerCounts(layers: readonly tf.layers.Layer[], grouping: UnitGrouping = startsUnit): number[] {
  if (layers.length === 0) throw new ModelError('the model has no layers');
  if (typeof grouping !== 'function') {
    const total = grouping.reduce((a, b) => a + b, 0);
    if (grouping.length === 0 || grouping.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new ModelError(`units: layer counts must be positive integers, got [${grouping}]`);
    }
    if (total !== layers.length) throw new ModelError(`units: layer counts [${grouping}] add up to ${total}, the model has ${layers.length} layers`);
    return [...grouping];
  }
  const counts: number[] = [];
  let unitHasStart = false;
  layers.forEach((layer, i) => {
    const start = grouping(layer, i);
    if (counts.length === 0 || (start && unitHasStart)) {
      counts.push(1);
      unitHasStart = start;
    } else {
      counts[counts.length - 1]++;
      unitHasStart ||= start;
    }
  });
  return counts;
}

/** Splits a model's chain of layers into units of `counts` layers each. */
export function unitsOf(layers: readonly tf.layers.Layer[], counts: readonly number[]): Unit[] {
  const units: Unit[] = [];
  let start = 0;
  for (const [index, count] of counts.entries()) {
    const own = layers.slice(start, start + count);
    if (own.length !== count) throw new ModelError(`the model has ${layers.length} layers, fewer than its units need`);
    const shape = own[own.length - 1].outputShape as number[];
    units.push({ index, layers: own, outputShape: shape.slice(1) });
    start += count;
  }
  if (start !== layers.length) throw new ModelError(`the units hold ${start} of the model's ${layers.length} layers`);
  return units;
}

/** Layers per unit: `layers` grouped into units by `grouping`, then `unitLayers` consecutive units merged (as networkFromModel does). */
export function unitGrouping(layers: readonly tf.layers.Layer[], grouping?: UnitGrouping, unitLayers = 1): number[] {
  return groupCounts(unitLayerCounts(layers, grouping), unitLayers);
}

/**
 * A network over a tfjs model: its layers (a chain) grouped into units by `grouping`, then `unitLayers`
 * consecutive units merged into one (the block-wise SLL^{i+}).
 */
export function networkFromModel(
  model: tf.LayersModel,
  o: { numClasses: number; grouping?: UnitGrouping; unitLayers?: number; name?: string; options?: Record<string, unknown> },
): Network {
  const layers = chainLayers(model);
  const inputShape = model.inputs[0].shape.slice(1);
  if (inputShape.some((d) => d == null)) throw new ModelError(`the model's input shape [${model.inputs[0].shape}] must be fully defined but for the batch`);
  if (!Number.isInteger(o.numClasses) || o.numClasses < 2) throw new ModelError(`numClasses must be an integer >= 2, got ${o.numClasses}`);
  const counts = unitGrouping(layers, o.grouping, o.unitLayers ?? 1);
  const spec: NetworkSpec = {
    model: o.name ?? 'custom',
    inputShape: inputShape as number[],
    numClasses: o.numClasses,
    unitLayerCounts: counts,
    options: { ...o.options, ...(o.unitLayers && o.unitLayers > 1 ? { unitLayers: o.unitLayers } : {}) },
    classifier: false,
  };
  return { spec, model, units: unitsOf(layers, counts), classifier: null };
}

/** Builds a tf.Sequential from units given as lists of layers (the first layer carries the input shape), and its network. */
export function networkFromUnits(
  spec: Pick<NetworkSpec, 'model' | 'inputShape' | 'numClasses' | 'options'>,
  unitLayers: tf.layers.Layer[][],
): Network {
  const model = tf.sequential({ layers: unitLayers.flat() });
  return networkFromModel(model, { ...spec, name: spec.model, grouping: unitLayers.map((l) => l.length) });
}

/**
 * The block-wise variant SLL^{i+} (paper section 5.3): `size` consecutive units merged into one (the last
 * takes what is left), so that backprop runs inside a block and the local losses between blocks.
 */
export function groupUnits(network: Network, size: number): Network {
  if (size === 1) return network;
  if (network.classifier) throw new ModelError('group the units before adding the classifier');
  const unitLayerCounts = groupCounts(network.spec.unitLayerCounts, size);
  const spec = { ...network.spec, unitLayerCounts, options: { ...network.spec.options, unitLayers: size } };
  return { ...network, spec, units: unitsOf(chainLayers(network.model), unitLayerCounts) };
}

function groupCounts(counts: readonly number[], size: number): number[] {
  if (!Number.isInteger(size) || size < 1) throw new ModelError(`units are grouped by a positive integer, got ${size}`);
  if (size > counts.length) throw new ModelError(`unitLayers must be <= the number of units (${counts.length}), got ${size}`);
  const grouped: number[] = [];
  for (let i = 0; i < counts.length; i += size) grouped.push(counts.slice(i, i + size).reduce((a, b) => a + b, 0));
  return grouped;
}

/**
 * Adds the BP baseline's trainable linear classifier (h_L, flattened, -> K logits) to a network: the same
 * units, trained end to end instead of unit by unit, its weights seeded by `seed`. Tokens [T, D] (a ViT)
 * are read as a ViT's classifier reads them: a final LayerNorm, then the class token (or the mean of the
 * tokens, with `token` 'mean'). The classifier is a model of its own, so the network's model (perhaps a
 * user's) is left as it is.
 */
export function withClassifier(network: Network, seed: number, token: TokenPooling = 'cls'): Network {
  if (network.classifier) return network;
  const last = [...network.units[network.units.length - 1].outputShape];
  const layers: tf.layers.Layer[] = [];
  if (last.length === 2) {
    layers.push(
      tf.layers.layerNormalization({ inputShape: last, epsilon: LAYER_NORM_EPSILON, name: 'classifier_norm' }),
      new TokenPool({ mode: token, name: 'classifier_pool' }),
    );
  } else if (last.length > 1) {
    layers.push(tf.layers.flatten({ inputShape: last, name: 'classifier_flatten' }));
  }
  layers.push(
    tf.layers.dense({
      units: network.spec.numClasses,
      kernelInitializer: tf.initializers.glorotUniform({ seed: mixSeed(seed, 3) }),
      name: 'classifier',
      ...(last.length > 1 ? {} : { inputShape: last }),
    }),
  );
  return { ...network, spec: { ...network.spec, classifier: true }, classifier: tf.sequential({ layers }) };
}

/** The BP classifier's logits for x (throws for a network without a classifier); `step` as in {@link applyUnit}. */
export function classify(network: Network, x: tf.Tensor, training: boolean, step?: number): tf.Tensor2D {
  if (!network.classifier) throw new ModelError('this network has no classifier (it is trained with SLL: use its heads)');
  const h = network.units.reduce((h, unit) => applyUnit(unit, h, training, step), x);
  // Layer by layer, as applyUnit does, so that its Dense runs through the fused kernels where the backend has them.
  return network.classifier.layers.reduce((z, layer) => applyFused(layer, z, training) ?? (layer.apply(z, { training }) as tf.Tensor), h) as tf.Tensor2D;
}

/** Every trainable variable of the network: its units' and its classifier's. */
export function networkVariables(network: Network): tf.Variable[] {
  const classifier = network.classifier?.trainableWeights.map((w) => w.read() as tf.Variable) ?? [];
  return [...network.units.flatMap(unitVariables), ...classifier];
}
