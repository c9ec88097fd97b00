/**
 * The native backend's fused kernels of an SLL step: the unit loss (against eq. 5 in float64 and the tfjs ops),
 * the fused Dense and Conv2D layers of a unit (forward and every gradient against tfjs-layers on cpu; no input
 * gradient computed for a stop-gradient input), and the thread-count invariance of their backward pass and of Adam.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { registerNative } from '../../src/backend.js';
import { applyFused } from '../../src/models/fused-layers.js';
import { nativeUnitLossStats } from '../../src/native/unit-loss.js';
import { nativeAddon, setNativeThreads } from '../../src/native/backend.js';
import { stopGradient } from '../../src/objectives/stop-gradient.js';
import { unitLossStats } from '../../src/objectives/unit-loss.js';
import { assertNear, runUnitLoss, UNIT_LOSS_CASES, unitLossInputs, unitLossReference } from '../objectives/unit-loss-reference.js';
import { FUSED_LAYER_CASES, LAYER_RUN_OUTPUTS, layerRun } from '../models/fused-layer-cases.js';
import { assertCloseNorm, countAddonCalls, randomArray, use } from './helpers.js';

for (const [B, withParent, lambda] of UNIT_LOSS_CASES) {
  test(`native unit loss, B=${B}, ${withParent ? 'with' : 'without'} parent, lambda ${lambda}: stats and gradient match float64 and the tfjs ops`, async () => {
    const { v, parent, labels } = unitLossInputs(B, withParent);
    const want = unitLossReference(v, labels, parent, lambda);
    await use('native');
    assert.ok(registerNative());
    const { result: native, calls } = await countAddonCalls(() => runUnitLoss(nativeUnitLossStats, v, labels, parent, lambda));
    assert.equal(calls.unitLoss, 1, 'one native call computes the loss, its stats and its gradient');
    assertNear(native.stats, want.stats, 'native stats', 1e-6);
    assertNear(native.grad, want.grad.flat(), 'native gradient', 1e-6);
    // unitLossStats picks the native kernel on native, and tfjs ops on cpu: the same numbers.
    const picked = await runUnitLoss(unitLossStats, v, labels, parent, lambda);
    assertNear(picked.stats, want.stats, 'unitLossStats on native', 1e-6);
    await use('cpu');
    const cpu = await runUnitLoss(unitLossStats, v, labels, parent, lambda);
    assertNear(cpu.stats, want.stats, 'cpu stats');
    assertNear(cpu.grad, want.grad.flat(), 'cpu gradient');
  });
}

test('native unit loss: labels outside [0, K) are an error, not a read out of bounds', async () => {
  await use('native');
  const v = tf.zeros([2, 3]) as tf.Tensor2D;
  const labels = tf.tensor1d([0, 3], 'int32');
  assert.throws(() => nativeUnitLossStats(v, labels, null, 1), /labels must lie in \[0, K\)/);
  tf.dispose([v, labels]);
});

for (const c of FUSED_LAYER_CASES) {
  test(`fused ${c.name}: output and gradients (input, kernel, bias) match tfjs-layers on cpu`, async () => {
    await use('cpu');
    const want = await layerRun(c, false);
    await use('native');
    const got = await layerRun(c, true);
    assert.equal(got.length, want.length);
    got.forEach((g, i) => assertCloseNorm(g, want[i], 1e-5, `${c.name} ${LAYER_RUN_OUTPUTS[i]}`));
  });
}

test('a fused conv unit computes no input gradient when its input is stop-gradient, one otherwise', async () => {
  await use('native');
  const layer = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' });
  layer.build([2, 6, 6, 3]);
  const x = tf.variable(tf.randomNormal([2, 6, 6, 3]));
  const weights = layer.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = (input: tf.Tensor) => () => tf.sum(applyFused(layer, input)!) as tf.Scalar;
  const local = await countAddonCalls(() => tf.dispose(tf.variableGrads(loss(stopGradient(x)), weights).grads));
  assert.equal(local.calls.conv2dBackpropInput ?? 0, 0, 'no input gradient behind a stop-gradient');
  assert.equal(local.calls.conv2dBackpropFilter, 1);
  assert.equal(local.calls.reluBiasGrad, 1, 'ReLU and bias backward in one pass');
  const through = await countAddonCalls(() => tf.dispose(tf.variableGrads(loss(x), [x, ...weights]).grads));
  assert.equal(through.calls.conv2dBackpropInput, 1, 'the input gradient when it is asked for');
  tf.dispose(x);
  layer.weights.forEach((w) => w.dispose());
});

test('the fused backward pass and Adam give the same bits at 1 and 2 threads', async () => {
  await use('native');
  const addon = nativeAddon();
  const rows = 3000;
  const cols = 200;
  const dy = randomArray(rows * cols, 1);
  const y = randomArray(rows * cols, 2);
  const run = (threads: number) => {
    setNativeThreads(threads);
    const dz = new Float32Array(rows * cols);
    const db = new Float32Array(cols);
    addon.reluBiasGrad(dy, y, dz, db, rows, cols);
    const n = 300_001;
    const p = randomArray(n, 3);
    const m = randomArray(n, 4, 0, 0.1);
    const v = randomArray(n, 5, 0, 0.01);
    addon.adam(p, m, v, randomArray(n, 6), 1e-3, 0.9, 0.999, 1e-8, 3);
    return [dz, db, p, m, v];
  };
  const one = run(1);
  const two = run(2);
  one.forEach((a, i) => assert.deepEqual(two[i], a, `output ${i}`));
  // dz is dy where y > 0, and db its column sums.
  for (let i = 0; i < 50; i++) assert.equal(one[0][i], y[i] > 0 ? dy[i] : 0);
  let s = 0;
  for (let r = 0; r < rows; r++) s += one[0][r * cols + 7];
  assert.ok(Math.abs(one[1][7] - s) <= 1e-4 * Math.max(1, Math.abs(s)), `db[7] ${one[1][7]} vs ${s}`);
});

