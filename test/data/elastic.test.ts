import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Batch, type BatchOptions, batches, batchesFrom } from '../../src/data/batches.js';
import { makeDataset } from '../../src/data/dataset.js';
import { Rng, mixSeed, permutation } from '../../src/data/random.js';
import { bytes } from './helpers.js';

const H = 9;
const W = 7;
const C = 2;
const ds = makeDataset({
  name: 'toy',
  pixels: bytes(12 * H * W * C, 4),
  labels: Int32Array.from({ length: 12 }, (_, i) => i % 3),
  shape: [H, W, C],
  numClasses: 3,
  mean: [0.4, 0.6],
  std: [0.3, 0.2],
});
const all = (opts: BatchOptions): Batch[] => [...batches(ds, opts)];

/**
 * The float64 reference, written from the definition: the fields are the 2-D convolution (zero outside)
 * of the uniform(-1, 1) noise with the normalised Gaussian of sigma truncated at 3 sigma, times alpha;
 * the output is the bilinear interpolation of the zero-padded image there.
 */
function reference(opts: BatchOptions & { augment: { cropPadding: number; flip?: boolean; elastic: { alpha: number; sigma: number } } }): number[][] {
  const { alpha, sigma } = opts.augment.elastic;
  const pad = opts.augment.cropPadding;
  const r = Math.ceil(3 * sigma);
  let norm = 0;
  for (let a = -r; a <= r; a++) for (let b = -r; b <= r; b++) norm += Math.exp(-(a * a + b * b) / (2 * sigma * sigma));
  const order = opts.shuffle ? permutation(ds.size, mixSeed(opts.seed ?? 0, opts.epoch ?? 0)) : Uint32Array.from({ length: ds.size }, (_, i) => i);
  const out: number[][] = [];
  for (let b = 0; b * opts.batchSize < ds.size; b++) {
    const rng = new Rng(mixSeed(opts.seed ?? 0, opts.epoch ?? 0, b));
    const x: number[] = [];
    for (let j = 0; j < Math.min(opts.batchSize, ds.size - b * opts.batchSize); j++) {
      const src = order[b * opts.batchSize + j];
      const dy = rng.int(2 * pad + 1) - pad;
      const dx = rng.int(2 * pad + 1) - pad;
      const mirror = opts.augment.flip ? rng.next() < 0.5 : false;
      const field = () => {
        const u = Array.from({ length: H * W }, () => 2 * rng.next() - 1);
        return Array.from({ length: H * W }, (_, p) => {
          const [i, k] = [Math.floor(p / W), p % W];
          let acc = 0;
          for (let a = -r; a <= r; a++) {
            for (let c = -r; c <= r; c++) {
              if (i + a >= 0 && i + a < H && k + c >= 0 && k + c < W) acc += Math.exp(-(a * a + c * c) / (2 * sigma * sigma)) * u[(i + a) * W + k + c];
            }
          }
          return (alpha * acc) / norm;
        });
      };
      const fy = field();
      const fx = field();
      const px = (i: number, k: number, ch: number) => (i >= 0 && i < H && k >= 0 && k < W ? ds.pixels[((src * H + i) * W + k) * C + ch] : 0);
      for (let i = 0; i < H; i++) {
        for (let k = 0; k < W; k++) {
          const y = i + dy + fy[i * W + k];
          const xx = (mirror ? W - 1 - k : k) + dx + fx[i * W + k];
          const [y0, x0] = [Math.floor(y), Math.floor(xx)];
          const [ty, tx] = [y - y0, xx - x0];
          for (let ch = 0; ch < C; ch++) {
            const v = (1 - ty) * ((1 - tx) * px(y0, x0, ch) + tx * px(y0, x0 + 1, ch)) + ty * ((1 - tx) * px(y0 + 1, x0, ch) + tx * px(y0 + 1, x0 + 1, ch));
            x.push((v / 255 - ds.mean[ch]) / ds.std[ch]);
          }
        }
      }
    }
    out.push(x);
  }
  return out;
}

test('elastic distortion matches a float64 reference of its definition (crop, flip and two channels composed)', () => {
  for (const augment of [
    { cropPadding: 0, elastic: { alpha: 8, sigma: 1.5 } },
    { cropPadding: 2, flip: true, elastic: { alpha: 34, sigma: 4 } },
  ]) {
    const opts = { batchSize: 5, shuffle: true, seed: 3, epoch: 2, augment };
    const got = all(opts);
    const want = reference(opts);
    assert.equal(got.length, want.length);
    let moved = 0;
    got.forEach((batch, b) => {
      assert.equal(batch.x.length, want[b].length);
      batch.x.forEach((v, k) => assert.ok(Math.abs(v - want[b][k]) < 1e-4, `batch ${b} value ${k}: ${v} vs ${want[b][k]}`));
    });
    // The distortion moved pixels: the output is not the plain crop.
    const plain = all({ ...opts, augment: { cropPadding: augment.cropPadding, flip: augment.flip } });
    got.forEach((batch, b) => batch.x.forEach((v, k) => (moved += Math.abs(v - plain[b].x[k]) > 1e-3 ? 1 : 0)));
    assert.ok(moved > got.reduce((n, batch) => n + batch.x.length, 0) / 4, `${moved} values moved`);
  }
});

test('elastic alpha 0 is the plain augmentation; elastic batches repeat under a seed and resume with batchesFrom', () => {
  const crop = { batchSize: 4, shuffle: true, seed: 1, augment: { cropPadding: 1 } };
  assert.deepEqual(all({ ...crop, augment: { cropPadding: 1, elastic: { alpha: 0, sigma: 4 } } }), all(crop));
  const opts = { batchSize: 4, shuffle: true, seed: 1, epoch: 1, augment: { cropPadding: 1, elastic: { alpha: 10, sigma: 2 } } };
  assert.deepEqual(all(opts), all(opts));
  assert.notDeepEqual(all(opts), all({ ...opts, epoch: 2 }));
  assert.deepEqual([...batchesFrom(ds, opts, 2)], all(opts).slice(2));
});

test('bad elastic parameters are refused where batches are asked for', () => {
  for (const elastic of [{ alpha: -1, sigma: 4 }, { alpha: 5, sigma: 0 }, { alpha: NaN, sigma: 4 }]) {
    assert.throws(() => batches(ds, { batchSize: 4, augment: { cropPadding: 0, elastic } }), /elastic (alpha|sigma) must be/);
  }
});
