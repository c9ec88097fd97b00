/** Copies of tfjs layers (same class, configuration, name and weights), to put a network's layers into another model. */
import * as tf from '@tensorflow/tfjs';
import { chainLayers, networkFromModel, type Network } from './network.js';
// sll's own layer classes (the ViT's) register with tf.serialization on import: layers made from JSON need them.
import './vit.js';

/**
 * A new layer of `layer`'s registered class and configuration (not its weights: a layer gets them once it
 * is built in a model); with `inputShape` it is a model's first layer. A layer can belong to one
 * Sequential only, hence copies.
 */
export function cloneLayer(layer: tf.layers.Layer, inputShape?: readonly (number | null)[]): tf.layers.Layer {
  return layerFromJson(layer.getClassName(), layer.getConfig(), inputShape);
}

/** A layer of the registered class `className` made from `config` (as getConfig gives it), optionally a first layer taking `inputShape`. */
export function layerFromJson(className: string, config: tf.serialization.ConfigDict, inputShape?: readonly (number | null)[]): tf.layers.Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new Error(`layer class ${className} is not registered with tf.serialization`);
  const [cls, fromConfig] = entry;
  const own: tf.serialization.ConfigDict = { ...config };
  delete own.batchInputShape;
  delete own.inputShape;
  if (inputShape) own.batchInputShape = [null, ...inputShape];
  return fromConfig(cls, own) as tf.layers.Layer;
}

/** A tf.Sequential of copies of `layers` (weights copied too), taking inputs of `inputShape`. */
export function sequentialOf(layers: readonly tf.layers.Layer[], inputShape: readonly number[]): tf.Sequential {
  const copies = layers.map((l, i) => cloneLayer(l, i === 0 ? inputShape : undefined));
  const model = tf.sequential({ layers: copies });
  copies.forEach((c, i) => c.setWeights(layers[i].getWeights()));
  return model;
}

/** A copy of `network` (its layers and weights; a BP classifier too), sharing nothing with it. */
export function cloneNetwork(network: Network): Network {
  const model = sequentialOf(chainLayers(network.model), network.spec.inputShape);
  const copy = networkFromModel(model, { numClasses: network.spec.numClasses, grouping: network.spec.unitLayerCounts });
  const classifier = network.classifier ? sequentialOf(chainLayers(network.classifier), network.units[network.units.length - 1].outputShape) : null;
  return { ...copy, spec: network.spec, classifier };
}
