/**
 * WebGpuAdamOptimizer (in place, two variables to a dispatch) against Adam written here in float64, and its
 * state against tfjs's Adam. On SwiftShader without a GPU; skips only with a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { WebGpuAdamOptimizer } from '../../src/gpu/adam.js';
import { optimizerState, restoreOptimizerState } from '../../src/train/optimizers.js';
import { checkOptimizerSteps } from './optimizer-steps.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU Adam tests');

const LR = 0.01;
const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;

/** Adam in float64, with the textbook bias corrections 1 - beta^t. */
function adam64(p: number[], grads: number[][]): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const out = [...p];
  grads.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < out.length; i++) {
      m[i] = B1 * m[i] + (1 - B1) * g[i];
      v[i] = B2 * v[i] + (1 - B2) * g[i] * g[i];
      out[i] -= (LR * (m[i] / (1 - B1 ** t))) / (Math.sqrt(v[i] / (1 - B2 ** t)) + EPS);
    }
  });
  return out;
}

test('WebGpuAdamOptimizer matches float64 Adam over 6 steps, two variables to a dispatch, reads see the update', { skip }, async () => {
  const opt = new WebGpuAdamOptimizer(LR, B1, B2, EPS);
  await checkOptimizerSteps(opt, { name: 'adam-test', dispatches, reference: (init, grads) => adam64(init, grads) });
  opt.dispose();
});

test('WebGpuAdamOptimizer: a tensor sharing the variable keeps its values; state round-trips; no tensor leaks', { skip }, async () => {
  const v = tf.variable(tf.tensor1d([1, 2, 3, 4]), true, 'adam-shared');
  const alias = tf.clone(v); // shares v's storage
  const opt = new WebGpuAdamOptimizer(LR, B1, B2, EPS);
  const step = () => {
    const g = tf.tensor1d([0.5, -1, 2, 0]);
    opt.applyGradients([{ name: v.name, tensor: g }]);
    g.dispose();
  };
  step();
  assert.deepEqual(Array.from(await alias.data()), [1, 2, 3, 4]);
  const state = await optimizerState(opt);
  assert.equal(state.iterations, 1);
  assert.ok(state.scalars.accBeta1 > 0 && state.scalars.accBeta2 > 0);
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, tensors, 'tensor count flat over steps');
  // A second optimizer restored from the state after step 1 continues exactly as the first did.
  const w = tf.variable(tf.tensor1d(Array.from(await v.data())), true, 'adam-restored');
  const copy = new WebGpuAdamOptimizer(LR, B1, B2, EPS);
  const restoredAt = await optimizerState(opt);
  await restoreOptimizerState(copy, restoredAt);
  const g = tf.tensor1d([0.5, -1, 2, 0]);
  opt.applyGradients([{ name: v.name, tensor: g }]);
  copy.applyGradients([{ name: w.name, tensor: g }]);
  assert.deepEqual(Array.from(await w.data()), Array.from(await v.data()));
  tf.dispose([g, v, w, alias]);
  opt.dispose();
  copy.dispose();
});
