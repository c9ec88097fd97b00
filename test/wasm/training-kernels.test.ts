/**
 * The wasm training fixes (src/wasm/training-kernels.ts) against the tfjs cpu backend and float64
 * references: the new Conv2DBackpropFilter, the replaced MaxPoolGrad and AvgPoolGrad, gradients of
 * tf.conv2d, tf.maxPool and tf.avgPool via tf.grads, the transposed-MatMul patch, and a small conv-unit
 * training step without tensor leaks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { applyWasmTrainingFixes } from '../../src/wasm/training-kernels.js';
import { assertClose, assertCloseNorm, compareWithCpu, input, runOn, use, type Input } from '../native/helpers.js';
import {
  CONV_CASES, avgPool, avgPoolGradReference, conv, convInputs, describeConv, describePool, gradOf, hasPartialWindows,
  maxPool, maxPoolGradReference, outShape, POOL_CASES, poolInfo, randomCases, type ConvCase,
} from '../native/conv-cases.js';
import { buildConvUnit, disposeConvUnit, stepConvUnit } from '../native/conv-unit.js';

const CONV_RTOL = 1e-4;
const POOL_RTOL = 1e-4;

test('the fixes register on wasm and are idempotent', async () => {
  applyWasmTrainingFixes();
  const filter = tf.getKernel('Conv2DBackpropFilter', 'wasm');
  const maxPoolGrad = tf.getKernel('MaxPoolGrad', 'wasm');
  const avgPoolGrad = tf.getKernel('AvgPoolGrad', 'wasm');
  const matMul = tf.getKernel('BatchMatMul', 'wasm');
  assert.ok(filter && maxPoolGrad && avgPoolGrad && matMul);
  applyWasmTrainingFixes();
  assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm')!.kernelFunc, filter.kernelFunc);
  assert.equal(tf.getKernel('MaxPoolGrad', 'wasm')!.kernelFunc, maxPoolGrad.kernelFunc);
  assert.equal(tf.getKernel('AvgPoolGrad', 'wasm')!.kernelFunc, avgPoolGrad.kernelFunc);
  assert.equal(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc, matMul.kernelFunc, 'MatMul wrapped once');
  await use('wasm');
  assert.equal(tf.getBackend(), 'wasm');
});

test('conv2d gradients on wasm (the new Conv2DBackpropFilter, and wasm\'s Conv2DBackpropInput) match cpu', async () => {
  let seed = 1;
  for (const c of [...CONV_CASES, ...randomCases(12, 7)]) {
    const { x, w } = convInputs(c, (seed += 3));
    const dy = input(outShape(c), seed + 2);
    const f = (xt: tf.Tensor, wt: tf.Tensor, dyt: tf.Tensor) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dyt)))([xt, wt]);
    await compareWithCpu('wasm', [x, w, dy], f, CONV_RTOL, `wasm conv2d gradients ${describeConv(c)}`, true);
  }
});

test('the wasm Conv2DBackpropFilter kernel handles strides, explicit padding and a rounding mode directly', async () => {
  let seed = 500;
  for (const c of CONV_CASES) {
    const { x } = convInputs(c, (seed += 2));
    const dy = input(outShape(c), seed + 1);
    const filterShape = [c.k[0], c.k[1], c.c, c.co];
    const f = (xt: tf.Tensor, dyt: tf.Tensor) =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: xt, dy: dyt }, { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.rounding, filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor;
    await compareWithCpu('wasm', [x, dy], f, CONV_RTOL, `wasm conv2DBackpropFilter ${describeConv(c)}`, true);
  }
});

test('the wasm Conv2DBackpropFilter over several blocks of images (over 4096 output pixels) matches cpu', async () => {
  const cases: ConvCase[] = [
    { n: 5, h: 32, w: 32, c: 3, co: 4, k: [3, 3], stride: [1, 1], pad: 'same' },
    { n: 7, h: 70, w: 70, c: 2, co: 3, k: [3, 3], stride: [2, 2], pad: 'same' },
    { n: 2, h: 66, w: 66, c: 2, co: 3, k: [3, 3], stride: [1, 1], pad: 'valid' },
    { n: 3, h: 71, w: 69, c: 2, co: 2, k: [5, 4], stride: [3, 2], pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  ];
  let seed = 700;
  for (const c of cases) {
    const { x } = convInputs(c, (seed += 2));
    const dy = input(outShape(c), seed + 1);
    const filterShape = [c.k[0], c.k[1], c.c, c.co];
    const f = (xt: tf.Tensor, dyt: tf.Tensor) =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: xt, dy: dyt }, { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor;
    await compareWithCpu('wasm', [x, dy], f, CONV_RTOL, `wasm conv2DBackpropFilter ${describeConv(c)}`, true);
  }
});

test('tf.layers.conv2d (relu) kernel and bias gradients on wasm match cpu', async () => {
  const x = input([4, 12, 12, 5], 11);
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ['cpu', 'wasm'] as const) {
    const out = await runOn(backend, [x], (xt) => {
      const layer = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), biasInitializer: tf.initializers.constant({ value: 0.05 }) });
      layer.apply(xt);
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(xt) as tf.Tensor)) as tf.Scalar, layer.trainableWeights.map((v) => v.read() as tf.Variable));
      const res = Object.values(grads);
      layer.dispose();
      return res;
    });
    results[backend] = out.map((o) => o.values);
  }
  assert.equal(results.wasm.length, 2);
  results.wasm.forEach((v, i) => assertCloseNorm(v, results.cpu[i], CONV_RTOL, `layers.conv2d gradient ${i}`));
});

test('maxPool gradient on wasm (the replaced MaxPoolGrad) matches cpu and a float64 reference, ties included', async () => {
  let seed = 100;
  for (const c of POOL_CASES) {
    const x = input(c.shape, seed++);
    const dy = input(poolInfo(c).outShape, seed++);
    const ties: Input = { values: Float32Array.from(x.values, (v) => Math.round(v * 2)), shape: x.shape };
    for (const [xs, what] of [[x, ''], [ties, ' with ties']] as const) {
      // cpu gets a dimRoundingMode case wrong (tfjs's gradient drops the mode): reference only there.
      if (c.rounding == null) await compareWithCpu('wasm', [xs, dy], gradOf(maxPool(c)), POOL_RTOL, `wasm maxPool gradient${what} ${describePool(c)}`);
      const [got] = await runOn('wasm', [xs, dy], gradOf(maxPool(c)));
      assertClose(got.values, maxPoolGradReference(c, xs.values as Float32Array, dy.values as Float32Array), POOL_RTOL, `wasm maxPool gradient${what} vs float64 ${describePool(c)}`);
    }
  }
});

test('a 2x2 max-pool gradient that stock wasm got wrong (8 of 384 positions) now routes every gradient to its maximum', async () => {
  const c = { shape: [2, 8, 8, 3] as [number, number, number, number], size: [2, 2] as [number, number], stride: [2, 2] as [number, number], pad: 'valid' as const };
  const x = input(c.shape, 1);
  const dy = input([2, 4, 4, 3], 2);
  const [got] = await runOn('wasm', [x, dy], gradOf(maxPool(c)));
  const expected = maxPoolGradReference(c, x.values as Float32Array, dy.values as Float32Array);
  let wrong = 0;
  for (let i = 0; i < expected.length; i++) if (Math.abs(got.values[i] - expected[i]) > 1e-6) wrong++;
  assert.equal(wrong, 0, `${wrong} of ${expected.length} positions routed wrong`);
});

test('avgPool gradient on wasm (the replaced AvgPoolGrad) matches a float64 reference, and cpu where no window reaches into padding', async () => {
  let seed = 300;
  for (const c of POOL_CASES) {
    const x = input(c.shape, seed++);
    const dy = input(poolInfo(c).outShape, seed++);
    // wasm's MaxPool/AvgPool forward passes ignore dimRoundingMode (the windows of the extra output row
    // read garbage), so those cases cannot run through tf.grads on wasm.
    if (c.rounding != null) continue;
    await compareWithCpu('wasm', [x], maxPool(c), 1e-6, `wasm maxPool ${describePool(c)}`);
    await compareWithCpu('wasm', [x], avgPool(c), POOL_RTOL, `wasm avgPool ${describePool(c)}`);
    if (!hasPartialWindows(c)) await compareWithCpu('wasm', [x, dy], gradOf(avgPool(c)), POOL_RTOL, `wasm avgPool gradient ${describePool(c)}`);
    const [got] = await runOn('wasm', [x, dy], gradOf(avgPool(c)));
    assertClose(got.values, avgPoolGradReference(c, dy.values as Float32Array), POOL_RTOL, `wasm avgPool gradient vs float64 ${describePool(c)}`);
  }
});

test('the pooling gradient kernels recover a dimRoundingMode that tfjs drops, from dy', async () => {
  const c = POOL_CASES.find((p) => p.rounding != null)!;
  const x = input(c.shape, 1);
  const dy = input(poolInfo(c).outShape, 2);
  const attrs = { filterSize: c.size, strides: c.stride, pad: c.pad } as unknown as tf.NamedAttrMap;
  const [max, avg] = await runOn('wasm', [x, dy], (xt, dyt) => [
    tf.engine().runKernel('MaxPoolGrad', { dy: dyt, input: xt, output: dyt }, attrs) as tf.Tensor,
    tf.engine().runKernel('AvgPoolGrad', { dy: dyt, input: xt }, attrs) as tf.Tensor,
  ]);
  assertClose(max.values, maxPoolGradReference(c, x.values as Float32Array, dy.values as Float32Array), POOL_RTOL, 'MaxPoolGrad with ceil rounding');
  assertClose(avg.values, avgPoolGradReference(c, dy.values as Float32Array), POOL_RTOL, 'AvgPoolGrad with ceil rounding');
});

test('transposed matMuls on wasm (the explicit-transpose patch) match cpu', async () => {
  let seed = 900;
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const a = input(ta ? [2, 7, 5] : [2, 5, 7], seed++);
    const b = input(tb ? [2, 3, 7] : [2, 7, 3], seed++);
    await compareWithCpu('wasm', [a, b], (p, q) => tf.matMul(p, q, ta, tb), 1e-5, `wasm matMul ta=${ta} tb=${tb}`, true);
  }
});

// ---- A small conv-unit training step ----------------------------------------------------------------

test('a conv-unit training step on wasm (conv, max and average pooling, CE + alignment, Adam) matches cpu, without leaks', async () => {
  const steps = 6;
  const runs: Record<string, { losses: number[]; weights: Float32Array[] }> = {};
  for (const backend of ['cpu', 'wasm'] as const) {
    await use(backend);
    const u = buildConvUnit(6, 8, 4, 8, tf.train.adam(1e-2, 0.9, 0.999, 1e-8));
    const losses = [stepConvUnit(u)];
    const tensors = tf.memory().numTensors;
    for (let s = 1; s < steps; s++) {
      losses.push(stepConvUnit(u));
      assert.equal(tf.memory().numTensors, tensors, `${backend}: tensor count after step ${s + 1}`);
    }
    runs[backend] = { losses, weights: u.conv.getWeights().map((w) => Float32Array.from(w.dataSync())) };
    disposeConvUnit(u);
  }
  assertClose(runs.wasm.losses, runs.cpu.losses, 1e-4, 'losses');
  assert.ok(runs.wasm.losses[steps - 1] < runs.wasm.losses[0], 'the unit learns');
  runs.wasm.weights.forEach((w, i) => assertClose(w, runs.cpu.weights[i], 1e-3, `weight ${i} after ${steps} steps`, 0.1));
});
