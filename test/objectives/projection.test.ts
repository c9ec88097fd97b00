import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { ProjectionHead, adaptiveAvgPoolMatrix, type ProjectionHeadConfig } from '../../src/objectives/projection.js';

before(async () => {
  await useBackend('cpu');
});

const config: ProjectionHeadConfig = {
  inputShape: [400],
  numClasses: 10,
  poolDim: null,
  distribution: 'gaussian',
  keep: 0.3,
  maskScale: 'inverted',
  scale: 'features',
  seed: 7,
};

test('R is scaled 1/sqrt(d) with i.i.d. gaussian or rademacher entries, and reproducible from its seed', () => {
  const d = config.inputShape[0];
  const g = new ProjectionHead(config).projection.dataSync() as Float32Array;
  const mean = g.reduce((a, b) => a + b, 0) / g.length;
  const variance = g.reduce((a, b) => a + (b - mean) ** 2, 0) / g.length;
  assert.ok(Math.abs(variance * d - 1) < 0.1, `variance * d = ${variance * d}`);
  assert.deepEqual(new ProjectionHead(config).projection.dataSync(), g);
  assert.notDeepEqual(new ProjectionHead({ ...config, seed: 8 }).projection.dataSync(), g);
  const r = new ProjectionHead({ ...config, distribution: 'rademacher' }).projection.dataSync();
  const values = new Set(Array.from(r, (x) => Math.round(x * Math.sqrt(d) * 1e4) / 1e4));
  assert.deepEqual([...values].sort(), [-1, 1]);
});

test("R is scaled 1/sqrt(K) under the JL scaling ('classes'), so that ||v|| is about ||h||", () => {
  const head = new ProjectionHead({ ...config, inputShape: [4000], scale: 'classes', keep: 1 });
  const g = head.projection.dataSync() as Float32Array;
  const variance = g.reduce((a, b) => a + b * b, 0) / g.length;
  assert.ok(Math.abs(variance * config.numClasses - 1) < 0.05, `variance * K = ${variance * config.numClasses}`);
  const h = tf.randomNormal([64, 4000], 0, 1, 'float32', 3);
  const ratio = tf.tidy(() => tf.mean(tf.div(tf.norm(head.project(h), 2, 1), tf.norm(h, 2, 1))).dataSync()[0]);
  assert.ok(Math.abs(ratio - 1) < 0.25, `mean ||v|| / ||h|| = ${ratio}`);
  h.dispose();
  head.dispose();
});

test('mask keeps entries at rate keep, scaled 1/keep when inverted, fresh per step and fixed per step', () => {
  const head = new ProjectionHead({ ...config, inputShape: [5000] });
  const m = head.mask(3).dataSync();
  const kept = m.filter((x) => x !== 0);
  const rate = kept.length / m.length;
  const sd = Math.sqrt((config.keep * (1 - config.keep)) / m.length);
  assert.ok(Math.abs(rate - config.keep) < 4 * sd, `keep rate ${rate}`);
  assert.ok(kept.every((x) => Math.abs(x - 1 / config.keep) < 1e-6), 'kept entries are 1/keep');
  assert.deepEqual(head.mask(3).dataSync(), m, 'the same step gives the same mask');
  assert.notDeepEqual(head.mask(4).dataSync(), m, 'another step gives another mask');
  const plain = new ProjectionHead({ ...config, inputShape: [5000], maskScale: 'none' }).mask(3).dataSync();
  assert.ok(plain.every((x) => x === 0 || x === 1), 'without inverted scaling the mask is 0/1');
});

test('training projection applies the mask; evaluation projection is h R with no mask', () => {
  const head = new ProjectionHead(config);
  const h = tf.randomNormal([8, ...config.inputShape], 0, 1, 'float32', 1);
  const evalLogits = head.project(h).arraySync();
  const reference = tf.matMul(h, head.projection).arraySync();
  assert.deepEqual(evalLogits, reference);
  const trainLogits = head.project(h, 5).arraySync();
  const masked = tf.matMul(h, tf.mul(head.projection, head.mask(5))).arraySync();
  assert.deepEqual(trainLogits, masked);
  assert.notDeepEqual(trainLogits, evalLogits);
  const unmasked = new ProjectionHead({ ...config, keep: 1 });
  assert.deepEqual(unmasked.project(h, 5).arraySync(), unmasked.project(h).arraySync(), 'keep 1 means no mask');
});

test('a centring head projects each example\'s features minus their mean, masked in training, against float64', () => {
  const head = new ProjectionHead({ ...config, center: true });
  const d = config.inputShape[0];
  const h = tf.randomUniform([4, d], 0, 3, 'float32', 2);
  const hv = h.dataSync();
  const r = head.projection.dataSync();
  const m = head.mask(5).dataSync();
  const got = head.project(h, 5).dataSync();
  for (let b = 0; b < 4; b++) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += hv[b * d + j];
    mean /= d;
    for (let k = 0; k < 10; k++) {
      let v = 0;
      for (let j = 0; j < d; j++) v += (hv[b * d + j] - mean) * r[j * 10 + k] * m[j * 10 + k];
      assert.ok(Math.abs(v - got[b * 10 + k]) < 1e-4 * Math.max(1, Math.abs(v)), `example ${b}, class ${k}: ${v} vs ${got[b * 10 + k]}`);
    }
  }
  // What centring is for: a common shift of every feature moves no logit (it moves the plain head's).
  const shifted = tf.add(h, 5);
  const plain = new ProjectionHead(config);
  const moved = (hd: ProjectionHead) => Math.max(...tf.sub(hd.project(shifted), hd.project(h)).abs().dataSync());
  assert.ok(moved(head) < 1e-4, `centred: ${moved(head)}`);
  assert.ok(moved(plain) > 0.1, `plain: ${moved(plain)}`);
  tf.dispose([h, shifted]);
  head.dispose();
  plain.dispose();
});

test('adaptive average pooling matches a plain loop over PyTorch-style bins', () => {
  for (const [n, d] of [[10, 3], [1024, 64], [7, 7], [5, 1]]) {
    const x = Array.from({ length: n }, (_, i) => Math.sin(i + 1));
    const got = tf.matMul(tf.tensor2d([x]), adaptiveAvgPoolMatrix(n, d)).dataSync();
    for (let j = 0; j < d; j++) {
      const start = Math.floor((j * n) / d);
      const end = Math.ceil(((j + 1) * n) / d);
      let s = 0;
      for (let i = start; i < end; i++) s += x[i];
      assert.ok(Math.abs(got[j] - s / (end - start)) < 1e-6, `n=${n} d=${d} j=${j}`);
    }
  }
  assert.throws(() => adaptiveAvgPoolMatrix(4, 5), /1 <= d <= 4/);
});

test('a head with pooling projects the pooled features', () => {
  const head = new ProjectionHead({ ...config, poolDim: 40 });
  assert.deepEqual(head.projection.shape, [40, 10]);
  const h = tf.randomNormal([4, ...config.inputShape], 0, 1, 'float32', 2);
  const expected = tf.matMul(tf.matMul(h, adaptiveAvgPoolMatrix(config.inputShape[0], 40)), head.projection);
  assert.deepEqual(head.project(h).arraySync(), expected.arraySync());
});

test('a conv head pools each channel to s x s (largest s with s * s * C <= d) over PyTorch bins, against a plain loop', () => {
  // [H, W, C, d, s]: equal bins (12 / 4), unequal overlapping bins (7 -> 3: rows 0-2, 2-4, 4-6), 5 x 7 -> 2.
  for (const [H, W, C, d, s] of [[12, 12, 3, 50, 4], [7, 7, 2, 20, 3], [5, 7, 2, 10, 2]]) {
    const head = new ProjectionHead({ ...config, inputShape: [H, W, C], poolDim: d });
    assert.deepEqual(head.projection.shape, [s * s * C, 10], `${H}x${W}x${C} to ${d}`);
    const h = tf.randomNormal([2, H, W, C], 0, 1, 'float32', 3);
    const got = head.features(h).arraySync();
    const x = h.arraySync() as number[][][][];
    const bin = (j: number, n: number) => [Math.floor((j * n) / s), Math.ceil(((j + 1) * n) / s)];
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          const [y0, y1] = bin(i, H);
          const [x0, x1] = bin(j, W);
          for (let c = 0; c < C; c++) {
            let sum = 0;
            for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) sum += x[b][y][xx][c];
            const at = (i * s + j) * C + c;
            assert.ok(Math.abs(got[b][at] - sum / ((y1 - y0) * (x1 - x0))) < 1e-5, `${H}x${W} b${b} (${i},${j},${c})`);
          }
        }
      }
    }
    // The pooled head is differentiable in h (a unit's loss reaches its weights through it).
    const g = tf.grad((t: tf.Tensor) => tf.sum(head.project(t)))(h);
    assert.ok(tf.sum(tf.abs(g)).dataSync()[0] > 0);
    head.dispose();
  }
  const whole = new ProjectionHead({ ...config, inputShape: [12, 12, 3], poolDim: null });
  assert.deepEqual(whole.projection.shape, [12 * 12 * 3, 10]);
});

const unmasked = { distribution: 'gaussian' as const, keep: 1, maskScale: 'inverted' as const, scale: 'features' as const, numClasses: 10, seed: 11 };
const readoutCases: [string, ProjectionHeadConfig][] = [
  ['a dense input pooled 400 -> 64', { ...unmasked, inputShape: [400], poolDim: 64 }],
  ['a dense input whole', { ...unmasked, inputShape: [50], poolDim: null }],
  ['conv maps 8x8x3 pooled in equal 2x2 bins', { ...unmasked, inputShape: [8, 8, 3], poolDim: 48 }],
  ['conv maps 14x14x2 pooled to 11x11 (unequal bins)', { ...unmasked, inputShape: [14, 14, 2], poolDim: 242 }],
  ['conv maps 5x7x4 projected whole', { ...unmasked, inputShape: [5, 7, 4], poolDim: null }],
  ['centred features of a dense input pooled 400 -> 64', { ...unmasked, inputShape: [400], poolDim: 64, center: true }],
  ['centred features of conv maps 14x14x2 pooled to 11x11', { ...unmasked, inputShape: [14, 14, 2], poolDim: 242, center: true }],
  ['centred features of tokens 5x12 read by their mean', { ...unmasked, inputShape: [5, 12], token: 'mean', poolDim: null, center: true }],
];

for (const [name, cfg] of readoutCases) {
  test(`the head folded into one matrix gives the head's logits: ${name}`, () => {
    const head = new ProjectionHead(cfg);
    const size = cfg.inputShape.reduce((a, b) => a * b, 1);
    const w = head.readoutMatrix();
    assert.equal(w.length, size * cfg.numClasses);
    const h = tf.randomUniform([6, ...cfg.inputShape], 0, 2, 'float32', 4);
    const want = head.project(h).dataSync();
    // float64 reference of flatten(h) W.
    const hv = h.dataSync();
    for (let b = 0; b < 6; b++) {
      for (let k = 0; k < cfg.numClasses; k++) {
        let v = 0;
        for (let i = 0; i < size; i++) v += hv[b * size + i] * w[i * cfg.numClasses + k];
        assert.ok(Math.abs(v - want[b * cfg.numClasses + k]) < 1e-4 * Math.max(1, Math.abs(v)), `example ${b}, class ${k}: ${v} vs ${want[b * cfg.numClasses + k]}`);
      }
    }
    h.dispose();
    head.dispose();
  });
}
