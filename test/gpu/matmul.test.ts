/**
 * Our matmul on webgpu (src/gpu/matmul.ts): every variant (transposes, bias, ReLU) against a float64
 * product, one dispatch each, tfjs's kernel for what it does not take, and the masked product of the
 * projection heads (its mask bit for bit with the CPU's, its gradients against the cpu backend). On
 * SwiftShader without a GPU; skips only with a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { MATMUL_TILINGS, useMatMul } from '../../src/gpu/matmul.js';
import { MASKED_PRODUCT_KERNEL, maskedProduct, maskedProjection, type MaskDraw } from '../../src/objectives/projection.js';
import { assertCloseNorm, randomArray } from '../native/helpers.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU matmul tests');

/** act(op(A) op(B) + bias) in float64, A stored [M, K] or [K, M], B [K, N] or [N, K]. */
function reference(a: Float32Array, b: Float32Array, M: number, N: number, K: number, ta: boolean, tb: boolean, bias: Float32Array | null, relu: boolean): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += a[ta ? k * M + m : m * K + k] * b[tb ? n * K + k : k * N + n];
      c[m * N + n] = relu ? Math.max(0, s) : s;
    }
  }
  return c;
}

// Tile edges (64), slice edges (16), one row or column, K = 1, and the SLL step's own shapes.
const SHAPES: [number, number, number][] = [
  [16, 64, 784],
  [70, 130, 33],
  [1, 1, 1],
  [128, 10, 1024],
  [5, 200, 10],
  [64, 64, 16],
  [65, 63, 17],
];

test('matmul on webgpu: every transpose, bias and ReLU against float64, one dispatch each', { skip }, async () => {
  await useBackend('webgpu');
  for (const [M, N, K] of SHAPES) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const av = randomArray(M * K, M + 1);
        const bv = randomArray(K * N, N + 2);
        const biasv = randomArray(N, 3);
        const a = tf.tensor2d(av, ta ? [K, M] : [M, K]);
        const b = tf.tensor2d(bv, tb ? [N, K] : [K, N]);
        const bias = tf.tensor1d(biasv);
        await Promise.all([a.data(), b.data(), bias.data()]);
        for (const fused of ['none', 'linear', 'relu'] as const) {
          const what = `[${M}, ${N}, ${K}] transposeA ${ta} transposeB ${tb} ${fused}`;
          const before = dispatches();
          const c =
            fused === 'none'
              ? tf.matMul(a, b, ta, tb)
              : tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: fused });
          assert.equal(dispatches() - before, 1, `${what}: one dispatch`);
          assert.deepEqual(c.shape, [M, N]);
          const want = reference(av, bv, M, N, K, ta, tb, fused === 'none' ? null : biasv, fused === 'relu');
          assertCloseNorm(await c.data(), want, 1e-5, what);
          c.dispose();
        }
        tf.dispose([a, b, bias]);
      }
    }
  }
});

test("matmul on webgpu: every tiling gives the default's products bit for bit (same sums, same order), masked too", { skip }, async () => {
  await useBackend('webgpu');
  // Past the edges of the larger tiles (128) and slices (16), and one entry.
  const shapes: [number, number, number][] = [
    [129, 130, 33],
    [1, 1, 1],
    [40, 257, 50],
  ];
  const draw: MaskDraw = { key: 777, keep: 0.5, value: 2 };
  const products = async () => {
    const out: Float32Array[] = [];
    for (const [M, N, K] of shapes) {
      // Each operand read both ways (k contiguous or not), and the mask: 3 pipelines a tiling (each takes
      // SwiftShader a second or two to compile).
      for (const [ta, tb] of [[false, false], [true, true]]) {
        const a = tf.tensor2d(randomArray(M * K, M), ta ? [K, M] : [M, K]);
        const b = tf.tensor2d(randomArray(K * N, N), tb ? [N, K] : [K, N]);
        const bias = tf.tensor1d(randomArray(N, 4));
        const cs = [
          tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: 'relu' }),
          ...(ta ? [] : [tf.engine().runKernel(MASKED_PRODUCT_KERNEL, { a, b }, { transposeB: tb, ...draw } as unknown as tf.NamedAttrMap) as tf.Tensor]),
        ];
        for (const c of cs) out.push((await c.data()) as Float32Array);
        if (!ta && !tb) {
          // One against float64, so that the default is right too and not only alike.
          assertCloseNorm(out[out.length - 2], reference(await a.data() as Float32Array, await b.data() as Float32Array, M, N, K, false, false, await bias.data() as Float32Array, true), 1e-5, `[${M}, ${N}, ${K}]`);
        }
        tf.dispose([a, b, bias, ...cs]);
      }
    }
    return out;
  };
  try {
    useMatMul(true, MATMUL_TILINGS[0]);
    const want = await products();
    for (const tiling of MATMUL_TILINGS.slice(1)) {
      useMatMul(true, tiling);
      const got = await products();
      got.forEach((g, i) => assert.deepEqual(g, want[i], `${tiling}: product ${i}`));
    }
    assert.throws(() => useMatMul(true, '32x32/2x2' as never), /not one of/);
  } finally {
    useMatMul(true);
  }
});

test('matmul on webgpu: one batch of rank 3 here, batches and a [M, N] bias by tfjs, all right', { skip }, async () => {
  await useBackend('webgpu');
  const [M, N, K] = [9, 12, 20];
  const av = randomArray(2 * M * K, 5);
  const bv = randomArray(2 * K * N, 6);
  const a3 = tf.tensor3d(av.subarray(0, M * K), [1, M, K]);
  const b3 = tf.tensor3d(bv.subarray(0, K * N), [1, K, N]);
  const c3 = tf.matMul(a3, b3);
  assert.deepEqual(c3.shape, [1, M, N]);
  assertCloseNorm(await c3.data(), reference(av, bv, M, N, K, false, false, null, false), 1e-6, 'one batch');
  // Two batches: tfjs's program (our kernel takes one matrix a side).
  const a = tf.tensor3d(av, [2, M, K]);
  const b = tf.tensor3d(bv, [2, K, N]);
  const c = await tf.matMul(a, b).data();
  for (let i = 0; i < 2; i++) {
    const want = reference(av.subarray(i * M * K), bv.subarray(i * K * N), M, N, K, false, false, null, false);
    assertCloseNorm(c.subarray(i * M * N, (i + 1) * M * N), want, 1e-6, `batch ${i}`);
  }
  // A bias of the whole output's shape: tfjs's fused program.
  const biasv = randomArray(M * N, 7);
  const a2 = tf.tensor2d(av.subarray(0, M * K), [M, K]);
  const b2 = tf.tensor2d(bv.subarray(0, K * N), [K, N]);
  const fused = await tf.fused.matMul({ a: a2, b: b2, bias: tf.tensor2d(biasv, [M, N]) }).data();
  const plain = reference(av, bv, M, N, K, false, false, null, false);
  assertCloseNorm(fused, plain.map((v, i) => v + biasv[i]), 1e-6, '[M, N] bias');
  assert.throws(() => tf.matMul(tf.zeros([3, 4]), tf.zeros([5, 6])), /inner|4.*5|5.*4/);
  tf.dispose([a3, b3, c3, a, b, a2, b2]);
});

test('useMatMul(false) gives BatchMatMul and _FusedMatMul back to tfjs and drops the masked product', { skip }, async () => {
  await useBackend('webgpu');
  const ours = [tf.getKernel('BatchMatMul', 'webgpu')!.kernelFunc, tf.getKernel('_FusedMatMul', 'webgpu')!.kernelFunc];
  try {
    useMatMul(false);
    assert.notEqual(tf.getKernel('BatchMatMul', 'webgpu')!.kernelFunc, ours[0]);
    assert.notEqual(tf.getKernel('_FusedMatMul', 'webgpu')!.kernelFunc, ours[1]);
    assert.equal(tf.getKernel(MASKED_PRODUCT_KERNEL, 'webgpu'), undefined);
    const a = tf.tensor2d(randomArray(6 * 5, 8), [6, 5]);
    const b = tf.tensor2d(randomArray(5 * 4, 9), [5, 4]);
    const c = await tf.matMul(a, b).data();
    assertCloseNorm(c, reference(await a.data() as Float32Array, await b.data() as Float32Array, 6, 4, 5, false, false, null, false), 1e-6, "tfjs's product");
    tf.dispose([a, b]);
  } finally {
    useMatMul(true);
  }
  assert.equal(tf.getKernel('BatchMatMul', 'webgpu')!.kernelFunc, ours[0]);
  assert.equal(tf.getKernel('_FusedMatMul', 'webgpu')!.kernelFunc, ours[1]);
  assert.ok(tf.getKernel(MASKED_PRODUCT_KERNEL, 'webgpu'));
});

const DRAWS: [[number, number], MaskDraw][] = [
  [[300, 10], { key: 12345, keep: 0.5, value: 2 }],
  [[33, 7], { key: 0xfffffff0, keep: 0.8, value: Math.fround(1 / Math.fround(0.8)) }],
];

test('masked product on webgpu: I (M ⊙ R) is the CPU mask times R bit for bit, in one dispatch', { skip }, async () => {
  for (const [shape, draw] of DRAWS) {
    const values = Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => Math.sin(i * 0.37) * 3);
    await useBackend('cpu');
    const want = await tf.tidy(() => maskedProjection(tf.tensor2d(values, shape), draw)).data();
    await useBackend('webgpu');
    const r = tf.tensor2d(values, shape);
    const eye = tf.eye(shape[0]) as tf.Tensor2D;
    await Promise.all([r.data(), eye.data()]);
    const before = dispatches();
    const got = maskedProduct(eye, r, draw);
    assert.equal(dispatches() - before, 1, 'one dispatch');
    const out = await got.data();
    // === rather than Object.is: a dropped entry is 0 * R, -0 on the CPU where R < 0, +0 from the product.
    for (let i = 0; i < want.length; i++) assert.ok(out[i] === want[i], `[${shape}] keep ${draw.keep}: entry ${i} ${out[i]} vs ${want[i]}`);
    tf.dispose([r, eye, got]);
  }
});

test('masked product on webgpu: value and gradients (features, and R were it trained) match the cpu backend', { skip }, async () => {
  for (const [[d, k], draw] of DRAWS) {
    const batch = 19;
    const fv = randomArray(batch * d, 10);
    const rv = randomArray(d * k, 11);
    const wv = randomArray(batch * k, 12);
    const run = async () => {
      const f = tf.tensor2d(fv, [batch, d]);
      const r = tf.tensor2d(rv, [d, k]);
      const w = tf.tensor2d(wv, [batch, k]);
      const loss = (ff: tf.Tensor, rr: tf.Tensor) => tf.sum(tf.mul(maskedProduct(ff as tf.Tensor2D, rr as tf.Tensor2D, draw), w));
      const v = maskedProduct(f, r, draw);
      const [df, dr] = tf.grads(loss)([f, r]);
      const out = await Promise.all([v.data(), df.data(), dr.data()]);
      tf.dispose([f, r, w, v, df, dr]);
      return out;
    };
    await useBackend('cpu');
    const want = await run();
    await useBackend('webgpu');
    const got = await run();
    ['value', 'd features', 'd R'].forEach((what, i) => assertCloseNorm(got[i], want[i], 1e-5, `[${d}, ${k}] ${what}`));
  }
});
