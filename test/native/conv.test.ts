/**
 * The native NHWC convolution kernels (Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter)
 * against the tfjs cpu backend over sizes, strides, paddings, kernel sizes, dilations and batch sizes;
 * gradients through tf.conv2d and tf.fused.conv2d; the 1- and 2-thread paths; the addon's checks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import { ADDON_PATH, nativeAddon, nativeThreads, setNativeThreads } from '../../src/native/backend.js';
import { assertCloseNorm, compareBackends, countAddonCalls, input, requireNative, runOn } from './helpers.js';
import { CONV_CASES as CASES, DILATED, conv, convInputs, describeConv as describe, outShape, randomCases, type ConvCase } from './conv-cases.js';

/** Relative to the largest magnitude of the expected tensor (sums of up to 7*7*C products). */
const CONV_RTOL = 1e-4;

test('conv2d forward matches cpu (kernel sizes 1..7, strides 1-3, same/valid/explicit/numeric padding, dilations)', async () => {
  requireNative();
  let seed = 1;
  for (const c of [...CASES, ...DILATED, ...randomCases(16, 99)]) {
    const { x, w } = convInputs(c, (seed += 2));
    await compareBackends([x, w], conv(c), CONV_RTOL, `conv2d ${describe(c)}`, true);
  }
});

test('conv2d gradients (tf.grads: Conv2DBackpropInput and Conv2DBackpropFilter) match cpu', async () => {
  requireNative();
  let seed = 1000;
  for (const c of [...CASES, ...randomCases(12, 7)]) {
    const { x, w } = convInputs(c, (seed += 3));
    const dy = input(outShape(c), seed + 2);
    const f = (xt: tf.Tensor, wt: tf.Tensor, dyt: tf.Tensor) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dyt)))([xt, wt]);
    await compareBackends([x, w, dy], f, CONV_RTOL, `conv2d gradients ${describe(c)}`, true);
  }
});

test('the conv2d kernels and their gradients take the native path', async () => {
  requireNative();
  const c = CASES[5];
  const { x, w } = convInputs(c, 5);
  const dy = input(outShape(c), 6);
  const { calls } = await countAddonCalls(() =>
    runOn('native', [x, w, dy], (xt, wt, dyt) => [
      conv(c)(xt, wt),
      ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dyt)))([xt, wt]),
    ]),
  );
  assert.ok((calls.conv2d ?? 0) >= 2, JSON.stringify(calls));
  assert.equal(calls.conv2dBackpropInput, 1);
  assert.equal(calls.conv2dBackpropFilter, 1);
});

test('conv2dTranspose (Conv2DBackpropInput as an op) matches cpu', async () => {
  requireNative();
  let seed = 3000;
  for (const [n, h, w, c, co, k, s, pad] of [
    [2, 4, 5, 3, 6, 3, 2, 'same'],
    [1, 5, 5, 4, 2, 2, 2, 'valid'],
    [3, 6, 6, 2, 3, 3, 1, 'same'],
  ] as [number, number, number, number, number, number, number, 'same' | 'valid'][]) {
    const outH = pad === 'same' ? h * s : (h - 1) * s + k;
    const outW = pad === 'same' ? w * s : (w - 1) * s + k;
    const x = input([n, h, w, c], seed++);
    const filter = input([k, k, co, c], seed++);
    await compareBackends([x, filter], (a, b) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [n, outH, outW, co], s, pad), CONV_RTOL, `conv2dTranspose ${n}x${h}x${w}x${c} k${k} s${s} ${pad}`, true);
  }
});

const FUSED_ACTIVATIONS = ['linear', 'relu', 'relu6', 'leakyrelu', 'sigmoid', 'elu'] as const;

test('fused conv2d (bias per channel, scalar or broadcast; every activation) matches cpu', async () => {
  requireNative();
  let seed = 5000;
  const c = CASES[7];
  const [, oh, ow] = outShape(c);
  for (const activation of FUSED_ACTIVATIONS) {
    for (const biasShape of [null, [c.co], [1], [1, 1, 1, c.co], [oh, ow, c.co]]) {
      const { x, w } = convInputs(c, (seed += 3));
      const inputs = [x, w];
      if (biasShape) inputs.push(input(biasShape, seed + 2));
      const f = (xt: tf.Tensor, wt: tf.Tensor, bt?: tf.Tensor) =>
        tf.fused.conv2d({ x: xt as tf.Tensor4D, filter: wt as tf.Tensor4D, strides: c.stride, pad: c.pad as 'same', bias: bt, activation, leakyreluAlpha: 0.1 });
      await compareBackends(inputs, f, CONV_RTOL, `fused conv2d ${activation} bias [${biasShape}]`, true);
    }
  }
  const { x, w } = convInputs(c, 1);
  const { calls } = await countAddonCalls(() =>
    runOn('native', [x, w, input([c.co], 3)], (xt, wt, bt) =>
      tf.fused.conv2d({ x: xt as tf.Tensor4D, filter: wt as tf.Tensor4D, strides: c.stride, pad: 'same', bias: bt, activation: 'relu' })),
  );
  assert.equal(calls.conv2d, 1, 'bias and relu are fused into the one native call');
  assert.equal(calls.binary ?? 0, 0);
});

test('fused conv2d gradients (linear activation keeps the fused kernel under tf.grads) match cpu', async () => {
  requireNative();
  let seed = 6000;
  for (const c of [CASES[5], CASES[8], CASES[11]]) {
    const { x, w } = convInputs(c, (seed += 4));
    const b = input([c.co], seed + 2);
    const dy = input(outShape(c), seed + 3);
    for (const activation of ['linear', 'relu'] as const) {
      const f = (xt: tf.Tensor, wt: tf.Tensor, bt: tf.Tensor, dyt: tf.Tensor) =>
        tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) =>
          tf.sum(tf.mul(tf.fused.conv2d({ x: p as tf.Tensor4D, filter: q as tf.Tensor4D, strides: c.stride, pad: c.pad as 'same', bias: r, activation }), dyt)),
        )([xt, wt, bt]);
      await compareBackends([x, w, b, dy], f, CONV_RTOL, `fused conv2d ${activation} gradients ${describe(c)}`, true);
    }
  }
});

test('tf.layers.conv2d with relu (forward and variableGrads) matches cpu', async () => {
  requireNative();
  const x = input([3, 10, 10, 4], 11);
  const results: Record<string, Float32Array[]> = {};
  for (const backend of ['cpu', 'native'] as const) {
    const out = await runOn(backend, [x], (xt) => {
      const layer = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), biasInitializer: tf.initializers.constant({ value: 0.05 }) });
      const y = layer.apply(xt) as tf.Tensor;
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(xt) as tf.Tensor)) as tf.Scalar, layer.trainableWeights.map((v) => v.read() as tf.Variable));
      const res = [y, ...Object.values(grads)];
      layer.dispose();
      return res;
    });
    results[backend] = out.map((o) => o.values);
  }
  results.native.forEach((v, i) => assertCloseNorm(v, results.cpu[i], CONV_RTOL, `layers.conv2d output ${i}`));
});

test('the 1- and 2-thread paths agree (forward, filter and input gradients)', async () => {
  requireNative();
  const before = nativeThreads();
  // The padding-skipping regions (16x16 and 4x4 images), the direct few-channel kernel (C = 1) and the
  // 1x1-image shortcut, each large enough to split over threads.
  const cases: ConvCase[] = [
    { n: 5, h: 16, w: 16, c: 16, co: 16, k: [3, 3], stride: [1, 1], pad: 'same' },
    { n: 64, h: 4, w: 4, c: 32, co: 32, k: [3, 3], stride: [1, 1], pad: 'same' },
    { n: 16, h: 28, w: 28, c: 1, co: 40, k: [3, 3], stride: [1, 1], pad: 'same' },
    { n: 64, h: 1, w: 1, c: 64, co: 64, k: [3, 3], stride: [1, 1], pad: 'same' },
  ];
  try {
    for (const c of cases) {
      const { x, w } = convInputs(c, 77);
      const dy = input(outShape(c), 78);
      const f = (xt: tf.Tensor, wt: tf.Tensor, dyt: tf.Tensor) => [
        conv(c)(xt, wt),
        ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dyt)))([xt, wt]),
      ];
      setNativeThreads(1);
      const one = await runOn('native', [x, w, dy], f);
      setNativeThreads(2);
      const two = await runOn('native', [x, w, dy], f);
      two.forEach((o, i) => assertCloseNorm(o.values, one[i].values, 1e-6, `${describe(c)}: output ${i} with 2 threads`));
    }
  } finally {
    setNativeThreads(Math.max(1, before));
  }
});

test('conv with zero-size batch or channels falls through without error', async () => {
  requireNative();
  await compareBackends([input([0, 5, 5, 3], 1), input([3, 3, 3, 2], 2)], (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), CONV_RTOL, 'empty batch', true);
});

test('the addon checks conv geometry and array lengths', () => {
  requireNative();
  const addon = nativeAddon();
  const geom = Int32Array.from([1, 4, 4, 2, 3, 3, 2, 4, 4, 1, 1, 1, 1, 1, 1]);
  const x = new Float32Array(32);
  const w = new Float32Array(36);
  const y = new Float32Array(32);
  addon.conv2d(x, w, y, geom, null, 0, 0, 0);
  assert.throws(() => addon.conv2d(x.subarray(1), w, y, geom, null, 0, 0, 0), RangeError);
  assert.throws(() => addon.conv2d(x, w.subarray(1), y, geom, null, 0, 0, 0), RangeError);
  assert.throws(() => addon.conv2d(x, w, y.subarray(1), geom, null, 0, 0, 0), RangeError);
  assert.throws(() => addon.conv2d(x, w, y, geom.subarray(1), null, 0, 0, 0), RangeError);
  assert.throws(() => addon.conv2d(x, w, y, Float32Array.from(geom) as unknown as Int32Array, null, 0, 0, 0), TypeError);
  const zeroStride = geom.slice();
  zeroStride[9] = 0;
  assert.throws(() => addon.conv2d(x, w, y, zeroStride, null, 0, 0, 0), RangeError);
  assert.throws(() => addon.conv2d(x, w, y, geom, new Float32Array(1), 1, 0, 0), RangeError, 'a [CO] bias of length 1');
  assert.throws(() => addon.conv2dBackpropFilter(x, y, new Float32Array(35), geom), RangeError);
  assert.throws(() => addon.conv2dBackpropInput(y, w, new Float32Array(31), geom), RangeError);
});

test('convolutions in concurrent worker threads, each splitting over 2 threads, give the main thread\'s results', async () => {
  requireNative();
  const before = nativeThreads();
  // Large enough for the addon's own threads; each worker also toggles OpenBLAS's per-process count.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(workerData.path);
    addon.setThreads(2);
    const g = Int32Array.from([8, 16, 16, 16, 3, 3, 16, 16, 16, 1, 1, 1, 1, 1, 1]);
    const x = new Float32Array(8 * 16 * 16 * 16).map((_, i) => Math.sin(i * 0.37 + workerData.seed));
    const w = new Float32Array(9 * 16 * 16).map((_, i) => Math.cos(i * 0.11));
    const y = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    for (let r = 0; r < 5; r++) {
      addon.conv2d(x, w, y, g, null, 0, 0, 0);
      addon.conv2dBackpropFilter(x, y, dw, g);
    }
    parentPort.postMessage({ y: Array.from(y.subarray(0, 64)), dw: Array.from(dw.subarray(0, 64)) });
  `;
  const runWorker = (seed: number) =>
    new Promise<{ y: number[]; dw: number[] }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { path: ADDON_PATH, seed } });
      w.once('message', resolve);
      w.once('error', reject);
    });
  try {
    const results = await Promise.all([runWorker(1), runWorker(2), runWorker(1), runWorker(2)]);
    setNativeThreads(1);
    const addon = nativeAddon();
    for (const seed of [1, 2]) {
      const g = Int32Array.from([8, 16, 16, 16, 3, 3, 16, 16, 16, 1, 1, 1, 1, 1, 1]);
      const x = new Float32Array(8 * 16 * 16 * 16).map((_, i) => Math.sin(i * 0.37 + seed));
      const w = new Float32Array(9 * 16 * 16).map((_, i) => Math.cos(i * 0.11));
      const y = new Float32Array(x.length);
      const dw = new Float32Array(w.length);
      addon.conv2d(x, w, y, g, null, 0, 0, 0);
      addon.conv2dBackpropFilter(x, y, dw, g);
      for (const r of results.filter((_, i) => i % 2 === seed - 1)) {
        assertCloseNorm(r.y, y.subarray(0, 64), 1e-6, `worker forward, seed ${seed}`);
        assertCloseNorm(r.dw, dw.subarray(0, 64), 1e-5, `worker filter gradient, seed ${seed}`);
      }
    }
  } finally {
    setNativeThreads(Math.max(1, before));
  }
});
