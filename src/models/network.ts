/**
 * A network is a chain of units: unit i maps h_{i-1} to h_i. The units' layers, in order, form one
 * tf.Sequential, so the trained network saves and loads in the standard tfjs format, while each unit stays
 * a separate piece that a trainer can step on its own (and, later, on its own worker).
 */
import * as tf from '@tensorflow/tfjs';

export interface Unit {
  readonly index: number;
  readonly layers: readonly tf.layers.Layer[];
  /** Shape of h_i without the batch dimension. */
  readonly outputShape: readonly number[];
}

export interface NetworkSpec {
  /** Architecture name, e.g. 'mlp'. */
  readonly model: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  /** How many of the Sequential's layers each unit owns, in order. */
  readonly unitLayerCounts: readonly number[];
  /** Architecture options, recorded so that a saved network says what it is. */
  readonly options: Readonly<Record<string, unknown>>;
  /** True when the Sequential ends in a trainable linear classifier (the BP baseline's readout). */
  readonly classifier: boolean;
}

export interface Network {
  readonly spec: NetworkSpec;
  /** All units' layers (and, for a BP-trained network, its classifier last). */
  readonly model: tf.Sequential;
  readonly units: readonly Unit[];
  /** The BP baseline's trainable linear classifier, last layer of `model`; null for SLL. */
  readonly classifier: tf.layers.Layer | null;
}

/** h_i = f_i(h_{i-1}). */
export function applyUnit(unit: Unit, input: tf.Tensor, training: boolean): tf.Tensor {
  return unit.layers.reduce((h, layer) => layer.apply(h, { training }) as tf.Tensor, input);
}

/** The trainable variables of a unit: what its own optimizer updates, and nothing else. */
export function unitVariables(unit: Unit): tf.Variable[] {
  return unit.layers.flatMap((layer) => layer.trainableWeights.map((w) => w.read() as tf.Variable));
}

/** Splits a Sequential's layers into units of `unitLayerCounts` layers each. */
export function unitsOf(model: tf.Sequential, unitLayerCounts: readonly number[]): Unit[] {
  const units: Unit[] = [];
  let start = 0;
  for (const [index, count] of unitLayerCounts.entries()) {
    const layers = model.layers.slice(start, start + count);
    if (layers.length !== count) {
      throw new Error(`model has ${model.layers.length} layers, fewer than its units need`);
    }
    const shape = layers[layers.length - 1].outputShape as number[];
    units.push({ index, layers, outputShape: shape.slice(1) });
    start += count;
  }
  return units;
}

/** Builds a Network from units given as lists of layers; the first layer must carry the input shape. */
export function networkFromUnits(
  spec: Omit<NetworkSpec, 'unitLayerCounts' | 'classifier'>,
  unitLayers: tf.layers.Layer[][],
): Network {
  const model = tf.sequential({ layers: unitLayers.flat() });
  const unitLayerCounts = unitLayers.map((layers) => layers.length);
  return { spec: { ...spec, unitLayerCounts, classifier: false }, model, units: unitsOf(model, unitLayerCounts), classifier: null };
}

/**
 * The block-wise variant SLL^{i+} (paper section 5.3): `size` consecutive units of `network` merged into
 * one unit (the last block takes what is left), so that backprop runs inside a block and the local losses
 * between blocks. size 1 returns the network as it is.
 */
export function groupUnits(network: Network, size: number): Network {
  if (!Number.isInteger(size) || size < 1) throw new Error(`units are grouped by a positive integer, got ${size}`);
  if (size === 1) return network;
  if (network.classifier) throw new Error('group the units before adding the classifier');
  const counts = network.spec.unitLayerCounts;
  const unitLayerCounts: number[] = [];
  for (let i = 0; i < counts.length; i += size) unitLayerCounts.push(counts.slice(i, i + size).reduce((a, b) => a + b, 0));
  const spec = { ...network.spec, unitLayerCounts, options: { ...network.spec.options, unitLayers: size } };
  return { ...network, spec, units: unitsOf(network.model, unitLayerCounts) };
}

/** Re-attaches units (and the classifier) to a Sequential rebuilt from a saved model. */
export function networkFromModel(spec: NetworkSpec, model: tf.Sequential): Network {
  const unitLayers = spec.unitLayerCounts.reduce((a, b) => a + b, 0);
  const units = unitsOf(model, spec.unitLayerCounts);
  const expected = unitLayers + (spec.classifier ? classifierLayerCount(units) : 0);
  if (model.layers.length !== expected) {
    throw new Error(`saved model has ${model.layers.length} layers, its spec says ${expected}`);
  }
  const classifier = spec.classifier ? model.layers[model.layers.length - 1] : null;
  return { spec, model, units, classifier };
}

/** A flatten before the classifier's dense layer when the last unit's output is not a vector. */
function classifierLayerCount(units: readonly Unit[]): number {
  return units[units.length - 1].outputShape.length > 1 ? 2 : 1;
}

/**
 * Appends the BP baseline's trainable linear classifier (h_L, flattened, -> K logits) to a network: the
 * same units, trained end to end instead of unit by unit.
 */
export function withClassifier(network: Network, seed: number): Network {
  if (network.classifier) return network;
  if (classifierLayerCount(network.units) === 2) network.model.add(tf.layers.flatten({ name: 'classifier_flatten' }));
  const classifier = tf.layers.dense({
    units: network.spec.numClasses,
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
    name: 'classifier',
  });
  network.model.add(classifier);
  return { ...network, spec: { ...network.spec, classifier: true }, classifier };
}
