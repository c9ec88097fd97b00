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
import { assertClose, countAddonCalls, requireNative, use } from './helpers.js';
import { buildConvUnit, disposeConvUnit, stepConvUnit, type ConvUnit } from './conv-unit.js';

const B = 8;
const [SIZE, C, F] = [12, 6, 8];

function buildUnit(kind: 'native' | 'tfjs'): ConvUnit {
  const optimizer = kind === 'native' ? new NativeAdamOptimizer(1e-2, 0.9, 0.999, 1e-8) : tf.train.adam(1e-2, 0.9, 0.999, 1e-8);
  return buildConvUnit(B, SIZE, C, F, optimizer);
}

async function train(backend: 'native' | 'cpu', steps: number) {
  await use(backend);
  const u = buildUnit(backend === 'native' ? 'native' : 'tfjs');
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push(stepConvUnit(u));
  const weights = u.conv.getWeights().map((w) => Float32Array.from(w.dataSync()));
  disposeConvUnit(u);
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
  stepConvUnit(u);
  const { calls } = await countAddonCalls(() => stepConvUnit(u));
  disposeConvUnit(u);
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
  stepConvUnit(u);
  const before = tf.memory().numTensors;
  const bytes = tf.memory().numBytes;
  for (let s = 0; s < 15; s++) {
    stepConvUnit(u);
    assert.equal(tf.memory().numTensors, before, `tensor count after step ${s + 2}`);
  }
  assert.equal(tf.memory().numBytes, bytes);
  disposeConvUnit(u);
});
