/**
 * The layers that models/fused-layers.ts fuses, as test cases shared by every backend that registers the fused
 * kernels (native, webgpu): each backend's fused forward and gradients are compared with tfjs-layers on cpu.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { applyFused } from '../../src/models/fused-layers.js';
import { randomArray } from '../native/helpers.js';

export interface LayerCase {
  name: string;
  make: () => tf.layers.Layer;
  inputShape: number[];
}

export const FUSED_LAYER_CASES: LayerCase[] = [
  { name: 'dense relu + bias', make: () => tf.layers.dense({ units: 24, activation: 'relu', kernelInitializer: 'glorotUniform' }), inputShape: [9, 40] },
  { name: 'dense linear, no bias', make: () => tf.layers.dense({ units: 7, useBias: false }), inputShape: [5, 12] },
  { name: 'dense linear + bias', make: () => tf.layers.dense({ units: 6 }), inputShape: [4, 10] },
  { name: 'conv 3x3 same relu', make: () => tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }), inputShape: [3, 9, 9, 4] },
  { name: 'conv 3x3 valid stride 2 linear', make: () => tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'valid' }), inputShape: [2, 11, 10, 3] },
  { name: 'conv 1x1 relu, no bias', make: () => tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'relu', useBias: false }), inputShape: [2, 5, 5, 6] },
];

/** The names of what {@link layerRun} returns, in order (no 'db' for a layer without bias). */
export const LAYER_RUN_OUTPUTS = ['output', 'dx', 'dW', 'db'];

/**
 * On tfjs's current backend: the layer's output and the gradients of sum(output * c) with respect to its
 * input and weights, through the fused kernels (`fused`) or as tfjs-layers applies the layer. Read
 * asynchronously, as every backend allows.
 */
export async function layerRun(c: LayerCase, fused: boolean): Promise<Float32Array[]> {
  const layer = c.make();
  layer.build(c.inputShape);
  const weights = layer.getWeights().map((w, i) => tf.tensor(randomArray(w.size, 10 + i, -0.6, 0.6), w.shape));
  layer.setWeights(weights);
  const x = tf.variable(tf.tensor(randomArray(c.inputShape.reduce((a, b) => a * b, 1), 3), c.inputShape));
  const vars = [x, ...layer.trainableWeights.map((w) => w.read() as tf.Variable)];
  let y!: tf.Tensor;
  const { grads } = tf.variableGrads(() => {
    const out = fused ? applyFused(layer, x) : (layer.apply(x) as tf.Tensor);
    assert.ok(out != null, 'the fused path applies');
    y = tf.keep(out);
    const weight = tf.tensor(randomArray(out.size, 7), out.shape);
    return tf.sum(tf.mul(out, weight)) as tf.Scalar;
  }, vars);
  const result = await Promise.all([y, ...vars.map((v) => grads[v.name])].map(async (t) => Float32Array.from(await t.data())));
  tf.dispose([y, x, ...weights, ...Object.values(grads)]);
  layer.weights.forEach((w) => w.dispose());
  return result;
}
