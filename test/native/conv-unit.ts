/**
 * One SLL conv unit written in plain tfjs ops, shared by the engines' step tests (native, wasm): a 3x3 conv
 * layer with ReLU, 2x2 max pooling, average pooling to 2x2, a fixed projection, softmax cross-entropy +
 * Bhattacharyya alignment to fixed parent logits, tf.variableGrads over the conv kernel and bias, and the
 * given optimizer.
 */
import * as tf from '@tensorflow/tfjs';
import { randomArray } from './helpers.js';

export const CLASSES = 10;

export interface ConvUnit {
  conv: tf.layers.Layer;
  projection: tf.Tensor2D;
  parent: tf.Tensor2D;
  targets: tf.Tensor2D;
  x: tf.Tensor4D;
  optimizer: tf.Optimizer;
}

let unitCount = 0;

/** A unit over a batch of `[batch, size, size, channels]` inputs (size divisible by 4), `filters` channels out. */
export function buildConvUnit(batch: number, size: number, channels: number, filters: number, optimizer: tf.Optimizer): ConvUnit {
  unitCount++;
  const conv = tf.layers.conv2d({
    filters, kernelSize: 3, padding: 'same', activation: 'relu', name: `conv_unit_${unitCount}`,
    kernelInitializer: tf.initializers.heUniform({ seed: 5 }), biasInitializer: tf.initializers.constant({ value: 0.01 }),
  });
  conv.build([null, size, size, channels]);
  const features = 2 * 2 * filters;
  return {
    conv,
    projection: tf.tensor2d(randomArray(features * CLASSES, 21, -0.3, 0.3), [features, CLASSES]),
    parent: tf.tensor2d(randomArray(batch * CLASSES, 22, -2, 2), [batch, CLASSES]),
    targets: tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 3) % CLASSES), 'int32'), CLASSES).toFloat()) as tf.Tensor2D,
    x: tf.tensor4d(randomArray(batch * size * size * channels, 23, 0, 1), [batch, size, size, channels]),
    optimizer,
  };
}

/** One training step; returns the loss. */
export function stepConvUnit(u: ConvUnit): number {
  return tf.tidy(() => {
    const [batch, size] = u.x.shape;
    const vars = u.conv.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => {
      const h = tf.maxPool(u.conv.apply(u.x) as tf.Tensor4D, 2, 2, 'valid');
      const pooled = tf.avgPool(h, size / 4, size / 4, 'valid').reshape([batch, -1]);
      const logq = tf.logSoftmax(tf.matMul(pooled, u.projection));
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(u.targets, logq), 1)));
      const bc = tf.neg(tf.mean(tf.logSumExp(tf.mul(tf.add(logq, tf.logSoftmax(u.parent)), 0.5), 1)));
      return tf.add(ce, bc) as tf.Scalar;
    }, vars);
    u.optimizer.applyGradients(grads);
    return value.dataSync()[0];
  });
}

export function disposeConvUnit(u: ConvUnit): void {
  u.conv.weights.forEach((w) => w.dispose());
  u.optimizer.dispose();
  tf.dispose([u.projection, u.parent, u.targets, u.x]);
}
