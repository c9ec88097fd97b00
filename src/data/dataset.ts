import { DataError } from './errors.js';
import { Rng, mixSeed, permutation } from './random.js';

/**
 * A labelled image data set. Images are raw 0..255 bytes, row-major HWC. In-memory sets (makeDataset)
 * hold them all in `pixels`; streaming sets (makeStreamingDataset) have no `pixels` and produce images
 * on demand through `readPixels`, e.g. reading and decoding files. Every set has `readPixels`.
 */
export interface ImageDataset {
  readonly name: string;
  /** In-memory sets: N*H*W*C raw 0..255, row-major HWC per image. Absent on streaming sets. */
  readonly pixels?: Uint8Array;
  /**
   * Writes image indices[k] (H*W*C raw bytes, HWC) to out[k*H*W*C ...] for every k. Indices must be
   * integers in 0..size-1 and out must hold at least indices.length images (RangeError otherwise).
   */
  readPixels(indices: ArrayLike<number>, out: Uint8Array): void;
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

/** A data set whose images are all in memory. */
export interface InMemoryDataset extends ImageDataset {
  readonly pixels: Uint8Array;
}

export interface DataSplits<D extends ImageDataset = ImageDataset> {
  train: D;
  test: D;
}

/** What makeDataset needs: everything but the derived `size` and `readPixels`. */
export type DatasetInit = Omit<InMemoryDataset, 'size' | 'readPixels'>;

/** What makeStreamingDataset needs: the metadata and a reader of images by index (validated before each call). */
export type StreamingDatasetInit = Omit<ImageDataset, 'size' | 'pixels'>;

const isPosInt = (v: number) => Number.isInteger(v) && v > 0;

type Meta = Omit<ImageDataset, 'size' | 'pixels' | 'readPixels'>;

/** Checks the metadata shared by both kinds of set; returns size. */
function checkMeta(init: Meta, fail: (msg: string) => never): number {
  const { shape, numClasses, labels, mean, std } = init;
  if (shape.length !== 3 || !shape.every(isPosInt)) fail(`bad shape [${shape}] (expected [H, W, C] of positive integers)`);
  if (!isPosInt(numClasses)) fail(`bad numClasses ${numClasses}`);
  const c = shape[2];
  if (mean.length !== c || std.length !== c) fail(`mean/std need ${c} entries, got ${mean.length}/${std.length}`);
  if (!std.every((s) => s > 0)) fail(`std must be positive, got [${std}]`);
  return labels.length;
}

function checkLabels(name: string, labels: Int32Array, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y < 0 || y >= numClasses) throw new DataError(`${name}: label ${y} at index ${i} outside 0..${numClasses - 1}`);
  }
}

/** RangeError unless indices are integers in 0..size-1 and out holds indices.length images of `stride` bytes. */
function checkRead(name: string, size: number, stride: number, indices: ArrayLike<number>, out: Uint8Array): void {
  if (out.length < indices.length * stride) {
    throw new RangeError(`${name}: readPixels of ${indices.length} images needs ${indices.length * stride} bytes, got ${out.length}`);
  }
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`${name}: readPixels index ${i} outside 0..${size - 1}`);
  }
}

/** Attaches readPixels as a non-enumerable property (so deepEqual and structuredClone see only the data) and freezes. */
function finish<D extends ImageDataset>(data: Omit<D, 'readPixels'>, read: (indices: ArrayLike<number>, out: Uint8Array) => void): D {
  const [h, w, c] = data.shape;
  const stride = h * w * c;
  const readPixels = (indices: ArrayLike<number>, out: Uint8Array): void => {
    checkRead(data.name, data.size, stride, indices, out);
    read(indices, out);
  };
  Object.defineProperty(data, 'readPixels', { value: readPixels, enumerable: false });
  return Object.freeze(data) as D;
}

export function makeDataset(init: DatasetInit): InMemoryDataset {
  const { name, pixels, labels, shape, numClasses, mean, std } = init;
  const fail = (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  };
  const size = checkMeta(init, fail);
  const [h, w, c] = shape;
  const stride = h * w * c;
  if (pixels.length !== size * stride) {
    fail(`${size} labels need ${size * stride} pixels (${h}x${w}x${c} each), got ${pixels.length}`);
  }
  checkLabels(name, labels, numClasses);
  return finish<InMemoryDataset>({ name, pixels, labels, shape, numClasses, size, mean, std }, (indices, out) => {
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      out.set(pixels.subarray(i * stride, (i + 1) * stride), k * stride);
    }
  });
}

/**
 * A data set whose images come from `init.readPixels` when asked for (batches() asks once per batch), so
 * only the labels live in memory. The reader gets validated indices and a large enough `out`.
 */
export function makeStreamingDataset(init: StreamingDatasetInit): ImageDataset {
  const { name, labels, shape, numClasses, mean, std, readPixels } = init;
  const size = checkMeta(init, (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  });
  checkLabels(name, labels, numClasses);
  if (typeof readPixels !== 'function') throw new DataError(`${name}: readPixels must be a function`);
  return finish<ImageDataset>({ name, labels, shape, numClasses, size, mean, std }, readPixels);
}

/**
 * A seeded subset of `limit` examples, stratified by class: classes keep their proportions (up to
 * rounding), which matters for small subsets. Selected examples keep their original relative order.
 * The subset of an in-memory set is in memory; that of a streaming set streams the chosen images.
 */
export function subset(ds: InMemoryDataset, limit: number, seed: number): InMemoryDataset;
export function subset(ds: ImageDataset, limit: number, seed: number): ImageDataset;
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
  const picked = Uint32Array.from(
    Array.from(order)
      .sort((a, b) => key[a] - key[b])
      .slice(0, limit)
      .sort((a, b) => a - b),
  );
  const labels = Int32Array.from(picked, (src) => ds.labels[src]);
  const name = `${ds.name}[${limit}]`;
  if (!ds.pixels) {
    const parent = ds;
    return makeStreamingDataset({
      ...ds,
      name,
      labels,
      readPixels(indices, out) {
        parent.readPixels(Uint32Array.from({ length: indices.length }, (_, k) => picked[indices[k]]), out);
      },
    });
  }
  const [h, w, c] = ds.shape;
  const stride = h * w * c;
  const pixels = new Uint8Array(limit * stride);
  picked.forEach((src, dst) => pixels.set(ds.pixels!.subarray(src * stride, (src + 1) * stride), dst * stride));
  return makeDataset({ ...ds, name, pixels, labels });
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
  /**
   * Random crop: pad by cropPadding black pixels per side, then crop back to HxW. With flip, each
   * cropped image is then mirrored left-right with probability 1/2.
   */
  augment?: { cropPadding: number; flip?: boolean };
  dropLast?: boolean;
}

export function numBatches(ds: ImageDataset, opts: Pick<BatchOptions, 'batchSize' | 'dropLast'>): number {
  if (!isPosInt(opts.batchSize)) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
  return (opts.dropLast ? Math.floor : Math.ceil)(ds.size / opts.batchSize);
}

/**
 * One epoch of batches. Shuffled order for epoch e is permutation(N, mixSeed(seed, e)). With augment,
 * batch b draws from Rng(mixSeed(seed, e, b)), per image in batch order: the crop's row offset, its
 * column offset, then (with flip only) whether to mirror. Streaming sets are read once per batch.
 */
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
  const flip = opts.augment?.flip;
  if (flip !== undefined && typeof flip !== 'boolean') throw new RangeError(`flip must be a boolean, got ${flip}`);
  return generate(ds, opts, startBatch, count);
}

function* generate(ds: ImageDataset, opts: BatchOptions, startBatch: number, count: number): Generator<Batch> {
  const { batchSize, seed = 0, epoch = 0, augment } = opts;
  const pad = augment?.cropPadding ?? 0;
  const flip = augment?.flip ?? false;
  const order = opts.shuffle ? permutation(ds.size, mixSeed(seed, epoch)) : null;
  const [h, w, c] = ds.shape;
  const stride = h * w * c;
  // Lookup table per (channel, byte): normalisation becomes one load per pixel.
  const lut = new Float32Array(c * 256);
  for (let ch = 0; ch < c; ch++) {
    for (let p = 0; p < 256; p++) lut[ch * 256 + p] = (p / 255 - ds.mean[ch]) / ds.std[ch];
  }
  const { pixels } = ds;
  // Streaming sets: one readPixels per batch into a buffer reused across batches.
  const indices = new Uint32Array(Math.min(batchSize, ds.size));
  const buf = pixels ? null : new Uint8Array(indices.length * stride);
  for (let b = startBatch; b < count; b++) {
    const start = b * batchSize;
    const n = Math.min(batchSize, ds.size - start);
    const x = new Float32Array(n * stride);
    const y = new Int32Array(n);
    for (let j = 0; j < n; j++) indices[j] = order ? order[start + j] : start + j;
    if (buf) ds.readPixels(indices.subarray(0, n), buf);
    const rng = augment ? new Rng(mixSeed(seed, epoch, b)) : null;
    for (let j = 0; j < n; j++) {
      const src = indices[j];
      y[j] = ds.labels[src];
      const img = pixels ? pixels.subarray(src * stride, (src + 1) * stride) : buf!.subarray(j * stride, (j + 1) * stride);
      const out = x.subarray(j * stride, (j + 1) * stride);
      if (rng) {
        const dy = rng.int(2 * pad + 1) - pad;
        const dx = rng.int(2 * pad + 1) - pad;
        cropShift(img, out, h, w, c, dy, dx, flip && rng.next() < 0.5, lut);
      } else {
        for (let k = 0; k < stride; k++) out[k] = lut[(k % c) * 256 + img[k]];
      }
    }
    yield { x, y, n };
  }
}

/**
 * Writes the HxW window at offset (dy, dx) of the zero-padded image, mirrored left-right when `mirror`:
 * out(i, j) = img(i + dy, j' + dx) or black, where j' = W-1-j when mirrored and j otherwise.
 */
function cropShift(
  img: Uint8Array, out: Float32Array, h: number, w: number, c: number, dy: number, dx: number, mirror: boolean, lut: Float32Array,
): void {
  for (let i = 0; i < h; i++) {
    const si = i + dy;
    for (let j = 0; j < w; j++) {
      const sj = (mirror ? w - 1 - j : j) + dx;
      const inside = si >= 0 && si < h && sj >= 0 && sj < w;
      for (let ch = 0; ch < c; ch++) {
        out[(i * w + j) * c + ch] = lut[ch * 256 + (inside ? img[(si * w + sj) * c + ch] : 0)];
      }
    }
  }
}
