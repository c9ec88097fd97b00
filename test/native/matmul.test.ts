/** BatchMatMul and _FusedMatMul on the native backend (OpenBLAS) against cpu and a float64 reference. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { compareBackends, countAddonCalls, input, requireNative, runOn, assertCloseNorm } from './helpers.js';

const GEMM_RTOL = 1e-4;
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** Operand shapes [..., rows, cols] of op(A) = [M, K] and op(B) = [K, N] under the transposes. */
function shapes(batchA: number[], batchB: number[], M: number, K: number, N: number, ta: boolean, tb: boolean) {
  return {
    a: [...batchA, ...(ta ? [K, M] : [M, K])],
    b: [...batchB, ...(tb ? [N, K] : [K, N])],
  };
}

test('matMul matches cpu for every transpose combination over several sizes', async () => {
  requireNative();
  let seed = 1;
  for (const [M, K, N] of [[1, 1, 1], [5, 7, 3], [64, 33, 17], [128, 256, 96], [3, 1, 4], [10, 128, 1]]) {
    for (const [ta, tb] of TRANSPOSES) {
      const s = shapes([], [], M, K, N, ta, tb);
      await compareBackends([input(s.a, seed++), input(s.b, seed++)], (a, b) => tf.matMul(a, b, ta, tb), GEMM_RTOL, `matMul ${M}x${K}x${N} ta=${ta} tb=${tb}`, true);
    }
  }
});

test('batched matMul matches cpu: equal batches, and one side broadcast (batch 1 or rank 2)', async () => {
  requireNative();
  let seed = 100;
  const batchCases: [number[], number[]][] = [
    [[3], [3]],
    [[2, 3], [2, 3]],
    [[1], [4]],
    [[4], [1]],
    [[], [4]],
    [[4], []],
    [[2, 3], [3]],
  ];
  for (const [ba, bb] of batchCases) {
    for (const [ta, tb] of TRANSPOSES) {
      const s = shapes(ba, bb, 6, 5, 4, ta, tb);
      await compareBackends([input(s.a, seed++), input(s.b, seed++)], (a, b) => tf.matMul(a, b, ta, tb), GEMM_RTOL, `matMul [${s.a}] x [${s.b}] ta=${ta} tb=${tb}`, true);
    }
  }
  const s = shapes([5], [5], 8, 8, 8, false, false);
  const { calls } = await countAddonCalls(() => runOn('native', [input(s.a, 1), input(s.b, 2)], (a, b) => tf.matMul(a, b)));
  assert.equal(calls.matmul, 1, 'a batch of 5 is one native call');
});

/** float64 reference for any batch broadcast (cpu's BatchMatMul gets [2,1,M,K] x [3,K,N] wrong). */
function reference(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], ta: boolean, tb: boolean) {
  const r = Math.max(aShape.length, bShape.length);
  const pa = [...new Array(r - aShape.length).fill(1), ...aShape];
  const pb = [...new Array(r - bShape.length).fill(1), ...bShape];
  const M = ta ? pa[r - 1] : pa[r - 2];
  const K = ta ? pa[r - 2] : pa[r - 1];
  const N = tb ? pb[r - 2] : pb[r - 1];
  const outBatch = pa.slice(0, -2).map((d, i) => Math.max(d, pb[i]));
  const batch = outBatch.reduce((x, y) => x * y, 1);
  const out = new Float64Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    let rem = i;
    let ia = 0;
    let ib = 0;
    let ma = 1;
    let mb = 1;
    for (let d = outBatch.length - 1; d >= 0; d--) {
      const idx = rem % outBatch[d];
      rem = Math.floor(rem / outBatch[d]);
      if (pa[d] !== 1) ia += idx * ma;
      if (pb[d] !== 1) ib += idx * mb;
      ma *= pa[d];
      mb *= pb[d];
    }
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ia * M * K + (ta ? k * M + m : m * K + k)];
          const bv = b[ib * K * N + (tb ? n * K + k : k * N + n)];
          s += av * bv;
        }
        out[i * M * N + m * N + n] = s;
      }
    }
  }
  return { values: out, shape: [...outBatch, M, N] };
}

test('matMul with a general batch broadcast ([2,1,M,K] x [3,K,N]) matches a float64 reference', async () => {
  requireNative();
  let seed = 200;
  for (const [ba, bb] of [[[2, 1], [3]], [[2, 1], [1, 3]], [[1, 2, 1], [3, 1, 1]]] as [number[], number[]][]) {
    for (const [ta, tb] of TRANSPOSES) {
      const s = shapes(ba, bb, 4, 6, 5, ta, tb);
      const a = input(s.a, seed++);
      const b = input(s.b, seed++);
      const [out] = await runOn('native', [a, b], (x, y) => tf.matMul(x, y, ta, tb));
      const ref = reference(a.values as Float32Array, s.a, b.values as Float32Array, s.b, ta, tb);
      assert.deepEqual(out.shape, ref.shape);
      assertCloseNorm(out.values, ref.values, GEMM_RTOL, `[${s.a}] x [${s.b}] ta=${ta} tb=${tb}`);
      // The _FusedMatMul kernel, with a row bias and relu, on the same broadcast (tf.fused.matMul itself
      // flattens batch dims to one and refuses such shapes: call the kernel directly).
      const bias = input([ref.shape[ref.shape.length - 1]], seed++);
      const [fused] = await runOn('native', [a, b, bias], (x, y, z) =>
        tf.engine().runKernel('_FusedMatMul', { a: x, b: y, bias: z }, { transposeA: ta, transposeB: tb, activation: 'relu' }) as tf.Tensor,
      );
      const n = bias.shape[0];
      const expected = ref.values.map((v, i) => Math.max(0, v + bias.values[i % n]));
      assertCloseNorm(fused.values, expected, GEMM_RTOL, `fused relu [${s.a}] x [${s.b}] ta=${ta} tb=${tb}`);
    }
  }
});

const ACTIVATIONS = ['linear', 'relu', 'relu6', 'leakyrelu', 'sigmoid', 'elu'] as const;

test('fused matMul matches cpu for every transpose, bias shape and activation', async () => {
  requireNative();
  const M = 12;
  const K = 9;
  const N = 7;
  let seed = 300;
  const biasShapes: (number[] | null)[] = [null, [N], [1, N], [M, N], [M, 1], [], [1]];
  for (const [ta, tb] of TRANSPOSES) {
    for (const biasShape of biasShapes) {
      for (const activation of ACTIVATIONS) {
        const s = shapes([], [], M, K, N, ta, tb);
        const inputs = [input(s.a, seed++, -2, 2), input(s.b, seed++, -2, 2)];
        if (biasShape) inputs.push(input(biasShape, seed++, -2, 2));
        const f = (a: tf.Tensor, b: tf.Tensor, bias?: tf.Tensor) =>
          tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation, leakyreluAlpha: 0.15 });
        await compareBackends(inputs, f, GEMM_RTOL, `fused ta=${ta} tb=${tb} bias [${biasShape}] ${activation}`, true);
      }
    }
  }
});

test('fused matMul: batched, batch-shaped bias (general path) and prelu (cpu fallback) match cpu', async () => {
  requireNative();
  let seed = 400;
  for (const [ta, tb] of TRANSPOSES) {
    const s = shapes([3], [3], 5, 4, 6, ta, tb);
    for (const biasShape of [[6], [3, 1, 6], [3, 5, 6], [5, 1]]) {
      for (const activation of ['linear', 'relu'] as const) {
        const inputs = [input(s.a, seed++), input(s.b, seed++), input(biasShape, seed++)];
        const f = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
          tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation });
        await compareBackends(inputs, f, GEMM_RTOL, `fused batched [${s.a}] bias [${biasShape}] ${activation}`, true);
      }
    }
    const inputs = [input(s.a, seed++), input(s.b, seed++), input([6], seed++), input([6], seed++, 0, 0.5)];
    const prelu = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor, w: tf.Tensor) =>
      tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: 'prelu', preluActivationWeights: w });
    await compareBackends(inputs, prelu, GEMM_RTOL, `fused prelu ta=${ta} tb=${tb}`, true);
  }
  const { calls } = await countAddonCalls(() =>
    runOn('native', [input([4, 3], 1), input([3, 5], 2), input([5], 3)], (a, b, bias) =>
      tf.fused.matMul({ a, b, bias, activation: 'relu' }),
    ),
  );
  assert.equal(calls.matmul, 1, 'bias and relu fused into one native call');
  assert.equal(calls.binary ?? 0, 0);
});

test('gradients through matMul and fused matMul (every transpose, bias, relu and linear) match cpu', async () => {
  requireNative();
  let seed = 500;
  for (const [ta, tb] of TRANSPOSES) {
    const s = shapes([], [], 16, 24, 8, ta, tb);
    const base = [input(s.a, seed++), input(s.b, seed++)];
    const plain = (a: tf.Tensor, b: tf.Tensor) => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, ta, tb))))([a, b]);
    await compareBackends(base, plain, GEMM_RTOL, `grads matMul ta=${ta} tb=${tb}`, true);
    for (const activation of ['relu', 'linear'] as const) {
      const inputs = [...base, input([8], seed++)];
      const fused = (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
        tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) =>
          tf.sum(tf.square(tf.fused.matMul({ a: x, b: y, bias: z, transposeA: ta, transposeB: tb, activation }))),
        )([a, b, bias]);
      await compareBackends(inputs, fused, GEMM_RTOL, `grads fused ${activation} ta=${ta} tb=${tb}`, true);
    }
  }
  // Batched (tfjs's MatMul gradient does not reduce over a broadcast batch on any backend: equal batches).
  const inputs = [input([3, 6, 5], seed++), input([3, 5, 4], seed++)];
  const batched = (a: tf.Tensor, b: tf.Tensor) => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.sin(tf.matMul(x, y))))([a, b]);
  await compareBackends(inputs, batched, GEMM_RTOL, 'grads batched matMul', true);
});

test('large GEMM (128 x 784 x 1024, the first SLL layer) matches cpu', async () => {
  requireNative();
  const inputs = [input([128, 784], 1, 0, 1), input([784, 1024], 2, -0.05, 0.05)];
  await compareBackends(inputs, (a, b) => [tf.matMul(a, b), tf.matMul(a, tf.matMul(a, b), true, false)], GEMM_RTOL, 'SLL layer 1 forward and dW', true);
});
