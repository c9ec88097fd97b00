import { DataError } from './errors.js';
import { Rng, mixSeed, permutation } from './random.js';

export interface ImageDataset {
  readonly name: string;
  /** N*H*W*C raw 0..255, row-major HWC per image. */
  readonly pixels: Uint8Array;
  /** N labels, each in 0..numClasses-1. */
  readonly labels: Int32Array;
  /** [H, W, C] */
  readonly shape: readonly [number, number, number];
  readonly numClasses: number;
  readonly size: number;
  /** Per-channel normalisation on the 0..1 scale: x = (p/255 - mean[c]) / std[c]. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export interface DataSplits {
  train: ImageDataset;
  test: ImageDataset;
}

const isPosInt = (v: number) => Number.isInteger(v) && v > 0;

export function makeDataset(init: Omit<ImageDataset, 'size'>): ImageDataset {
  const { name, pixels, labels, shape, numClasses, mean, std } = init;
  const fail = (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  };
  if (shape.length !== 3 || !shape.every(isPosInt)) fail(`bad shape [${shape}] (expected [H, W, C] of positive integers)`);
  if (!isPosInt(numClasses)) fail(`bad numClasses ${numClasses}`);
  const [h, w, c] = shape;
  if (mean.length !== c || std.length !== c) fail(`mean/std need ${c} entries, got ${mean.length}/${std.length}`);
  if (!std.every((s) => s > 0)) fail(`std must be positive, got [${std}]`);
  const size = labels.length;
  if (pixels.length !== size * h * w * c) {
    fail(`${size} labels need ${size * h * w * c} pixels (${h}x${w}x${c} each), got ${pixels.length}`);
  }
  for (let i = 0; i < size; i++) {
    const y = labels[i];
    if (y < 0 || y >= numClasses) fail(`label ${y} at index ${i} outside 0..${numClasses - 1}`);
  }
  return Object.freeze({ name, pixels, labels, shape, numClasses, size, mean, std });
}

/**
 * A seeded subset of `limit` examples, stratified by class: classes keep their proportions (up to
 * rounding), which matters for small subsets. Selected examples keep their original relative order.
 */
export function subset(ds: ImageDataset, limit: number, seed: number): ImageDataset {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`subset: limit must be a positive integer, got ${limit}`);
  if (limit >= ds.size) return ds;
  const counts = new Float64Array(ds.numClasses);
  for (const y of ds.labels) counts[y]++;
  // Within each class, walk a random order; the r-th pick of class k gets key (r + 0.5) / count_k.
  // Taking the smallest keys interleaves classes in proportion to their size (systematic sampling).
  const order = permutation(ds.size, seed);
  const seen = new Float64Array(ds.numClasses);
  const key = new Float64Array(ds.size);
  for (const i of order) {
    const y = ds.labels[i];
    key[i] = (seen[y]++ + 0.5) / counts[y];
  }
  const picked = Array.from(order)
    .sort((a, b) => key[a] - key[b])
    .slice(0, limit)
    .sort((a, b) => a - b);
  const [h, w, c] = ds.shape;
  const stride = h * w * c;
  const pixels = new Uint8Array(limit * stride);
  const labels = new Int32Array(limit);
  picked.forEach((src, dst) => {
    pixels.set(ds.pixels.subarray(src * stride, (src + 1) * stride), dst * stride);
    labels[dst] = ds.labels[src];
  });
  return makeDataset({ ...ds, name: `${ds.name}[${limit}]`, pixels, labels });
}

export interface Batch {
  /** n*H*W*C normalised pixels, HWC per image. */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface BatchOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Random crop: pad by cropPadding black pixels per side, then crop back to HxW. */
  augment?: { cropPadding: number };
  dropLast?: boolean;
}

export function numBatches(ds: ImageDataset, opts: Pick<BatchOptions, 'batchSize' | 'dropLast'>): number {
  if (!isPosInt(opts.batchSize)) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
  return (opts.dropLast ? Math.floor : Math.ceil)(ds.size / opts.batchSize);
}

/** One epoch of batches. Shuffled order for epoch e is permutation(N, mixSeed(seed, e)). */
export function batches(ds: ImageDataset, opts: BatchOptions): Generator<Batch> {
  return batchesFrom(ds, opts, 0);
}

/** The sequence of batches(ds, opts) without its first startBatch batches, which are never built (for resuming). */
export function batchesFrom(ds: ImageDataset, opts: BatchOptions, startBatch: number): Generator<Batch> {
  // Validate here rather than in the generator so bad options fail at the call site.
  const count = numBatches(ds, opts);
  if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > count) {
    throw new RangeError(`startBatch must be an integer in 0..${count}, got ${startBatch}`);
  }
  const pad = opts.augment?.cropPadding ?? 0;
  if (!Number.isInteger(pad) || pad < 0) throw new RangeError(`cropPadding must be a non-negative integer, got ${pad}`);
  return generate(ds, opts, startBatch, count);
}

function* generate(ds: ImageDataset, opts: BatchOptions, startBatch: number, count: number): Generator<Batch> {
  const { batchSize, seed = 0, epoch = 0, augment } = opts;
  const pad = augment?.cropPadding ?? 0;
  const order = opts.shuffle ? permutation(ds.size, mixSeed(seed, epoch)) : null;
  const [h, w, c] = ds.shape;
  const stride = h * w * c;
  // Lookup table per (channel, byte): normalisation becomes one load per pixel.
  const lut = new Float32Array(c * 256);
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < 256; p++) lut[ch * 256 + p] = (p / 255 - ds.mean[ch]) / ds.std[ch];
  }
  for (let b = startBatch; b < count; b++) {
    const start = b * batchSize;
    const n = Math.min(batchSize, ds.size - start);
    const x = new Float32Array(n * stride);
    const y = new Int32Array(n);
    const rng = augment ? new Rng(mixSeed(seed, epoch, b)) : null;
    for (let j = 0; j < n; j++) {
      const src = order ? order[start + j] : start + j;
      y[j] = ds.labels[src];
      const img = ds.pixels.subarray(src * stride, (src + 1) * stride);
      const out = x.subarray(j * stride, (j + 1) * stride);
      if (rng) {
        cropShift(img, out, h, w, c, rng.int(2 * pad + 1) - pad, rng.int(2 * pad + 1) - pad, lut);
      } else {
        for (let k = 0; k < stride; k++) out[k] = lut[(k % c) * 256 + img[k]];
      }
    }
    yield { x, y, n };
  }
}

/** Writes the HxW window at offset (dy, dx) of the zero-padded image: out(i, j) = img(i + dy, j + dx) or black. */
function cropShift(
  img: Uint8Array, out: Float32Array, h: number, w: number, c: number, dy: number, dx: number, lut: Float32Array,
): void {
  for (let i = 0; i < h; i++) {
    const si = i + dy;
    for (let j = 0; j < w; j++) {
      const sj = j + dx;
      const inside = si >= 0 && si < h && sj >= 0 && sj < w;
      for (let ch = 0; ch < c; ch++) {
        out[(i * w + j) * c + ch] = lut[ch * 256 + (inside ? img[(si * w + sj) * c + ch] : 0)];
      }
    }
  }
}
