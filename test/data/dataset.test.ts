import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Batch, type BatchOptions, type ImageDataset, batches, batchesFrom, makeDataset, numBatches, subset } from '../../src/data/dataset.js';
import { DataError } from '../../src/data/errors.js';
import { bytes } from './helpers.js';

/** N single-channel HxW images whose label is their index, so batch contents can be traced back. */
function indexed(n: number, h = 4, w = 4): ImageDataset {
  return makeDataset({
    name: 'toy',
    pixels: bytes(n * h * w, 9),
    labels: Int32Array.from({ length: n }, (_, i) => i),
    shape: [h, w, 1],
    numClasses: n,
    mean: [0],
    std: [1],
  });
}

const all = (ds: ImageDataset, opts: BatchOptions): Batch[] => [...batches(ds, opts)];
const order = (bs: Batch[]) => bs.flatMap((b) => [...b.y]);

test('makeDataset sets size and rejects inconsistent pixels, labels, mean/std', () => {
  const ok = { name: 'd', pixels: new Uint8Array(2 * 12), labels: new Int32Array([0, 1]), shape: [2, 2, 3] as const, numClasses: 2, mean: [0, 0, 0], std: [1, 1, 1] };
  assert.equal(makeDataset(ok).size, 2);
  const bad = (patch: object, re: RegExp) => assert.throws(() => makeDataset({ ...ok, ...patch }), (e: Error) => e instanceof DataError && re.test(e.message));
  bad({ pixels: new Uint8Array(23) }, /^d: 2 labels need 24 pixels/);
  bad({ labels: new Int32Array([0, 2]) }, /label 2 at index 1 outside 0\.\.1/);
  bad({ labels: new Int32Array([-1, 0]) }, /label -1/);
  bad({ mean: [0] }, /mean\/std need 3 entries/);
  bad({ std: [1, 0, 1] }, /std must be positive/);
  bad({ shape: [2, 2, 0] }, /bad shape/);
});

test('numBatches counts the partial last batch unless dropLast', () => {
  const ds = indexed(10);
  assert.equal(numBatches(ds, { batchSize: 3 }), 4);
  assert.equal(numBatches(ds, { batchSize: 3, dropLast: true }), 3);
  assert.equal(numBatches(ds, { batchSize: 5, dropLast: true }), 2);
  assert.throws(() => numBatches(ds, { batchSize: 0 }), RangeError);
});

test('without shuffle batches go through examples in order, with a smaller last batch', () => {
  const bs = all(indexed(10), { batchSize: 4 });
  assert.deepEqual(bs.map((b) => b.n), [4, 4, 2]);
  assert.deepEqual(order(bs), [...Array(10).keys()]);
  assert.equal(bs[2].x.length, 2 * 16);
});

test('dropLast omits the partial last batch', () => {
  assert.deepEqual(all(indexed(10), { batchSize: 4, dropLast: true }).map((b) => b.n), [4, 4]);
});

test('shuffled batches cover every example exactly once per epoch, with its own pixels', () => {
  const ds = indexed(103);
  const bs = all(ds, { batchSize: 10, shuffle: true, seed: 1 });
  assert.deepEqual(order(bs).sort((a, b) => a - b), [...Array(103).keys()]);
  assert.notDeepEqual(order(bs), [...Array(103).keys()]);
  for (const b of bs) {
    for (let j = 0; j < b.n; j++) {
      assert.deepEqual(b.x.subarray(j * 16, (j + 1) * 16), Float32Array.from(ds.pixels.subarray(b.y[j] * 16, (b.y[j] + 1) * 16), (p) => p / 255));
    }
  }
});

test('different epochs give different orders; the same seed and epoch the same order', () => {
  const ds = indexed(50);
  const o = (seed: number, epoch: number) => order(all(ds, { batchSize: 8, shuffle: true, seed, epoch }));
  assert.deepEqual(o(3, 0), o(3, 0));
  assert.deepEqual(o(3, 1), o(3, 1));
  assert.notDeepEqual(o(3, 0), o(3, 1));
  assert.notDeepEqual(o(3, 0), o(4, 0));
});

test('normalisation is exactly (p/255 - mean[c]) / std[c] per channel, as float32', () => {
  const ds = makeDataset({
    name: 'rgb',
    pixels: new Uint8Array([0, 77, 255, 128, 1, 200]),
    labels: new Int32Array([0, 1]),
    shape: [1, 1, 3],
    numClasses: 2,
    mean: [0.5, 0.1307, 0.25],
    std: [0.25, 0.3081, 2],
  });
  const [b] = all(ds, { batchSize: 2 });
  assert.equal(b.x[0], -2);
  assert.equal(b.x[1], Math.fround((77 / 255 - 0.1307) / 0.3081));
  assert.equal(b.x[2], 0.375);
  assert.equal(b.x[4], Math.fround((1 / 255 - 0.1307) / 0.3081));
});

/** Expected output of a crop at offset (dy, dx) of the zero-padded single-channel image `img`. */
function shifted(img: Uint8Array, h: number, w: number, dy: number, dx: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const si = i + dy;
      const sj = j + dx;
      out[i * w + j] = si >= 0 && si < h && sj >= 0 && sj < w ? img[si * w + sj] / 255 : 0;
    }
  }
  return out;
}

test('random-crop augmentation keeps the shape and outputs the image shifted by at most cropPadding, zero-filled', () => {
  const h = 6;
  const w = 5;
  const ds = indexed(40, h, w);
  const pad = 2;
  const bs = all(ds, { batchSize: 16, shuffle: true, seed: 2, augment: { cropPadding: pad } });
  let moved = 0;
  const offsets = new Set<string>();
  for (const b of bs) {
    assert.equal(b.x.length, b.n * h * w);
    for (let j = 0; j < b.n; j++) {
      const img = ds.pixels.subarray(b.y[j] * h * w, (b.y[j] + 1) * h * w);
      const got = b.x.subarray(j * h * w, (j + 1) * h * w);
      const matches: string[] = [];
      for (let dy = -pad; dy <= pad; dy++) {
        for (let dx = -pad; dx <= pad; dx++) if (shifted(img, h, w, dy, dx).every((v, k) => v === got[k])) matches.push(`${dy},${dx}`);
      }
      assert.ok(matches.length > 0, `example ${b.y[j]} is not a shifted crop`);
      if (!matches.includes('0,0')) moved++;
      offsets.add(matches[0]);
    }
  }
  assert.ok(moved > 20, `only ${moved} of 40 images moved`);
  assert.ok(offsets.size > 10, `only ${offsets.size} distinct offsets`);
});

test('augmentation is deterministic under seed and epoch and changes with them', () => {
  const ds = indexed(30);
  const xs = (seed: number, epoch: number) => all(ds, { batchSize: 7, seed, epoch, augment: { cropPadding: 1 } }).map((b) => b.x);
  assert.deepEqual(xs(1, 0), xs(1, 0));
  assert.notDeepEqual(xs(1, 0), xs(1, 1));
  assert.notDeepEqual(xs(1, 0), xs(2, 0));
  assert.deepEqual(order(all(ds, { batchSize: 7, augment: { cropPadding: 1 } })), [...Array(30).keys()]);
});

test('cropPadding 0 gives the unaugmented batches', () => {
  const ds = indexed(12);
  assert.deepEqual(all(ds, { batchSize: 5, shuffle: true, augment: { cropPadding: 0 } }), all(ds, { batchSize: 5, shuffle: true }));
});

test('batchesFrom(k) yields the batches of batches() after the first k', () => {
  const ds = indexed(47);
  const opts: BatchOptions = { batchSize: 6, shuffle: true, seed: 11, epoch: 3, augment: { cropPadding: 2 } };
  const full = all(ds, opts);
  for (const k of [0, 1, 5, full.length]) assert.deepEqual([...batchesFrom(ds, opts, k)], full.slice(k));
  assert.throws(() => batchesFrom(ds, opts, full.length + 1), RangeError);
  assert.throws(() => batchesFrom(ds, opts, -1), RangeError);
});

test('subset returns the data set itself when limit >= size', () => {
  const ds = indexed(10);
  assert.equal(subset(ds, 10, 0), ds);
  assert.equal(subset(ds, 99, 0), ds);
  assert.throws(() => subset(ds, 0, 0), RangeError);
});

test('subset picks limit distinct examples, class-proportional, deterministic under the seed', () => {
  // 100 examples: class 0 has 60, class 1 has 30, class 2 has 10; pixel 0 holds the example's index.
  const n = 100;
  const ds = makeDataset({
    name: 'skewed',
    pixels: Uint8Array.from({ length: n * 4 }, (_, i) => (i % 4 === 0 ? i / 4 : 255 - (i % 4))),
    labels: Int32Array.from({ length: n }, (_, i) => (i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2)),
    shape: [2, 2, 1],
    numClasses: 3,
    mean: [0],
    std: [1],
  });
  const s = subset(ds, 20, 4);
  assert.equal(s.size, 20);
  assert.equal(s.name, 'skewed[20]');
  const picked = Array.from({ length: 20 }, (_, i) => s.pixels[i * 4]);
  assert.deepEqual(picked, [...new Set(picked)].sort((a, b) => a - b));
  picked.forEach((src, i) => {
    assert.equal(s.labels[i], ds.labels[src]);
    assert.deepEqual(s.pixels.subarray(i * 4, i * 4 + 4), ds.pixels.subarray(src * 4, src * 4 + 4));
  });
  assert.deepEqual([0, 1, 2].map((k) => s.labels.filter((y) => y === k).length), [12, 6, 2]);
  assert.deepEqual(subset(ds, 20, 4), s);
  assert.notDeepEqual(subset(ds, 20, 5).pixels, s.pixels);
});
