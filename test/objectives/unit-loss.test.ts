import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/data/random.js';
import { useBackend } from '../../src/backend.js';
import { alignmentLoss, negLogBhattacharyya, unitLoss } from '../../src/objectives/unit-loss.js';

before(async () => {
  await useBackend('cpu');
});

// Float64 references, written from the definitions and independent of the implementation under test.
function softmax64(logits: number[]): number[] {
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
function negLogBc64(a: number[], b: number[]): number {
  const q = softmax64(a);
  const p = softmax64(b);
  return -Math.log(q.reduce((s, qk, k) => s + Math.sqrt(qk * p[k]), 0));
}
function crossEntropy64(logits: number[], y: number): number {
  return -Math.log(softmax64(logits)[y]);
}

function randomLogits(rng: Rng, rows: number, k: number, scale: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: k }, () => (rng.next() * 2 - 1) * scale));
}

function assertClose(actual: number, expected: number, rel: number, what: string) {
  const tol = rel * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);
}

test('-log BC matches a float64 reference on random distributions', () => {
  const rng = new Rng(1);
  const a = randomLogits(rng, 64, 10, 4);
  const b = randomLogits(rng, 64, 10, 4);
  const got = negLogBhattacharyya(tf.tensor2d(a), tf.tensor2d(b)).arraySync();
  got.forEach((g, i) => assertClose(g, negLogBc64(a[i], b[i]), 1e-5, `row ${i}`));
});

test('-log BC is finite and exact for one-hot and near-degenerate distributions', () => {
  // Gaps of 100-200 nats make the off-peak probabilities underflow float32 (exp(-100) < 1e-38).
  const a = [
    [200, 0, 0, 0],
    [200, 0, 0, 0],
    [0, 150, 0, 0],
    [30, 30, -100, 0],
    [1e-3, 0, 0, 0],
  ];
  const b = [
    [200, 0, 0, 0],
    [0, 0, 200, 0],
    [0, 0, 0, 150],
    [30, -100, 30, 0],
    [0, 0, 0, 1e-3],
  ];
  const got = negLogBhattacharyya(tf.tensor2d(a), tf.tensor2d(b)).arraySync();
  got.forEach((g, i) => {
    assert.ok(Number.isFinite(g), `row ${i} is ${g}`);
    assertClose(g, negLogBc64(a[i], b[i]), 1e-5, `row ${i}`);
  });
  assert.ok(Math.abs(got[0]) < 1e-6, 'identical one-hot distributions have -log BC = 0');
  assert.ok(got[1] > 99, 'disjoint one-hot distributions have a large -log BC');
});

test('gradient of -log BC matches float64 finite differences', () => {
  const rng = new Rng(2);
  const a = randomLogits(rng, 3, 6, 3);
  const b = randomLogits(rng, 3, 6, 3);
  const g = tf.grad((x: tf.Tensor) => tf.sum(negLogBhattacharyya(x as tf.Tensor2D, tf.tensor2d(b))))(tf.tensor2d(a));
  const analytic = g.arraySync() as number[][];
  const eps = 1e-6;
  for (let i = 0; i < a.length; i++) {
    for (let k = 0; k < a[i].length; k++) {
      const plus = a[i].slice();
      const minus = a[i].slice();
      plus[k] += eps;
      minus[k] -= eps;
      const numeric = (negLogBc64(plus, b[i]) - negLogBc64(minus, b[i])) / (2 * eps);
      assert.ok(Math.abs(analytic[i][k] - numeric) < 1e-4, `d/da[${i}][${k}]: ${analytic[i][k]} vs ${numeric}`);
    }
  }
});

test('alignment loss sends no gradient to the parent logits', () => {
  const rng = new Rng(3);
  const a = tf.tensor2d(randomLogits(rng, 4, 5, 2));
  const b = tf.tensor2d(randomLogits(rng, 4, 5, 2));
  const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => alignmentLoss(x as tf.Tensor2D, y as tf.Tensor2D))([a, b]);
  assert.ok(tf.max(tf.abs(ga)).arraySync() as number > 1e-4, 'the child side gets a gradient');
  assert.equal(tf.max(tf.abs(gb)).arraySync(), 0);
});

test('unit loss is CE + lambda * mean(-log BC), eq. (5), against a float64 reference', () => {
  const rng = new Rng(4);
  const v = randomLogits(rng, 16, 10, 3);
  const parent = randomLogits(rng, 16, 10, 3);
  const y = v.map(() => rng.int(10));
  const targets = tf.oneHot(tf.tensor1d(y, 'int32'), 10).toFloat() as tf.Tensor2D;
  const lambda = 0.7;
  const parts = unitLoss(tf.tensor2d(v), targets, tf.tensor2d(parent), lambda);
  const ce = v.reduce((s, row, i) => s + crossEntropy64(row, y[i]), 0) / v.length;
  const bc = v.reduce((s, row, i) => s + negLogBc64(row, parent[i]), 0) / v.length;
  assertClose(parts.prediction.arraySync(), ce, 1e-5, 'prediction');
  assertClose(parts.alignment.arraySync(), bc, 1e-5, 'alignment');
  assertClose(parts.total.arraySync(), ce + lambda * bc, 1e-5, 'total');
  const noParent = unitLoss(tf.tensor2d(v), targets, null, lambda);
  assert.equal(noParent.alignment.arraySync(), 0);
  assertClose(noParent.total.arraySync(), ce, 1e-5, 'total without parent');
});
