/** The native LayerNorm and GELU kernels (with their gradients), and the Slice and Pad block copies, against tfjs's cpu backend. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { GELU_KERNEL, LAYER_NORM_KERNEL, gelu, layerNorm } from '../../src/models/transformer-ops.js';
import { setNativeThreads } from '../../src/native/backend.js';
import { compareBackends, countAddonCalls, input, requireNative, use } from './helpers.js';

const RTOL = 1e-4;

/** LayerNorm of x [..., D] and its gradients for x, gamma and beta under a random upstream gradient. */
function layerNormAndGrads(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, g: tf.Tensor): tf.Tensor[] {
  const y = layerNorm(x, gamma as tf.Tensor1D, beta as tf.Tensor1D);
  const grads = tf.grads((a, b, c) => tf.sum(tf.mul(layerNorm(a, b as tf.Tensor1D, c as tf.Tensor1D), g)))([x, gamma, beta]);
  return [y, ...grads];
}

for (const threads of [1, 2]) {
  for (const shape of [[3, 7], [2, 5, 16], [128, 65, 192]]) {
    test(`layerNorm on native (one kernel each way, ${threads} thread(s)) matches cpu's composition: values and gradients, [${shape}]`, async () => {
      requireNative();
      setNativeThreads(threads);
      const d = shape[shape.length - 1];
      const inputs = [input(shape, 1, -3, 3), input([d], 2, 0.5, 1.5), input([d], 3), input(shape, 4)];
      await compareBackends(inputs, layerNormAndGrads, RTOL, `layerNorm [${shape}]`);
      await use('native');
      const [x, gamma, beta, g] = inputs.map((i) => tf.tensor(i.values, i.shape));
      const { calls } = await countAddonCalls(() => tf.dispose(layerNormAndGrads(x, gamma, beta, g)));
      tf.dispose([x, gamma, beta, g]);
      assert.equal(calls.layerNorm, 2, 'one fused forward for the output, one for the gradient\'s forward');
      assert.equal(calls.layerNormGrad, 1);
    });

    test(`gelu on native (${threads} thread(s)) matches cpu's erf composition: values and gradient, [${shape}]`, async () => {
      requireNative();
      setNativeThreads(threads);
      const inputs = [input(shape, 5, -4, 4), input(shape, 6)];
      // cpu's erf is itself an approximation (absolute error ~1.5e-7), so the comparison is to the largest
      // magnitude: the gradient crosses zero near x = -0.75, where both sides are differences of near-equal
      // terms. Elementwise accuracy is the float64 test below.
      await compareBackends(inputs, (x, g) => [gelu(x), tf.grad((a) => tf.sum(tf.mul(gelu(a), g)))(x)], RTOL, `gelu [${shape}]`, true);
    });
  }
}

/** erfc in float64: by erf's Taylor series below 2.5, above by its continued fraction (100 terms from the tail). */
function erfc64(z: number): number {
  if (z < 0) return 2 - erfc64(-z);
  if (z < 2.5) {
    let sum = 0;
    let term = z;
    for (let n = 0; n < 80; n++) {
      sum += term / (2 * n + 1);
      term *= (-z * z) / (n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = exp(-z^2) / sqrt(pi) / (z + (1/2) / (z + 1 / (z + (3/2) / (z + ...))))
  let f = z;
  for (let k = 100; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

test('gelu on native matches x Phi(x) in float64 from -10 to 10, far into the left tail, and its gradient Phi + x phi', async () => {
  requireNative();
  await use('native');
  const n = 20001;
  const xs = Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
  const x = tf.tensor1d(xs);
  const y = await gelu(x).data();
  const dx = await tf.grad((a) => tf.sum(gelu(a)))(x).data();
  x.dispose();
  for (let i = 0; i < n; i++) {
    const v = xs[i];
    const phi = 0.5 * erfc64(-v / Math.SQRT2);
    const pdf = Math.exp((-v * v) / 2) / Math.sqrt(2 * Math.PI);
    // Relative to the value (Phi(-10) ~ 7.6e-24: the tail is where 1 + erf(x) in float32 loses everything).
    const errY = Math.abs(y[i] - v * phi) / Math.max(Math.abs(v * phi), 1e-37);
    assert.ok(errY <= 1e-5, `gelu(${v}) = ${y[i]}, float64 ${v * phi} (relative error ${errY.toExponential(2)})`);
    // Relative to the terms' size: Phi + x phi crosses zero near x = -0.75.
    const errG = Math.abs(dx[i] - (phi + v * pdf)) / (phi + Math.abs(v * pdf));
    assert.ok(errG <= 5e-6, `gelu'(${v}) = ${dx[i]}, float64 ${phi + v * pdf} (error ${errG.toExponential(2)} of the terms)`);
  }
});

test('the fused kernels are the native backend\'s only: other backends compose tfjs ops', async () => {
  requireNative();
  assert.ok(tf.getKernel(LAYER_NORM_KERNEL, 'native') && tf.getKernel(GELU_KERNEL, 'native'));
  assert.equal(tf.getKernel(LAYER_NORM_KERNEL, 'cpu'), undefined);
  assert.equal(tf.getKernel(GELU_KERNEL, 'cpu'), undefined);
});

const SLICES: [number[], number[], number[]][] = [
  [[10], [3], [4]],
  [[4, 6], [1, 2], [2, 3]],
  [[128, 65, 192], [0, 1, 0], [-1, 64, -1]],
  [[128, 65, 192], [0, 0, 0], [-1, 1, -1]],
  [[2, 3, 4, 5, 6], [1, 0, 1, 2, 0], [1, 3, 2, 2, 6]],
  [[3, 4], [0, 0], [0, 4]],
];

test('Slice on native (block copies) matches cpu for every rank, including empty slices', async () => {
  requireNative();
  let seed = 10;
  for (const [shape, begin, size] of SLICES) {
    await compareBackends([input(shape, seed++)], (x) => tf.slice(x, begin, size), 0, `slice [${shape}] from [${begin}] size [${size}]`);
  }
});

test('PadV2 on native (block copies) matches cpu, with zero and other constants', async () => {
  requireNative();
  const cases: [number[], [number, number][], number][] = [
    [[5], [[2, 3]], 0],
    [[128, 64, 192], [[0, 0], [1, 0], [0, 0]], 0],
    [[2, 3, 4], [[1, 1], [0, 2], [3, 0]], 1.5],
    [[2, 3, 4, 5, 2], [[0, 1], [1, 0], [0, 0], [2, 2], [0, 1]], -1],
  ];
  let seed = 20;
  for (const [shape, paddings, value] of cases) {
    await compareBackends([input(shape, seed++)], (x) => tf.pad(x, paddings, value), 0, `pad [${shape}] by ${JSON.stringify(paddings)}`);
  }
});
