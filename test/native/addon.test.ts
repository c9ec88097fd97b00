/** The addon's own API: raw sgemm with offsets and leading dimensions, bounds checks, threads, workers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ADDON_PATH, nativeAddon, nativeThreads, setNativeThreads } from '../../src/native/backend.js';
import { assertClose, assertCloseNorm, randomArray, requireNative } from './helpers.js';

/** float64 C = op(A) op(B) on row-major blocks with leading dimensions. */
function gemmRef(ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number, aOff: number, B: Float32Array, ldb: number, bOff: number) {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const a = A[aOff + (ta ? k * lda + m : m * lda + k)];
        const b = B[bOff + (tb ? n * ldb + k : k * ldb + n)];
        s += a * b;
      }
      C[m * N + n] = s;
    }
  }
  return C;
}

test('sgemm works in place on sub-blocks (offsets, leading dimensions, alpha, beta) for all 4 transposes', () => {
  requireNative();
  const addon = nativeAddon();
  const [M, N, K] = [5, 4, 6];
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const lda = (ta ? M : K) + 3;
    const ldb = (tb ? K : N) + 2;
    const ldc = N + 1;
    const aOff = 7;
    const bOff = 5;
    const cOff = 3;
    const A = randomArray(aOff + (ta ? K : M) * lda, 1);
    const B = randomArray(bOff + (tb ? N : K) * ldb, 2);
    const C = randomArray(cOff + M * ldc, 3);
    const C0 = C.slice();
    addon.sgemm(ta, tb, M, N, K, 0.5, A, lda, B, ldb, 2, C, ldc, aOff, bOff, cOff);
    const ref = gemmRef(ta, tb, M, N, K, A, lda, aOff, B, ldb, bOff);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < ldc; n++) {
        const i = cOff + m * ldc + n;
        if (n >= N) assert.equal(C[i], C0[i], 'padding column untouched');
        else assert.ok(Math.abs(C[i] - (0.5 * ref[m * N + n] + 2 * C0[i])) < 1e-5, `C[${m},${n}] ta=${ta} tb=${tb}`);
      }
    }
    for (let i = 0; i < cOff; i++) assert.equal(C[i], C0[i], 'before the offset untouched');
  }
});

test('sgemmBatched broadcasts an operand with stride 0', () => {
  requireNative();
  const addon = nativeAddon();
  const [M, N, K, batch] = [3, 5, 4, 6];
  const A = randomArray(batch * M * K, 1);
  const B = randomArray(K * N, 2);
  const C = new Float32Array(batch * M * N);
  addon.sgemmBatched(false, false, M, N, K, 1, A, 0, K, M * K, B, 0, N, 0, 0, C, 0, N, M * N, batch);
  for (let i = 0; i < batch; i++) {
    const ref = gemmRef(false, false, M, N, K, A, K, i * M * K, B, N, 0);
    assertCloseNorm(C.subarray(i * M * N, (i + 1) * M * N), ref, 1e-5, `batch ${i}`);
  }
});

test('the addon refuses out-of-bounds and mistyped arguments with an exception', () => {
  requireNative();
  const addon = nativeAddon();
  const a = new Float32Array(12);
  const c = new Float32Array(9);
  assert.throws(() => addon.sgemm(false, false, 3, 3, 5, 1, a, 5, a, 3, 0, c, 3, 0, 0, 0), /out of bounds/);
  assert.throws(() => addon.sgemm(false, false, 3, 3, 4, 1, a, 4, a, 3, 0, c, 3, 1, 0, 0), /out of bounds/);
  assert.throws(() => addon.sgemm(false, false, 3, 3, 4, 1, a, 2, a, 3, 0, c, 3, 0, 0, 0), /lda/);
  assert.throws(() => addon.unary(0, new Int32Array(3) as unknown as Float32Array, new Float32Array(3), 0), /Float32Array/);
  assert.throws(() => addon.unary(0, new Float32Array(4), new Float32Array(3), 0), /out of bounds/);
  assert.throws(() => addon.binary(0, a, a, c, 1, 1, 1, 12, 0, 0, 0, 1, 0, 0, 0, 1), /out of bounds/);
  assert.throws(() => addon.reduce(0, a, c, 2, 7, 1), /out of bounds/);
  assert.throws(() => addon.adam(a, a.subarray(1), a, a, 1, 0.9, 0.999, 1e-8, 1), /same length/);
  assert.throws(() => addon.setThreads(0), /at least 1/);
});

test('setNativeThreads / nativeThreads set and report the OpenBLAS thread count', () => {
  requireNative();
  const before = nativeThreads();
  assert.ok(before >= 1);
  setNativeThreads(1);
  assert.equal(nativeThreads(), 1);
  setNativeThreads(2);
  assert.equal(nativeThreads(), 2);
  // Results do not depend on the count (small and large GEMMs alike).
  const A = randomArray(256 * 300, 1);
  const B = randomArray(300 * 200, 2);
  const run = () => {
    const C = new Float32Array(256 * 200);
    nativeAddon().sgemm(false, false, 256, 200, 300, 1, A, 300, B, 200, 0, C, 200, 0, 0, 0);
    return C;
  };
  const two = run();
  setNativeThreads(1);
  assertCloseNorm(run(), two, 1e-5, '1 vs 2 threads');
  setNativeThreads(before);
  assert.throws(() => setNativeThreads(0));
});

test('the raw adam(param, m, v, grad, lr, beta1, beta2, eps, step) updates in place like the textbook formula', () => {
  requireNative();
  const n = 1000;
  const p = randomArray(n, 1);
  const m = randomArray(n, 2, -0.01, 0.01);
  const v = randomArray(n, 3, 0, 1e-4);
  const g = randomArray(n, 4, -0.1, 0.1);
  const [lr, b1, b2, eps, step] = [1e-3, 0.9, 0.999, 1e-8, 7];
  const expP = new Float64Array(n);
  const expM = new Float64Array(n);
  const expV = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    expM[i] = b1 * m[i] + (1 - b1) * g[i];
    expV[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const mh = expM[i] / (1 - b1 ** step);
    const vh = expV[i] / (1 - b2 ** step);
    expP[i] = p[i] - (lr * mh) / (Math.sqrt(vh) + eps);
  }
  nativeAddon().adam(p, m, v, g, lr, b1, b2, eps, step);
  // m and v: float32 rounding of b1 m + (1 - b1) g cancels for some elements; judge on the tensor's scale.
  assertClose(m, expM, 1e-5, 'm', 0.1);
  assertClose(v, expV, 1e-5, 'v', 0.1);
  assertClose(p, expP, 1e-6, 'param');
  // Out-of-place form leaves the inputs alone.
  const [p2, m2, v2] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
  const pBefore = p.slice();
  nativeAddon().adam(p, m, v, g, lr, b1, b2, eps, step + 1, p2, m2, v2);
  assert.deepEqual(p, pBefore);
  assert.ok(p2.some((x, i) => x !== p[i]));
});

test('the addon loads and computes in worker threads (context-aware), concurrently', async () => {
  requireNative();
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(workerData.path);
    const n = 96;
    const A = new Float32Array(n * n).map((_, i) => Math.sin(i + workerData.seed));
    const C = new Float32Array(n * n);
    for (let r = 0; r < 20; r++) addon.sgemm(false, false, n, n, n, 1, A, n, A, n, 0, C, n, 0, 0, 0);
    parentPort.postMessage(Array.from(C.subarray(0, 8)));
  `;
  const runWorker = (seed: number) =>
    new Promise<number[]>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { path: ADDON_PATH, seed } });
      w.once('message', resolve);
      w.once('error', reject);
    });
  const [r1, r2, r1again] = await Promise.all([runWorker(1), runWorker(2), runWorker(1)]);
  assert.deepEqual(r1, r1again, 'same input, same result in concurrent workers');
  assert.notDeepEqual(r1, r2);
  // And the main thread still works.
  const A = new Float32Array(96 * 96).map((_, i) => Math.sin(i + 1));
  const C = new Float32Array(96 * 96);
  nativeAddon().sgemm(false, false, 96, 96, 96, 1, A, 96, A, 96, 0, C, 96, 0, 0, 0);
  assert.deepEqual(Array.from(C.subarray(0, 8)), r1);
});
