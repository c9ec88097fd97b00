/**
 * The native NHWC pooling kernels (MaxPool, AvgPool, MaxPoolGrad, AvgPoolGrad) against the tfjs cpu
 * backend, and their gradients through tf.maxPool / tf.avgPool via tf.grads. The average-pooling gradient
 * is also checked against a float64 reference: where a window overlaps 'same' padding, tfjs's cpu kernel
 * divides by the full window size while its forward pass (and ours) averages the elements inside.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { assertClose, compareBackends, countAddonCalls, input, requireNative, runOn, type Input } from './helpers.js';
import { POOL_CASES as CASES, avgPool, avgPoolGradReference, describePool as describe, gradOf, hasPartialWindows, maxPool, maxPoolGradReference, poolInfo, type PoolCase } from './conv-cases.js';

const POOL_RTOL = 1e-5;
/** Gradients add several dy values per element in float32 (cpu adds them in float64). */
const GRAD_RTOL = 1e-4;

test('maxPool and avgPool forward match cpu (2x2/2, 3x3/1, 3x3/2, same/valid/numeric padding)', async () => {
  requireNative();
  let seed = 1;
  for (const c of CASES) {
    const x = input(c.shape, seed++);
    await compareBackends([x], maxPool(c), POOL_RTOL, `maxPool ${describe(c)}`);
    await compareBackends([x], avgPool(c), POOL_RTOL, `avgPool ${describe(c)}`);
  }
});

test('maxPool gradient (MaxPoolGrad) matches cpu and a float64 reference, ties included (the first maximum wins)', async () => {
  requireNative();
  let seed = 100;
  for (const c of CASES) {
    const x = input(c.shape, seed++);
    const dy = input(poolInfo(c).outShape, seed++);
    // Few distinct values: many ties inside each window.
    const ties: Input = { values: Float32Array.from(x.values, (v) => Math.round(v * 2)), shape: x.shape };
    for (const [xs, what] of [[x, ''], [ties, ' with ties']] as const) {
      // cpu gets a dimRoundingMode case wrong (tfjs's gradient drops the mode): reference only there.
      if (c.rounding == null) await compareBackends([xs, dy], gradOf(maxPool(c)), GRAD_RTOL, `maxPool gradient${what} ${describe(c)}`);
      const [native] = await runOn('native', [xs, dy], gradOf(maxPool(c)));
      assertClose(native.values, maxPoolGradReference(c, xs.values as Float32Array, dy.values as Float32Array), GRAD_RTOL, `maxPool gradient${what} vs float64 ${describe(c)}`);
    }
  }
});

test('avgPool gradient (AvgPoolGrad) matches a float64 reference, and cpu wherever no window reaches into padding', async () => {
  requireNative();
  let seed = 200;
  let partialCases = 0;
  for (const c of CASES) {
    const x = input(c.shape, seed++);
    const dy = input(poolInfo(c).outShape, seed++);
    if (!hasPartialWindows(c) && c.rounding == null) {
      await compareBackends([x, dy], gradOf(avgPool(c)), GRAD_RTOL, `avgPool gradient ${describe(c)}`);
    } else {
      partialCases++;
    }
    const [native] = await runOn('native', [x, dy], gradOf(avgPool(c)));
    assertClose(native.values, avgPoolGradReference(c, dy.values as Float32Array), GRAD_RTOL, `avgPool gradient vs float64 ${describe(c)}`);
  }
  assert.ok(partialCases >= 3, 'some cases have windows over padding');
});

test('the avgPool gradient is the true gradient of the forward pass (finite differences on a padded case)', async () => {
  requireNative();
  const c: PoolCase = { shape: [1, 5, 5, 1], size: [3, 3], stride: [2, 2], pad: 'same' };
  const x = input(c.shape, 5);
  const dy = input(poolInfo(c).outShape, 6);
  const loss = (xs: Float32Array) => runOn('native', [{ values: xs, shape: c.shape }, dy], (a, d) => tf.sum(tf.mul(avgPool(c)(a), d)));
  const [grad] = await runOn('native', [x, dy], gradOf(avgPool(c)));
  const eps = 1e-2;
  for (const i of [0, 4, 12, 24]) {
    const plus = x.values.slice() as Float32Array;
    const minus = x.values.slice() as Float32Array;
    plus[i] += eps;
    minus[i] -= eps;
    const fd = ((await loss(plus))[0].values[0] - (await loss(minus))[0].values[0]) / (2 * eps);
    assert.ok(Math.abs(fd - grad.values[i]) < 1e-3, `element ${i}: finite difference ${fd} vs gradient ${grad.values[i]}`);
  }
});

test('the pooling kernels and gradients take the native path', async () => {
  requireNative();
  const c = CASES[0];
  const x = input(c.shape, 1);
  const dy = input(poolInfo(c).outShape, 2);
  const { calls } = await countAddonCalls(() =>
    runOn('native', [x, dy], (a, d) => [maxPool(c)(a), avgPool(c)(a), gradOf(maxPool(c))(a, d), gradOf(avgPool(c))(a, d)]),
  );
  assert.equal(calls.pool2d, 4, JSON.stringify(calls));
  assert.equal(calls.pool2dBackprop, 2, JSON.stringify(calls));
});

test('int32 pooling falls back to the cpu kernels', async () => {
  requireNative();
  const x: Input = { values: Int32Array.from({ length: 2 * 4 * 4 * 3 }, (_, i) => (i * 7) % 11), shape: [2, 4, 4, 3], dtype: 'int32' };
  await compareBackends([x], (a) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), 0, 'int32 maxPool');
});
