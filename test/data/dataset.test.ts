import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Batch, type BatchOptions, batches, batchesFrom, numBatches } from '../../src/data/batches.js';
import { type ImageDataset, type InMemoryDataset, makeDataset, makeStreamingDataset } from '../../src/data/dataset.js';
import { subset } from '../../src/data/subset.js';
import { DataError } from '../../src/data/errors.js';
import { bytes } from './helpers.js';

/** N single-channel HxW images whose label is their index, so batch contents can be traced back. */
function indexed(n: number, h = 4, w = 4): InMemoryDataset {
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

test('crop-only augmentation keeps the batch sequence it had before flip existed (pinned checksums)', () => {
  const n = 10;
  const ds = makeDataset({
    name: 'g',
    pixels: Uint8Array.from({ length: n * 3 * 4 * 2 }, (_, i) => (i * 37 + 11) % 256),
    labels: Int32Array.from({ length: n }, (_, i) => i),
    shape: [3, 4, 2],
    numClasses: n,
    mean: [0, 0],
    std: [1 / 255, 1 / 255],
  });
  const sums = (augment: BatchOptions['augment']) =>
    all(ds, { batchSize: 4, shuffle: true, seed: 5, epoch: 2, augment }).map((b) => [
      [...b.y],
      Array.from(b.x).reduce((a, v, k) => (a * 31 + v * (k + 1)) % 1000003, 0),
    ]);
  // Computed with the implementation before flip was added.
  const pinned = [[[3, 6, 7, 5], 424124], [[1, 2, 8, 9], 804278], [[4, 0], 39505]];
  assert.deepEqual(sums({ cropPadding: 1 }), pinned);
  assert.deepEqual(sums({ cropPadding: 1, flip: false }), pinned);
});

/** img mirrored left-right (single channel). */
function mirrored(img: Float32Array, w: number): Float32Array {
  return Float32Array.from(img, (_, k) => img[Math.floor(k / w) * w + (w - 1 - (k % w))]);
}

test('flip mirrors about half the images left-right, exactly, and nothing else', () => {
  const h = 3;
  const w = 5;
  const ds = indexed(200, h, w);
  const bs = all(ds, { batchSize: 32, shuffle: true, seed: 9, augment: { cropPadding: 0, flip: true } });
  let flipped = 0;
  for (const b of bs) {
    for (let j = 0; j < b.n; j++) {
      const src = b.y[j];
      const orig = Float32Array.from(ds.pixels.subarray(src * h * w, (src + 1) * h * w), (p) => p / 255);
      const got = b.x.subarray(j * h * w, (j + 1) * h * w);
      const isOrig = orig.every((v, k) => v === got[k]);
      const isMirror = mirrored(orig, w).every((v, k) => v === got[k]);
      assert.ok(isOrig || isMirror, `example ${src} is neither the image nor its mirror`);
      if (!isOrig) flipped++;
    }
  }
  assert.ok(flipped > 70 && flipped < 130, `${flipped} of 200 flipped`);
});

test('flip composes with the crop: the output is a shifted crop, possibly mirrored, and the first crop of each batch is unchanged', () => {
  const h = 5;
  const w = 6;
  const pad = 2;
  const ds = indexed(60, h, w);
  const opts = { batchSize: 12, shuffle: true, seed: 4, epoch: 1 };
  const plain = all(ds, { ...opts, augment: { cropPadding: pad } });
  const withFlip = all(ds, { ...opts, augment: { cropPadding: pad, flip: true } });
  let mirroredCount = 0;
  withFlip.forEach((b, bi) => {
    assert.deepEqual(b.y, plain[bi].y);
    for (let j = 0; j < b.n; j++) {
      const img = ds.pixels.subarray(b.y[j] * h * w, (b.y[j] + 1) * h * w);
      const got = b.x.subarray(j * h * w, (j + 1) * h * w);
      const found: string[] = [];
      for (let dy = -pad; dy <= pad; dy++) {
        for (let dx = -pad; dx <= pad; dx++) {
          const s = shifted(img, h, w, dy, dx);
          if (s.every((v, k) => v === got[k])) found.push('plain');
          if (mirrored(s, w).every((v, k) => v === got[k])) found.push('mirror');
        }
      }
      assert.ok(found.length > 0, `example ${b.y[j]} is not a (mirrored) crop`);
      if (!found.includes('plain')) mirroredCount++;
    }
    // Image 0 of a batch draws its offsets first from the batch's Rng, so its crop is the crop-only one.
    const a = b.x.subarray(0, h * w);
    const p = plain[bi].x.subarray(0, h * w);
    assert.ok(a.every((v, k) => v === p[k]) || mirrored(p, w).every((v, k) => v === a[k]));
  });
  assert.ok(mirroredCount > 10, `only ${mirroredCount} mirrored`);
});

test('flip is deterministic under seed and epoch and changes with them; batchesFrom resumes it', () => {
  const ds = indexed(40);
  const opts = (seed: number, epoch: number): BatchOptions => ({ batchSize: 8, shuffle: true, seed, epoch, augment: { cropPadding: 0, flip: true } });
  const xs = (seed: number, epoch: number) => all(ds, opts(seed, epoch)).map((b) => b.x);
  assert.deepEqual(xs(1, 0), xs(1, 0));
  assert.notDeepEqual(xs(1, 0), xs(1, 1));
  assert.notDeepEqual(xs(1, 0), xs(2, 0));
  assert.deepEqual([...batchesFrom(ds, opts(1, 0), 3)], all(ds, opts(1, 0)).slice(3));
  assert.throws(() => batches(ds, { batchSize: 8, augment: { cropPadding: 0, flip: 1 as unknown as boolean } }), RangeError);
});

/** A streaming view of an in-memory set that records every readPixels call. */
function streamingOf(ds: InMemoryDataset, calls: number[][] = []): ImageDataset {
  const stride = ds.shape[0] * ds.shape[1] * ds.shape[2];
  return makeStreamingDataset({
    name: `${ds.name}/stream`,
    labels: ds.labels,
    shape: ds.shape,
    numClasses: ds.numClasses,
    mean: ds.mean,
    std: ds.std,
    readPixels(indices, out) {
      calls.push(Array.from(indices));
      for (let k = 0; k < indices.length; k++) out.set(ds.pixels.subarray(indices[k] * stride, (indices[k] + 1) * stride), k * stride);
    },
  });
}

test('a streaming set has no pixels, reads each batch once, and gives exactly the in-memory batches', () => {
  const mem = makeDataset({
    name: 'rgb',
    pixels: bytes(23 * 4 * 3 * 3, 5),
    labels: Int32Array.from({ length: 23 }, (_, i) => i % 4),
    shape: [4, 3, 3],
    numClasses: 4,
    mean: [0.1, 0.2, 0.3],
    std: [0.5, 0.6, 0.7],
  });
  const calls: number[][] = [];
  const stream = streamingOf(mem, calls);
  assert.equal(stream.pixels, undefined);
  assert.equal(stream.size, 23);
  for (const opts of [
    { batchSize: 5 },
    { batchSize: 6, shuffle: true, seed: 3, epoch: 2 },
    { batchSize: 4, shuffle: true, seed: 1, augment: { cropPadding: 1, flip: true } },
    { batchSize: 23, dropLast: true, augment: { cropPadding: 2 } },
  ] as BatchOptions[]) {
    calls.length = 0;
    const got = all(stream, opts);
    assert.deepEqual(got, all(mem, opts));
    assert.equal(calls.length, got.length);
    assert.deepEqual(calls.map((c) => c.map((k) => mem.labels[k])), got.map((b) => [...b.y]));
    assert.deepEqual([...batchesFrom(stream, opts, 1)], [...batchesFrom(mem, opts, 1)]);
  }
});

test('readPixels copies images by index, for both kinds of set, and validates its arguments', () => {
  const mem = indexed(6, 2, 2);
  const stream = streamingOf(mem);
  for (const ds of [mem, stream]) {
    const out = new Uint8Array(3 * 4);
    ds.readPixels([5, 0, 5], out);
    assert.deepEqual(out, Uint8Array.from([...mem.pixels.subarray(20, 24), ...mem.pixels.subarray(0, 4), ...mem.pixels.subarray(20, 24)]));
    assert.throws(() => ds.readPixels([6], new Uint8Array(4)), RangeError);
    assert.throws(() => ds.readPixels([-1], new Uint8Array(4)), RangeError);
    assert.throws(() => ds.readPixels([0.5], new Uint8Array(4)), RangeError);
    assert.throws(() => ds.readPixels([0, 1], new Uint8Array(7)), RangeError);
  }
});

test('readPixels is not an enumerable property: data sets compare and clone by their data', () => {
  const ds = indexed(5);
  assert.deepEqual(Object.keys(ds), ['name', 'pixels', 'labels', 'shape', 'numClasses', 'size', 'mean', 'std']);
  assert.deepEqual(indexed(5), ds);
  assert.deepEqual(structuredClone(ds), { ...ds });
  assert.ok(Object.isFrozen(ds) && Object.isFrozen(streamingOf(ds)));
});

test('makeStreamingDataset validates like makeDataset', () => {
  const ok = { name: 's', labels: new Int32Array([0, 1]), shape: [2, 2, 1] as const, numClasses: 2, mean: [0], std: [1], readPixels() {} };
  assert.equal(makeStreamingDataset(ok).size, 2);
  const bad = (patch: object, re: RegExp) =>
    assert.throws(() => makeStreamingDataset({ ...ok, ...patch }), (e: Error) => e instanceof DataError && re.test(e.message));
  bad({ labels: new Int32Array([0, 2]) }, /^s: label 2 at index 1 outside 0\.\.1/);
  bad({ mean: [0, 0] }, /mean\/std need 1 entries/);
  bad({ shape: [2, 0, 1] }, /bad shape/);
  bad({ readPixels: undefined }, /readPixels must be a function/);
});

test('the subset of a streaming set streams the same examples as the subset of the in-memory set', () => {
  const n = 60;
  const mem = makeDataset({
    name: 'm',
    pixels: bytes(n * 9, 2),
    labels: Int32Array.from({ length: n }, (_, i) => (i % 5 < 3 ? 0 : i % 5 < 4 ? 1 : 2)),
    shape: [3, 3, 1],
    numClasses: 3,
    mean: [0.5],
    std: [0.25],
  });
  const calls: number[][] = [];
  const s = subset(streamingOf(mem, calls), 17, 8);
  const m = subset(mem, 17, 8);
  assert.equal(s.pixels, undefined);
  assert.equal(s.name, 'm/stream[17]');
  assert.equal(s.size, 17);
  assert.deepEqual(s.labels, m.labels);
  const out = new Uint8Array(17 * 9);
  s.readPixels(Array.from({ length: 17 }, (_, i) => i), out);
  assert.deepEqual(out, m.pixels);
  // The parent is asked for the parent's indices of the chosen examples.
  const opts = { batchSize: 5, shuffle: true, seed: 2, augment: { cropPadding: 1, flip: true } };
  calls.length = 0;
  assert.deepEqual(all(s, opts), all(m, opts));
  assert.ok(calls.every((c) => c.every((i) => i < n)) && calls.length === 4);
  assert.throws(() => s.readPixels([17], new Uint8Array(9)), RangeError);
  assert.equal(subset(s, 17, 0), s);
});
