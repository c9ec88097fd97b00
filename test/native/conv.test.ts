/**
 * The native NHWC convolution kernels (Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter)
 * against the tfjs cpu backend over sizes, strides, paddings, kernel sizes, dilations and batch sizes;
 * gradients through tf.conv2d and tf.fused.conv2d; the 1- and 2-thread paths; the addon's checks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { nativeAddon, nativeThreads, setNativeThreads } from '../../src/native/backend.js';
import { assertCloseNorm, compareBackends, countAddonCalls, input, requireNative, rng, runOn, type Input } from './helpers.js';

/** Relative to the largest magnitude of the expected tensor (sums of up to 7*7*C products). */
const CONV_RTOL = 1e-4;

type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];
type Pad = 'same' | 'valid' | number | ExplicitPad;

interface ConvCase {
  n: number;
  h: number;
  w: number;
  c: number;
  co: number;
  k: [number, number];
  stride: [number, number];
  pad: Pad;
  dilation?: [number, number];
  rounding?: 'floor' | 'round' | 'ceil';
}

function describe(c: ConvCase): string {
  const pad = Array.isArray(c.pad) ? JSON.stringify(c.pad) : String(c.pad);
  return `x [${c.n},${c.h},${c.w},${c.c}] k ${c.k.join('x')} -> ${c.co} stride ${c.stride} pad ${pad}` +
    (c.dilation ? ` dilation ${c.dilation}` : '') + (c.rounding ? ` rounding ${c.rounding}` : '');
}

/** Hand-picked cases: every kernel size 1..7, strides 1-3, the three padding kinds, batch 1..4. */
const CASES: ConvCase[] = [
  { n: 1, h: 5, w: 5, c: 1, co: 1, k: [1, 1], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 6, w: 7, c: 3, co: 4, k: [1, 1], stride: [1, 1], pad: 'same' },
  { n: 2, h: 7, w: 6, c: 3, co: 4, k: [1, 1], stride: [2, 2], pad: 'valid' },
  { n: 3, h: 8, w: 8, c: 4, co: 5, k: [2, 2], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 9, w: 7, c: 2, co: 3, k: [2, 2], stride: [1, 1], pad: 'same' },
  { n: 2, h: 8, w: 8, c: 8, co: 8, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 3, h: 7, w: 9, c: 5, co: 6, k: [3, 3], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: 'same' },
  { n: 2, h: 10, w: 8, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 11, w: 10, c: 2, co: 3, k: [3, 3], stride: [3, 3], pad: 'same' },
  { n: 2, h: 8, w: 9, c: 3, co: 2, k: [3, 2], stride: [1, 2], pad: 'same' },
  { n: 4, h: 6, w: 6, c: 6, co: 7, k: [3, 3], stride: [1, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { n: 1, h: 7, w: 7, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
  { n: 2, h: 6, w: 7, c: 2, co: 3, k: [3, 3], stride: [1, 1], pad: 1 },
  { n: 2, h: 7, w: 7, c: 2, co: 3, k: [3, 3], stride: [2, 2], pad: 1, rounding: 'ceil' },
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [4, 4], stride: [2, 2], pad: 'same' },
  { n: 1, h: 10, w: 11, c: 3, co: 4, k: [5, 5], stride: [1, 1], pad: 'same' },
  { n: 2, h: 12, w: 12, c: 2, co: 3, k: [5, 5], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 9, w: 10, c: 2, co: 2, k: [6, 6], stride: [3, 3], pad: 'same' },
  { n: 2, h: 12, w: 11, c: 3, co: 4, k: [7, 7], stride: [2, 2], pad: 'same' },
  { n: 1, h: 9, w: 9, c: 2, co: 3, k: [7, 7], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 6, w: 6, c: 16, co: 8, k: [3, 3], stride: [1, 1], pad: 'same' },
  // Large enough (> 2M multiply-adds) for the multi-threaded path.
  { n: 4, h: 16, w: 16, c: 16, co: 24, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 3, h: 17, w: 15, c: 12, co: 16, k: [3, 3], stride: [2, 2], pad: 'same' },
];

/** Forward-only: dilated convolutions (their gradients are not supported by tfjs). */
const DILATED: ConvCase[] = [
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [3, 3], stride: [1, 1], pad: 'same', dilation: [2, 2] },
  { n: 1, h: 10, w: 9, c: 2, co: 3, k: [3, 2], stride: [1, 1], pad: 'valid', dilation: [2, 3] },
];

/** A few more cases drawn at random (seeded) over the same ranges. */
function randomCases(count: number, seed: number): ConvCase[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const cases: ConvCase[] = [];
  while (cases.length < count) {
    const kh = 1 + Math.floor(r() * 7);
    const kw = 1 + Math.floor(r() * 7);
    const s = pick([1, 2, 3]);
    const pad = pick<Pad>(['same', 'valid', [[0, 0], [Math.floor(r() * 3), Math.floor(r() * 3)], [Math.floor(r() * 3), Math.floor(r() * 3)], [0, 0]]]);
    const h = kh + Math.floor(r() * 8);
    const w = kw + Math.floor(r() * 8);
    cases.push({ n: 1 + Math.floor(r() * 3), h, w, c: 1 + Math.floor(r() * 6), co: 1 + Math.floor(r() * 6), k: [kh, kw], stride: [s, pick([1, s])], pad });
  }
  return cases;
}

function convInputs(c: ConvCase, seed: number): { x: Input; w: Input } {
  return { x: input([c.n, c.h, c.w, c.c], seed), w: input([c.k[0], c.k[1], c.c, c.co], seed + 1) };
}

function conv(c: ConvCase) {
  return (x: tf.Tensor, w: tf.Tensor) =>
    tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dilation ?? 1, c.rounding);
}

function outShape(c: ConvCase): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.c], [c.k[0], c.k[1], c.c, c.co], c.stride, c.dilation ?? 1, c.pad, c.rounding).outShape;
}

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
  const c: ConvCase = { n: 5, h: 16, w: 16, c: 16, co: 16, k: [3, 3], stride: [1, 1], pad: 'same' };
  const { x, w } = convInputs(c, 77);
  const dy = input(outShape(c), 78);
  const f = (xt: tf.Tensor, wt: tf.Tensor, dyt: tf.Tensor) => [
    conv(c)(xt, wt),
    ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dyt)))([xt, wt]),
  ];
  try {
    setNativeThreads(1);
    const one = await runOn('native', [x, w, dy], f);
    setNativeThreads(2);
    const two = await runOn('native', [x, w, dy], f);
    two.forEach((o, i) => assertCloseNorm(o.values, one[i].values, 1e-6, `output ${i} with 2 threads`));
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
