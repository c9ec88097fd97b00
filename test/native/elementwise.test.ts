/** The native elementwise, reduction and softmax kernels against the tfjs cpu backend. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { compareBackends, countAddonCalls, input, requireNative, runOn, sizeOf, use, type Input } from './helpers.js';
import { broadcastPlan, nativeThreads, setNativeThreads } from '../../src/native/backend.js';

const ELEMENTWISE_RTOL = 1e-5;

test('the native addon is built and the native backend registers', () => {
  requireNative();
  assert.ok(tf.getKernel('BatchMatMul', 'native'), 'BatchMatMul registered for native');
  const cpu = tf.getKernelsForBackend('cpu').map((k) => k.kernelName).sort();
  const native = tf.getKernelsForBackend('native').map((k) => k.kernelName).sort();
  assert.deepEqual(native.filter((k) => !k.startsWith('Sll')), cpu, 'every cpu kernel is registered for native');
  assert.deepEqual(native.filter((k) => k.startsWith('Sll')), ['SllActivationBiasGrad', 'SllBatchNormTrain', 'SllBatchNormTrainGrad', 'SllConv2D', 'SllDense', 'SllGelu', 'SllGeluGrad', 'SllLayerNorm', 'SllLayerNormGrad'], 'and sll\'s own');
});

const BINARY: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
  ['add', tf.add],
  ['sub', tf.sub],
  ['mul', tf.mul],
  ['div', tf.div],
  ['maximum', tf.maximum],
  ['minimum', tf.minimum],
  ['squaredDifference', tf.squaredDifference],
  ['pow', tf.pow],
];

/** Shape pairs: same shape, scalar either side, row and column broadcasts, both-sided and rank-5 ones. */
const BROADCASTS: [number[], number[]][] = [
  [[7], [7]],
  [[3, 5], [3, 5]],
  [[2, 3, 4, 5, 6], [2, 3, 4, 5, 6]],
  [[128, 1024], [128, 1024]],
  [[3, 5], []],
  [[], [3, 5]],
  [[], []],
  [[4, 6], [6]],
  [[6], [4, 6]],
  [[2, 3, 4], [4]],
  [[128, 1024], [1024]],
  [[4, 6], [4, 1]],
  [[4, 1], [4, 6]],
  [[128, 10], [128, 1]],
  [[4, 1], [1, 6]],
  [[2, 1, 4], [3, 1]],
  [[2, 1, 3, 1], [1, 4, 1, 5]],
  // Needs 5 collapsed dims: the kernel hands it to the cpu fallback.
  [[2, 1, 2, 1, 2], [1, 2, 1, 2, 1]],
  [[0, 3], [3]],
];

test('binary ops (add, sub, mul, div, maximum, minimum, squaredDifference, pow) match cpu under every broadcast', async () => {
  requireNative();
  let seed = 1;
  for (const [name, op] of BINARY) {
    for (const [aShape, bShape] of BROADCASTS) {
      // Positive operands keep pow real and div away from zero.
      const positive = name === 'pow' || name === 'div';
      const a = input(aShape, seed++, positive ? 0.5 : -2, 2);
      const b = input(bShape, seed++, positive ? 0.5 : -2, 2);
      await compareBackends([a, b], op, ELEMENTWISE_RTOL, `${name} [${aShape}] [${bShape}]`);
    }
  }
});

test('binary ops take the native path for float32 operands that collapse to at most 4 dims', async () => {
  requireNative();
  const a = input([2, 3, 4], 1);
  const b = input([4], 2);
  const { calls } = await countAddonCalls(() => runOn('native', [a, b], (x, y) => tf.add(x, y)));
  assert.equal(calls.binary, 1);
  assert.equal(broadcastPlan([2, 1, 2, 1, 2], [1, 2, 1, 2, 1]), null, 'rank-5 alternating broadcast falls back');
  assert.deepEqual(broadcastPlan([128, 1024], [1024])?.d, [1, 1, 128, 1024]);
});

test('a float32 tensor holding an Int32Array (a relabelling cast) is read correctly', async () => {
  requireNative();
  const ints: Input = { values: Int32Array.from([1, -2, 3, 40, 5, -6]), shape: [2, 3], dtype: 'int32' };
  const f = (x: tf.Tensor) => {
    const xf = tf.cast(x, 'float32');
    return [tf.add(xf, tf.scalar(0.5)), tf.sqrt(tf.abs(xf)), tf.sum(xf, 1), tf.matMul(xf, xf, false, true)];
  };
  await compareBackends([ints], f, ELEMENTWISE_RTOL, 'cast int32 -> float32');
  const bools: Input = { values: Int32Array.from([1, 0, 1, 1]), shape: [4], dtype: 'int32' };
  await compareBackends([bools], (x) => tf.mul(tf.cast(tf.cast(x, 'bool'), 'float32'), tf.scalar(3)), ELEMENTWISE_RTOL, 'cast bool -> float32');
});

test('int32 arithmetic falls back to the cpu kernels and keeps its dtype', async () => {
  requireNative();
  const a: Input = { values: Int32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3], dtype: 'int32' };
  const b: Input = { values: Int32Array.from([7, 8, 9]), shape: [3], dtype: 'int32' };
  await compareBackends([a, b], (x, y) => [tf.add(x, y), tf.mul(x, y), tf.sub(x, y), tf.sum(x, 1), tf.max(x), tf.neg(x), tf.square(x)], 0, 'int32');
});

const UNARY: [string, (x: tf.Tensor) => tf.Tensor, number, number][] = [
  ['relu', tf.relu, -3, 3],
  ['relu6', tf.relu6, -3, 9],
  ['step', (x) => tf.step(x, 0.25), -3, 3],
  ['sqrt', tf.sqrt, 0, 9],
  ['rsqrt', tf.rsqrt, 0.1, 9],
  ['square', tf.square, -3, 3],
  ['exp', tf.exp, -10, 10],
  ['log', tf.log, 1e-3, 100],
  ['neg', tf.neg, -3, 3],
  ['abs', tf.abs, -3, 3],
  ['sigmoid', tf.sigmoid, -10, 10],
  ['tanh', tf.tanh, -5, 5],
  ['elu', tf.elu, -5, 5],
  ['leakyRelu', (x) => tf.leakyRelu(x, 0.1), -3, 3],
  ['reciprocal', tf.reciprocal, 0.1, 10],
  ['log1p', tf.log1p, -0.9, 10],
  ['expm1', tf.expm1, -5, 5],
  ['sign', tf.sign, -3, 3],
  ['softplus', tf.softplus, -20, 20],
];

test('unary ops match cpu (relu, step, sqrt, exp, log, sigmoid, ... 19 of them)', async () => {
  requireNative();
  let seed = 100;
  for (const [name, op, lo, hi] of UNARY) {
    for (const shape of [[5], [33, 17], [128, 1024], [0]]) {
      const x = input(shape, seed++, lo, hi);
      if (x.values.length > 2 && lo < 0) x.values[1] = 0; // the kink of relu/step/sign
      await compareBackends([x], op, ELEMENTWISE_RTOL, `${name} [${shape}]`);
    }
  }
  const { calls } = await countAddonCalls(() => runOn('native', [input([4, 4], 1)], tf.relu));
  assert.equal(calls.unary, 1, 'relu ran natively');
});

test('NaN propagates as on cpu through relu, step, max reductions, maximum and softmax', async () => {
  requireNative();
  const x: Input = { values: Float32Array.from([1, NaN, -2, 3, -1, 0.5]), shape: [2, 3] };
  const y: Input = { values: Float32Array.from([0, 0, NaN, 1, 1, 1]), shape: [2, 3] };
  await compareBackends([x], (t) => [tf.relu(t), tf.step(t), tf.max(t, 1), tf.min(t, 0), tf.softmax(t)], 0, 'NaN unary');
  await compareBackends([x, y], (a, b) => [tf.maximum(a, b), tf.minimum(a, b), tf.add(a, b)], 0, 'NaN binary');
});

const REDUCTIONS: [string, (x: tf.Tensor, axis: number | number[] | undefined, keep: boolean) => tf.Tensor][] = [
  ['sum', (x, a, k) => tf.sum(x, a, k)],
  ['max', (x, a, k) => tf.max(x, a, k)],
  ['min', (x, a, k) => tf.min(x, a, k)],
  ['prod', (x, a, k) => tf.prod(x, a, k)],
  ['mean', (x, a, k) => tf.mean(x, a, k)],
];

test('reductions (sum, max, min, prod, mean) match cpu over every axis set, with and without keepDims', async () => {
  requireNative();
  const cases: [number[], (number | number[] | undefined)[]][] = [
    [[4, 5, 6], [undefined, 0, 1, 2, -1, [0, 1], [1, 2], [0, 1, 2], [0, 2], [2, 0]]],
    [[128, 1024], [0, 1]],
    [[128, 10], [1, -1]],
    [[7], [0]],
  ];
  let seed = 300;
  for (const [name, op] of REDUCTIONS) {
    for (const [shape, axes] of cases) {
      for (const axis of axes) {
        for (const keep of [false, true]) {
          // prod stays finite for values near 1; the others get a spread of signs.
          const x = name === 'prod' ? input(shape, seed++, 0.9, 1.1) : input(shape, seed++, -3, 3);
          const rtol = name === 'prod' && sizeOf(shape) > 100 ? 1e-4 : ELEMENTWISE_RTOL;
          await compareBackends([x], (t) => op(t, axis, keep), rtol, `${name} [${shape}] axis ${JSON.stringify(axis)} keepDims ${keep}`);
        }
      }
    }
  }
  const { calls } = await countAddonCalls(() => runOn('native', [input([128, 1024], 1)], (t) => tf.sum(t, 0)));
  assert.equal(calls.reduce, 1, 'column sum (the bias gradient) ran natively');
});

test('softmax and logSoftmax match cpu on rows of several widths', async () => {
  requireNative();
  let seed = 500;
  for (const shape of [[128, 10], [3, 4, 7], [1, 1], [5], [64, 1000]]) {
    const x = input(shape, seed++, -20, 20);
    await compareBackends([x], (t) => [tf.softmax(t), tf.logSoftmax(t), tf.logSumExp(t, -1)], ELEMENTWISE_RTOL, `softmax family [${shape}]`);
  }
  const { calls } = await countAddonCalls(() => runOn('native', [input([4, 10], 1)], (t) => tf.softmax(t)));
  assert.equal(calls.softmax, 1);
});

test('gradients of elementwise chains (relu, softmax cross-entropy, broadcast add) match cpu', async () => {
  requireNative();
  const x = input([16, 12], 1, -2, 2);
  const bias = input([12], 2);
  const labels = input([16, 12], 3, 0, 1);
  const loss = (a: tf.Tensor, b: tf.Tensor, y: tf.Tensor) =>
    tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(tf.relu(tf.add(a, b)))), 1)));
  await compareBackends([x, bias, labels], (a, b, y) => tf.grads(loss)([a, b, y]), ELEMENTWISE_RTOL, 'grads of CE(relu(x + b))', true);
  await compareBackends([x], (a) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.softmax(t), tf.sigmoid(t))))(a), ELEMENTWISE_RTOL, 'grad of softmax * sigmoid', true);
  await use('native');
});

test('large elementwise ops (over 1M elements: split over 2 threads) match cpu and the 1-thread path', async () => {
  requireNative();
  const before = nativeThreads();
  // Broadcasts that split the output along each of the 4 collapsed dims.
  const cases: [number[], number[]][] = [
    [[64, 32, 32, 64], [64]],
    [[2, 600000], [2, 1]],
    [[1200000], []],
    [[3, 5, 70000], [5, 1]],
    [[1100001], [1100001]],
  ];
  try {
    let seed = 1;
    for (const [aShape, bShape] of cases) {
      const a = input(aShape, seed++);
      const b = input(bShape, seed++);
      const f = (x: tf.Tensor, y: tf.Tensor) => [tf.mul(x, y), tf.sub(y, x), tf.relu(x), tf.step(x)];
      setNativeThreads(2);
      await compareBackends([a, b], f, 1e-6, `2 threads [${aShape}] [${bShape}]`);
      const two = await runOn('native', [a, b], f);
      setNativeThreads(1);
      const one = await runOn('native', [a, b], f);
      two.forEach((o, i) => assert.deepEqual(o.values, one[i].values, `output ${i}: 2 threads equal 1 thread exactly`));
    }
  } finally {
    setNativeThreads(Math.max(1, before));
  }
});

test('tile matches cpu exactly for every rep pattern, and batch norm gradients with it', async () => {
  requireNative();
  const cases: [number[], number[]][] = [
    [[5], [3]],
    [[1, 1, 1, 4], [2, 3, 5, 1]],
    [[2, 3], [1, 1]],
    [[2, 1, 3], [3, 4, 2]],
    [[3, 2], [2, 3]],
    [[0, 2], [3, 1]],
  ];
  let seed = 40;
  for (const [shape, reps] of cases) {
    await compareBackends([input(shape, seed++)], (x) => tf.tile(x, reps), 0, `tile [${shape}] by [${reps}]`);
  }
  // Batch norm's gradient tiles per-channel values over the activation.
  const x = input([4, 3, 3, 5], seed++);
  const mean = input([5], seed++);
  const variance = input([5], seed++, 0.5, 2);
  const offset = input([5], seed++);
  const scale = input([5], seed++, 0.5, 2);
  await compareBackends(
    [x, mean, variance, offset, scale],
    (xt, m, v, o, s) => tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.batchNorm(t, m, v, o, s, 1e-3))))(xt),
    1e-5,
    'batch norm gradient',
  );
});

/** Every permutation of 0..n-1. */
function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

test('transpose runs in the addon for every permutation up to rank 4 and equals a plain index loop', async () => {
  requireNative();
  let seed = 70;
  for (const shape of [[5], [3, 4], [2, 3, 4], [2, 3, 4, 5], [1, 4, 1, 3]]) {
    const x = input(shape, seed++);
    for (const perm of permutations(shape.length)) {
      await use('native');
      const { result, calls } = await countAddonCalls(() => tf.tidy(() => tf.transpose(tf.tensor(x.values, shape), perm)).dataSync());
      // (tf.transpose clones a rank-1 tensor without running the kernel.)
      assert.equal(calls.binary ?? 0, shape.length > 1 ? 1 : 0, `transpose [${shape}] by [${perm}] ran in the addon`);
      // Reference: out[i] = x[j] with j the source index of out's multi-index i, mapped through perm.
      const outShape = perm.map((p) => shape[p]);
      const strides = shape.map((_, k) => sizeOf(shape.slice(k + 1)));
      for (let i = 0; i < result.length; i++) {
        let rem = i;
        let j = 0;
        for (let k = outShape.length - 1; k >= 0; k--) {
          j += (rem % outShape[k]) * strides[perm[k]];
          rem = Math.floor(rem / outShape[k]);
        }
        assert.equal(result[i], x.values[j], `transpose [${shape}] by [${perm}] at ${i}`);
      }
    }
  }
  // Rank 5 (falls back to cpu), an empty tensor, and the gradient (a transpose by the inverse permutation).
  await compareBackends([input([2, 1, 3, 2, 2], seed++)], (t) => tf.transpose(t, [4, 2, 0, 3, 1]), 0, 'rank-5 transpose');
  await compareBackends([input([0, 3], seed++)], (t) => tf.transpose(t), 0, 'empty transpose');
  await compareBackends(
    [input([3, 4, 5], seed++), input([5, 3, 4], seed++)],
    (t, w) => tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.transpose(u, [2, 0, 1]), w)))(t),
    0,
    'transpose gradient',
  );
});
