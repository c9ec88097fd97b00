/**
 * WebGpuMomentumOptimizer (in place, two variables to a dispatch) against SGD with momentum written here in
 * float64, and its state against tfjs's MomentumOptimizer. On SwiftShader without a GPU; skips only with a
 * printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { WebGpuMomentumOptimizer } from '../../src/gpu/momentum.js';
import { makeOptimizer, optimizerState, restoreOptimizerState } from '../../src/train/optimizers.js';
import { checkOptimizerSteps } from './optimizer-steps.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU momentum tests');

const LR = 0.05;
const M = 0.9;

/** SGD with momentum in float64 (PyTorch's and tfjs's form: a = m a + g, p -= lr a; Nesterov: p -= lr (g + m a)). */
function momentum64(p: number[], grads: number[][], lrs: number[], nesterov: boolean): number[] {
  const a = p.map(() => 0);
  const out = [...p];
  grads.forEach((g, s) => {
    for (let i = 0; i < out.length; i++) {
      a[i] = M * a[i] + g[i];
      out[i] -= lrs[s] * (nesterov ? g[i] + M * a[i] : a[i]);
    }
  });
  return out;
}

for (const nesterov of [false, true]) {
  test(`WebGpuMomentumOptimizer${nesterov ? ' (Nesterov)' : ''} matches float64 over 6 steps with a learning-rate change, two variables to a dispatch`, { skip }, async () => {
    await useBackend('webgpu');
    const opt = new WebGpuMomentumOptimizer(LR, M, nesterov);
    const lrAt = (s: number) => (s < 3 ? LR : LR / 2);
    await checkOptimizerSteps(opt, { name: `momentum-test-${nesterov}`, dispatches, lrAt, reference: (init, grads, lrs) => momentum64(init, grads, lrs, nesterov) });
    opt.dispose();
  });
}

test("WebGpuMomentumOptimizer: 'sgd' on webgpu; a tensor sharing the variable keeps its values; tfjs's state, which round-trips; no tensor leaks", { skip }, async () => {
  await useBackend('webgpu');
  const made = makeOptimizer({ optimizer: 'sgd', lr: LR, momentum: M, lrSchedule: 'constant' });
  assert.ok(made instanceof WebGpuMomentumOptimizer, "'sgd' is the fused optimizer on webgpu");
  made.dispose();
  const v = tf.variable(tf.tensor1d([1, 2, 3, 4]), true, 'momentum-shared');
  const alias = tf.clone(v); // shares v's storage
  const opt = new WebGpuMomentumOptimizer(LR, M);
  const step = (o: tf.Optimizer, name: string) => {
    const g = tf.tensor1d([0.5, -1, 2, 0]);
    o.applyGradients([{ name, tensor: g }]);
    g.dispose();
  };
  step(opt, v.name);
  assert.deepEqual(Array.from(await alias.data()), [1, 2, 3, 4]);
  const state = await optimizerState(opt);
  assert.equal(state.iterations, 1);
  assert.deepEqual(state.slots.map((s) => s.name), ['momentum-shared/momentum']);
  assert.deepEqual(Array.from(state.slots[0].values), [0.5, -1, 2, 0]);
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step(opt, v.name);
  assert.equal(tf.memory().numTensors, tensors, 'tensor count flat over steps');
  // A second optimizer restored from this state continues exactly as the first does.
  const w = tf.variable(tf.tensor1d(Array.from(await v.data())), true, 'momentum-restored');
  const copy = new WebGpuMomentumOptimizer(LR, M);
  await restoreOptimizerState(copy, await optimizerState(opt));
  step(opt, v.name);
  step(copy, w.name);
  assert.deepEqual(Array.from(await w.data()), Array.from(await v.data()));
  // The same steps with tfjs's optimizer on cpu reach the same values.
  await useBackend('cpu');
  const u = tf.variable(tf.tensor1d([1, 2, 3, 4]), true, 'momentum-cpu');
  const reference = tf.train.momentum(LR, M);
  for (let i = 0; i < 7; i++) step(reference, u.name);
  const want = Array.from(await u.data());
  await useBackend('webgpu');
  const got = Array.from(await v.data());
  got.forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-6 * Math.max(1, Math.abs(want[i])), `[${i}]: ${x} vs ${want[i]}`));
  tf.dispose([v, w, alias]);
  opt.dispose();
  copy.dispose();
  reference.dispose();
  u.dispose();
});
