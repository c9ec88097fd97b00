import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { Rng } from '../../src/data/random.js';
import { ckaMatrix, linearCka } from '../../src/report/cka.js';
import { finiteRange, histogram } from '../../src/report/histogram.js';

before(async () => {
  await useBackend('cpu');
});

type M = number[][];
const rng = new Rng(5);
/** A standard normal draw (Box-Muller on the seeded uniform generator). */
const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
const gaussian = (n: number, p: number): M => Array.from({ length: n }, () => Array.from({ length: p }, () => normal()));
const t = (m: M) => tf.tensor2d(m);

/** Float64 reference in feature space: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) (the other form of linear CKA). */
function ckaReference(x: M, y: M): number {
  const centre = (m: M) => {
    const means = m[0].map((_, j) => m.reduce((s, r) => s + r[j], 0) / m.length);
    return m.map((r) => r.map((v, j) => v - means[j]));
  };
  const cross = (a: M, b: M) => a[0].map((_, i) => b[0].map((_, j) => a.reduce((s, r, k) => s + r[i] * b[k][j], 0)));
  const frob2 = (m: M) => m.flat().reduce((s, v) => s + v * v, 0);
  const xc = centre(x);
  const yc = centre(y);
  return frob2(cross(yc, xc)) / (Math.sqrt(frob2(cross(xc, xc))) * Math.sqrt(frob2(cross(yc, yc))));
}

/** A random p x p orthogonal matrix (Gram-Schmidt on Gaussian columns). */
function orthogonal(p: number): M {
  const q: number[][] = [];
  for (const v of gaussian(p, p)) {
    let w = [...v];
    for (const u of q) {
      const d = w.reduce((s, x, i) => s + x * u[i], 0);
      w = w.map((x, i) => x - d * u[i]);
    }
    const norm = Math.hypot(...w);
    q.push(w.map((x) => x / norm));
  }
  return q;
}
const matmul = (a: M, b: M): M => a.map((r) => b[0].map((_, j) => r.reduce((s, v, k) => s + v * b[k][j], 0)));

test('linear CKA equals an independent float64 reference (feature-space form) on random representations', () => {
  for (const [n, p, q] of [[20, 5, 7], [30, 12, 3], [8, 40, 40]]) {
    const x = gaussian(n, p);
    const y = matmul(x, gaussian(p, q)).map((r) => r.map((v) => v + normal()));
    const ours = linearCka(t(x), t(y));
    assert.ok(Math.abs(ours - ckaReference(x, y)) < 1e-4, `${n}x${p} vs ${n}x${q}: ${ours} against ${ckaReference(x, y)}`);
  }
});

test('linear CKA: 1 for the same representation, after an orthogonal transform, a scaling or a shift; 0 for a known orthogonal pair', () => {
  const x = gaussian(25, 6);
  const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-4, `${what}: ${a}`);
  close(linearCka(t(x), t(x)), 1, 'identical');
  close(linearCka(t(x), t(matmul(x, orthogonal(6)))), 1, 'rotated');
  close(linearCka(t(x), t(x.map((r) => r.map((v) => 3.5 * v)))), 1, 'scaled');
  close(linearCka(t(x), t(x.map((r) => r.map((v, j) => v + j + 10)))), 1, 'shifted');
  // Centred, [-1, 0, 1] and [1/3, -2/3, 1/3] are orthogonal: no alignment at all.
  close(linearCka(t([[1], [2], [3]]), t([[1], [0], [1]])), 0, 'orthogonal pair');
  // Images [n, h, w, c] are flattened into features.
  const images = tf.randomNormal([10, 2, 3, 2], 0, 1, 'float32', 1);
  close(linearCka(images, images.reshape([10, 12])), 1, 'flattened');
  assert.throws(() => linearCka(t(x), t(x.slice(1))), /same examples/);
});

test('the CKA matrix is symmetric with a unit diagonal, each entry the pairwise CKA, and leaks no tensor', () => {
  const a = gaussian(15, 4);
  const b = matmul(a, gaussian(4, 6));
  const c = gaussian(15, 5);
  const before = tf.memory().numTensors;
  const reps = [t(a), t(b), t(c)];
  const m = ckaMatrix(reps);
  tf.dispose(reps);
  assert.equal(tf.memory().numTensors, before);
  for (let i = 0; i < 3; i++) {
    assert.equal(m[i][i], 1);
    for (let j = 0; j < 3; j++) assert.equal(m[i][j], m[j][i]);
  }
  const pairs: [number, number, M, M][] = [[0, 1, a, b], [0, 2, a, c], [1, 2, b, c]];
  for (const [i, j, x, y] of pairs) assert.ok(Math.abs(m[i][j] - ckaReference(x, y)) < 1e-4, `${i},${j}`);
});

test('histograms: equal-width bins, the last closed, values outside the range and non-finite ones counted apart', () => {
  const h = histogram([0, 0.1, 0.5, 0.99, 1, 1, -0.2, NaN, Infinity], 4, [0, 1]);
  assert.deepEqual(h.counts, [2, 0, 1, 3]); // 0.5 opens the third bin [0.5, 0.75)
  assert.equal(h.outside, 3);
  assert.equal(h.total, 9);
  assert.deepEqual(finiteRange([3, -1, NaN], [7, Infinity]), [-1, 7]);
  assert.deepEqual(histogram([2, 2, 2], 3), { lo: 1.5, hi: 2.5, counts: [0, 3, 0], outside: 0, total: 3 });
  const own = histogram([1, 2, 3, 4], 3);
  assert.deepEqual([own.lo, own.hi, own.counts], [1, 4, [1, 1, 2]]);
  assert.throws(() => histogram([1], 0), RangeError);
  assert.throws(() => histogram([1], 2, [1, 0]), RangeError);
});
