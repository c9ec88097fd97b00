/** An epoch of minibatches of an image data set: seeded order, normalisation, and augmentation. */
import type { ImageDataset } from './dataset.js';
import { Rng, mixSeed, permutation } from './random.js';

/**
 * Random crop: pad by cropPadding black pixels per side, then crop back to HxW. With flip, each cropped
 * image is then mirrored left-right with probability 1/2.
 */
export interface Augmentation {
  cropPadding: number;
  flip?: boolean;
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
  augment?: Augmentation;
  dropLast?: boolean;
}

export function numBatches(ds: ImageDataset, opts: Pick<BatchOptions, 'batchSize' | 'dropLast'>): number {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
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
