/**
 * Convolutional networks of the paper's section 5.2: VGG-11 (one SLL unit per conv layer: conv3x3,
 * optional batch norm, ReLU, and the max-pool that follows it in the configuration), and a plain stack of
 * conv3x3 units without pooling (the memory study, Fig. 2b).
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from '../data/random.js';
import { networkFromUnits, type Network } from './network.js';

/** VGG-11, configuration "A": channels per conv layer, 'M' for a 2x2 max-pool. */
export const VGG11: readonly (number | 'M')[] = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'];

/** What every conv network here takes. */
export interface ConvOptions {
  inputShape: readonly number[];
  numClasses: number;
  seed: number;
  /** Batch normalisation between each conv and its ReLU. */
  batchNorm: boolean;
}

/** tfjs-layers' Conv2D layer class, which the package does not export by name. */
type Conv2DLayer = tf.layers.Layer & {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: [number, number];
  padding: 'same' | 'valid';
  dilationRate: [number, number];
};
type Conv2DArgs = Parameters<typeof tf.layers.conv2d>[0];

let linearConv2D: (new (args: Conv2DArgs) => tf.layers.Layer) | null = null;

/**
 * A Conv2D without activation (the conv before batch norm) that runs the plain conv2d op. tfjs-layers runs a
 * linear conv as tfjs's fused conv2d, whose gradient computes the input gradient whether or not anything
 * needs it: in an SLL unit nothing does (its input is stop-gradient), and that convolution was the largest
 * kernel of a batch-norm step. conv2d's own gradient computes only what is asked for. Same weights, same
 * numbers, same class name: a saved model stays a plain tfjs-layers model (reloaded, its convs are tfjs's
 * own Conv2D again, which only costs a resumed batch-norm run that unused gradient). The class is made on
 * first use: its base is reached through a Conv2D instance, which importing this module should not create.
 */
function linearConv2DClass(): new (args: Conv2DArgs) => tf.layers.Layer {
  if (linearConv2D) return linearConv2D;
  const Conv2DBase = Object.getPrototypeOf(tf.layers.conv2d({ filters: 1, kernelSize: 1 })).constructor as new (
    args: Conv2DArgs,
  ) => Conv2DLayer;
  linearConv2D = class LinearConv2D extends Conv2DBase {
    static className = 'Conv2D';
    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.tidy(() => {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
        const y = tf.conv2d(x, this.kernel.read() as tf.Tensor4D, this.strides, this.padding, 'NHWC', this.dilationRate);
        return this.bias ? tf.add(y, this.bias.read()) : y;
      });
    }
  };
  return linearConv2D;
}

/** One unit: conv3x3 'same' (+ batch norm) + ReLU (+ 2x2 max-pool). */
function convUnit(index: number, filters: number, pool: boolean, o: ConvOptions): tf.layers.Layer[] {
  const name = `unit${index + 1}`;
  const conv = (args: Conv2DArgs): tf.layers.Layer => (o.batchNorm ? new (linearConv2DClass())(args) : tf.layers.conv2d(args));
  const layers: tf.layers.Layer[] = [
    conv({
      filters,
      kernelSize: 3,
      padding: 'same',
      activation: o.batchNorm ? 'linear' : 'relu',
      useBias: !o.batchNorm,
      // mixSeed, never 0: tfjs's normal samplers take a seed of 0 as no seed at all (Math.random).
      kernelInitializer: tf.initializers.heNormal({ seed: mixSeed(o.seed, 4, index) || 1 }),
      name: `${name}_conv`,
      ...(index === 0 ? { inputShape: [...o.inputShape] } : {}),
    }),
  ];
  if (o.batchNorm) {
    layers.push(tf.layers.batchNormalization({ name: `${name}_bn` }), tf.layers.activation({ activation: 'relu', name: `${name}_relu` }));
  }
  // 'same' pooling rounds up, so 28x28 inputs (Fashion-MNIST) survive VGG's five pools (28-14-7-4-2-1).
  if (pool) layers.push(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: `${name}_pool` }));
  return layers;
}

/** VGG-11 with every channel count scaled by `widthMult` (at least 1 channel). */
export function buildVgg11(o: ConvOptions & { widthMult: number }): Network {
  const unitLayers: tf.layers.Layer[][] = [];
  VGG11.forEach((c, i) => {
    if (c === 'M') return;
    const filters = Math.max(1, Math.round(c * o.widthMult));
    unitLayers.push(convUnit(unitLayers.length, filters, VGG11[i + 1] === 'M', o));
  });
  return networkFromUnits(
    { model: 'vgg11', inputShape: o.inputShape, numClasses: o.numClasses, options: { widthMult: o.widthMult, batchNorm: o.batchNorm, seed: o.seed } },
    unitLayers,
  );
}

/** `layers` conv3x3 units of `channels` channels, no pooling. */
export function buildConvStack(o: ConvOptions & { layers: number; channels: number }): Network {
  const unitLayers = Array.from({ length: o.layers }, (_, i) => convUnit(i, o.channels, false, o));
  return networkFromUnits(
    { model: 'convstack', inputShape: o.inputShape, numClasses: o.numClasses, options: { layers: o.layers, channels: o.channels, batchNorm: o.batchNorm, seed: o.seed } },
    unitLayers,
  );
}
