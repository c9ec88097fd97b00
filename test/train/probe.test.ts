import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { Rng } from '../../src/data/random.js';
import { evaluate } from '../../src/train/evaluate.js';
import { disposeHeaded } from '../../src/train/model.js';
import { linearProbe } from '../../src/train/probe.js';
import { CLASSES, INPUT_SHAPE, smallModel } from './helpers.js';

before(async () => {
  await useBackend('cpu');
});

/** A standard normal draw (Box-Muller). */
const normal = (rng: Rng) => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());

/** n Gaussian inputs and labels from `label` of each input's 36 values. */
function tensors(n: number, seed: number, label: (x: number[]) => number): { x: tf.Tensor; y: tf.Tensor; rows: number[][]; labels: number[] } {
  const rng = new Rng(seed);
  const rows = Array.from({ length: n }, () => Array.from({ length: 36 }, () => normal(rng)));
  const labels = rows.map(label);
  return { x: tf.tensor(rows.flat(), [n, ...INPUT_SHAPE]), y: tf.tensor1d(labels, 'int32'), rows, labels };
}

test('linearProbe: one full-batch Adam step from zero weights predicts as a float64 reference of that step', async () => {
  const { model } = smallModel({ model: 'mlp', layers: 2, width: 12 });
  const rng = new Rng(5);
  const train = tensors(48, 1, () => rng.int(CLASSES));
  const test = tensors(60, 2, () => rng.int(CLASSES));
  const dense = model.network.units.map((u) => u.layers[u.layers.length - 1]);
  // h_i = relu(h_{i-1} W_i + b_i) in float64; an MLP head reads h_i whole (no pooling, no centring).
  const forward = (rows: number[][]) => {
    let h = rows;
    return dense.map((layer) => {
      const [k, b] = layer.getWeights().map((w) => w.arraySync()) as [number[][], number[]];
      h = h.map((row) => b.map((bj, j) => Math.max(0, row.reduce((s, xi, i) => s + xi * k[i][j], bj))));
      return h;
    });
  };
  const trainF = forward(train.rows);
  const testF = forward(test.rows);
  // Adam's first step from zero: W -= lr * g / (|g| + eps) with g the mean gradient of CE at logits 0:
  // dL/dv = softmax(0) - onehot(y) = 1/K - [k = y]. Only the sign pattern (and lr, the same for all) matters.
  const eps = 1e-7;
  const step = (g: number) => -g / (Math.abs(g) + eps);
  const want = trainF.map((F, u) => {
    const d = F[0].length;
    const gb = Array.from({ length: CLASSES }, (_, k) => train.labels.reduce((s, y) => s + (1 / CLASSES - (y === k ? 1 : 0)), 0) / F.length);
    const gw = Array.from({ length: d }, (_, j) =>
      Array.from({ length: CLASSES }, (_, k) => F.reduce((s, f, n) => s + f[j] * (1 / CLASSES - (train.labels[n] === k ? 1 : 0)), 0) / F.length),
    );
    let correct = 0;
    let ambiguous = 0;
    testF[u].forEach((f, n) => {
      const v = Array.from({ length: CLASSES }, (_, k) => step(gb[k]) + f.reduce((s, fj, j) => s + fj * step(gw[j][k]), 0));
      const sorted = [...v].sort((a, b) => b - a);
      if (sorted[0] - sorted[1] < 1e-3) ambiguous++;
      else if (v.indexOf(sorted[0]) === test.labels[n]) correct++;
    });
    return { correct, ambiguous };
  });

  const got = await linearProbe(model, { x: train.x, y: train.y }, { x: test.x, y: test.y }, { epochs: 1, batchSize: 48, lr: 0.01 });
  assert.deepEqual(got.unitFeatures, [12, 12]);
  want.forEach(({ correct, ambiguous }, u) => {
    const hits = got.unitAccuracy[u] * 60;
    assert.ok(hits >= correct && hits <= correct + ambiguous, `unit ${u + 1}: ${hits} correct, reference ${correct} (+${ambiguous} near ties)`);
  });
  tf.dispose([train.x, train.y, test.x, test.y]);
  disposeHeaded(model);
});

test('linearProbe: reads labels a linear function of the input far better than the fixed head, in SLL and BP networks, and leaks no tensor', async () => {
  const { model } = smallModel({ model: 'mlp', layers: 2, width: 256 });
  const a = new Rng(9);
  const A = Array.from({ length: 36 }, () => Array.from({ length: CLASSES }, () => normal(a)));
  const label = (x: number[]) => {
    const s = Array.from({ length: CLASSES }, (_, k) => x.reduce((t, xi, i) => t + xi * A[i][k], 0));
    return s.indexOf(Math.max(...s));
  };
  const train = tensors(2000, 3, label);
  const test = tensors(500, 4, label);
  const heads = await evaluate(model, { x: test.x, y: test.y }, { numClasses: CLASSES });
  const epochs: number[] = [];
  const before = tf.memory().numTensors;
  const got = await linearProbe(model, { x: train.x, y: train.y }, { x: test.x, y: test.y }, { epochs: 8, batchSize: 64, lr: 0.01, onEpoch: (e) => epochs.push(e) });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  assert.deepEqual(epochs, [1, 2, 3, 4, 5, 6, 7, 8]);
  got.unitAccuracy.forEach((acc, u) => {
    assert.ok(acc > 0.65, `unit ${u + 1}'s probe: ${acc}`);
    assert.ok(acc > heads.unitAccuracy[u] + 0.3, `unit ${u + 1}: probe ${acc}, fixed head ${heads.unitAccuracy[u]}`);
    assert.ok(got.unitTrainAccuracy[u] > 0.7, `unit ${u + 1}'s probe, training: ${got.unitTrainAccuracy[u]}`);
  });
  await assert.rejects(linearProbe(model, { x: train.x, y: train.y }, { x: test.x, y: test.y }, { epochs: 0 }), /epochs must be a positive integer/);

  // A BP network has no heads: its units are read as default heads would read them, made and disposed here.
  const bp = smallModel({ model: 'mlp', layers: 2, width: 256, method: 'bp' }).model;
  assert.equal(bp.heads.length, 0);
  const tensorsBefore = tf.memory().numTensors;
  const bpProbe = await linearProbe(bp, { x: train.x, y: train.y }, { x: test.x, y: test.y }, { epochs: 8, batchSize: 64, lr: 0.01 });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaks');
  assert.deepEqual(bpProbe.unitFeatures, [256, 256]);
  bpProbe.unitAccuracy.forEach((acc, u) => assert.ok(acc > 0.65, `BP unit ${u + 1}'s probe: ${acc}`));
  tf.dispose([train.x, train.y, test.x, test.y]);
  disposeHeaded(model);
  disposeHeaded(bp);
});
