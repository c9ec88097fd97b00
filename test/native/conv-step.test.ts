/**
 * A full SLL conv-unit training step (tf.layers.conv2d 3x3 + ReLU, 2x2 max pooling, average pooling to 2x2,
 * a fixed projection, softmax cross-entropy + Bhattacharyya alignment to fixed parent logits,
 * tf.variableGrads over the conv kernel and bias, Adam) on native with NativeAdamOptimizer against the cpu
 * backend with tfjs Adam; its kernels run natively; no tensor leaks across steps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { NativeAdamOptimizer } from '../../src/native/adam.js';
import { assertClose, countAddonCalls, randomArray, requireNative, use } from './helpers.js';

const B = 8;
const K = 10;
const [H, W, C, F] = [12, 12, 6, 8];

interface Unit {
  conv: tf.layers.Layer;
  projection: tf.Tensor2D;
  parent: tf.Tensor2D;
  targets: tf.Tensor2D;
  x: tf.Tensor4D;
  optimizer: tf.Optimizer;
}

let unitCount = 0;

function buildUnit(kind: 'native' | 'tfjs'): Unit {
  unitCount++;
  const conv = tf.layers.conv2d({
    filters: F, kernelSize: 3, padding: 'same', activation: 'relu', name: `conv_step_${unitCount}`,
    kernelInitializer: tf.initializers.heUniform({ seed: 5 }), biasInitializer: tf.initializers.constant({ value: 0.01 }),
  });
  conv.build([null, H, W, C]);
  const features = 2 * 2 * F;
  return {
    conv,
    projection: tf.tensor2d(randomArray(features * K, 21, -0.3, 0.3), [features, K]),
    parent: tf.tensor2d(randomArray(B * K, 22, -2, 2), [B, K]),
    targets: tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: B }, (_, i) => (i * 3) % K), 'int32'), K).toFloat()) as tf.Tensor2D,
    x: tf.tensor4d(randomArray(B * H * W * C, 23, 0, 1), [B, H, W, C]),
    optimizer: kind === 'native' ? new NativeAdamOptimizer(1e-2, 0.9, 0.999, 1e-8) : tf.train.adam(1e-2, 0.9, 0.999, 1e-8),
  };
}

function stepUnit(u: Unit): number {
  return tf.tidy(() => {
    const vars = u.conv.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => {
      const h = tf.maxPool(u.conv.apply(u.x) as tf.Tensor4D, 2, 2, 'valid');
      const pooled = tf.avgPool(h, [H / 4, W / 4], [H / 4, W / 4], 'valid').reshape([B, 4 * F]);
      const logq = tf.logSoftmax(tf.matMul(pooled, u.projection));
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(u.targets, logq), 1)));
      const bc = tf.neg(tf.mean(tf.logSumExp(tf.mul(tf.add(logq, tf.logSoftmax(u.parent)), 0.5), 1)));
      return tf.add(ce, bc) as tf.Scalar;
    }, vars);
    u.optimizer.applyGradients(grads);
    return value.dataSync()[0];
  });
}

function disposeUnit(u: Unit): void {
  u.conv.weights.forEach((w) => w.dispose());
  u.optimizer.dispose();
  tf.dispose([u.projection, u.parent, u.targets, u.x]);
}

async function train(backend: 'native' | 'cpu', steps: number) {
  await use(backend);
  const u = buildUnit(backend === 'native' ? 'native' : 'tfjs');
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push(stepUnit(u));
  const weights = u.conv.getWeights().map((w) => Float32Array.from(w.dataSync()));
  disposeUnit(u);
  return { losses, weights };
}

test('a conv-unit step (conv + relu, pooling, CE + alignment, variableGrads, Adam) on native equals cpu', async () => {
  requireNative();
  const steps = 8;
  const cpu = await train('cpu', steps);
  const native = await train('native', steps);
  assertClose(native.losses, cpu.losses, 1e-4, 'losses');
  assert.ok(native.losses[steps - 1] < native.losses[0], 'the unit learns');
  native.weights.forEach((w, i) => assertClose(w, cpu.weights[i], 1e-3, `weight ${i} after ${steps} steps`, 0.1));
});

test('the native conv-unit step runs its convolution, pooling and Adam natively', async () => {
  requireNative();
  await use('native');
  const u = buildUnit('native');
  stepUnit(u);
  const { calls } = await countAddonCalls(() => stepUnit(u));
  disposeUnit(u);
  assert.equal(calls.conv2d, 1, JSON.stringify(calls));
  assert.equal(calls.conv2dBackpropFilter, 1, 'the filter gradient');
  assert.equal(calls.conv2dBackpropInput ?? 0, 0, 'no input gradient: x is a constant');
  assert.equal(calls.pool2d, 2, 'max and average pooling');
  assert.equal(calls.pool2dBackprop, 2, 'their gradients');
  assert.equal(calls.adam, 2, 'one fused Adam call per variable');
});

test('no tensor leaks: tensor count and bytes are flat across 15 native conv-unit steps', async () => {
  requireNative();
  await use('native');
  const u = buildUnit('native');
  stepUnit(u);
  const before = tf.memory().numTensors;
  const bytes = tf.memory().numBytes;
  for (let s = 0; s < 15; s++) {
    stepUnit(u);
    assert.equal(tf.memory().numTensors, before, `tensor count after step ${s + 2}`);
  }
  assert.equal(tf.memory().numBytes, bytes);
  disposeUnit(u);
});
