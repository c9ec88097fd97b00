/** An epoch of minibatches of an image data set: seeded order, normalisation, and augmentation. */
import type { ImageDataset } from './dataset.js';
import { Rng, mixSeed, permutation } from './random.js';

/**
 * Random crop: pad by cropPadding black pixels per side, then crop back to HxW. With flip, each cropped
 * image is then mirrored left-right with probability 1/2. With elastic, each output pixel also reads its
 * source at a smooth random displacement (Simard et al., 2003), interpolated bilinearly.
 */
export interface Augmentation {
  cropPadding: number;
  flip?: boolean;
  elastic?: ElasticDistortion;
}

/**
 * Elastic distortion (Simard, Steinkraus & Platt, 2003): two fields of i.i.d. uniform(-1, 1) noise, one
 * per axis, each smoothed by a Gaussian of standard deviation `sigma` pixels (truncated at 3 sigma, zero
 * beyond the image) and scaled by `alpha`, displace where each output pixel is read. Their MNIST setting
 * is alpha 34, sigma 4. alpha 0 is no distortion.
 */
export interface ElasticDistortion {
  alpha: number;
  sigma: number;
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
 * column offset, then (with flip only) whether to mirror, then (with elastic alpha > 0 only) the H*W noise values of
 * the row field and the H*W of the column field, in row-major order. Streaming sets are read once per batch.
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
  const elastic = opts.augment?.elastic;
  if (elastic !== undefined) {
    if (!(Number.isFinite(elastic.alpha) && elastic.alpha >= 0)) throw new RangeError(`elastic alpha must be a number >= 0, got ${elastic.alpha}`);
    if (!(Number.isFinite(elastic.sigma) && elastic.sigma > 0)) throw new RangeError(`elastic sigma must be a number > 0, got ${elastic.sigma}`);
  }
  return generate(ds, opts, startBatch, count);
}

function* generate(ds: ImageDataset, opts: BatchOptions, startBatch: number, count: number): Generator<Batch> {
  const { batchSize, seed = 0, epoch = 0, augment } = opts;
  const pad = augment?.cropPadding ?? 0;
  const flip = augment?.flip ?? false;
  const warp = augment?.elastic && augment.elastic.alpha > 0 ? new ElasticWarp(ds.shape, augment.elastic, ds.mean, ds.std) : null;
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
        const mirror = flip && rng.next() < 0.5;
        if (warp) warp.apply(img, out, dy, dx, mirror, rng);
        else cropShift(img, out, h, w, c, dy, dx, mirror, lut);
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

/** The elastic distortion of one image after another (scratch buffers reused across images). */
class ElasticWarp {
  private readonly h: number;
  private readonly w: number;
  private readonly c: number;
  /** The Gaussian's taps, -r..r. */
  private readonly kernel: Float32Array;
  private readonly r: number;
  /** Noise rows, each padded by r zeros per side: H x (W + 2r). */
  private readonly noise: Float32Array;
  /** The row pass, padded by r zero rows above and below: (H + 2r) x W. */
  private readonly rowPass: Float32Array;
  /** The row (first) and column displacements of each pixel, alpha included. */
  private readonly fieldY: Float32Array;
  private readonly fieldX: Float32Array;
  /** Per channel: normalised = byte * scale + shift. */
  private readonly scale: Float32Array;
  private readonly shift: Float32Array;

  constructor(shape: readonly [number, number, number], private readonly e: ElasticDistortion, mean: readonly number[], std: readonly number[]) {
    [this.h, this.w, this.c] = shape;
    const r = (this.r = Math.ceil(3 * e.sigma));
    const taps = new Float64Array(2 * r + 1).map((_, k) => Math.exp(-((k - r) ** 2) / (2 * e.sigma * e.sigma)));
    const sum = taps.reduce((a, b) => a + b, 0);
    this.kernel = Float32Array.from(taps, (t) => t / sum);
    this.noise = new Float32Array(this.h * (this.w + 2 * r));
    this.rowPass = new Float32Array((this.h + 2 * r) * this.w);
    this.fieldY = new Float32Array(this.h * this.w);
    this.fieldX = new Float32Array(this.h * this.w);
    this.scale = Float32Array.from({ length: this.c }, (_, ch) => 1 / (255 * std[ch]));
    this.shift = Float32Array.from({ length: this.c }, (_, ch) => -mean[ch] / std[ch]);
  }

  /** A fresh field from `rng`: alpha * (G_sigma * U(-1, 1)), the noise zero outside the image. */
  private drawField(rng: Rng, field: Float32Array): void {
    const { h, w, r, kernel, noise, rowPass } = this;
    const taps = kernel.length;
    const pw = w + 2 * r;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) noise[i * pw + r + j] = 2 * rng.next() - 1;
    }
    for (let i = 0; i < h; i++) {
      const row = i * pw;
      const outRow = (i + r) * w;
      for (let j = 0; j < w; j++) {
        let acc = 0;
        for (let k = 0; k < taps; k++) acc += kernel[k] * noise[row + j + k];
        rowPass[outRow + j] = acc;
      }
    }
    const alpha = this.e.alpha;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        let acc = 0;
        for (let k = 0; k < taps; k++) acc += kernel[k] * rowPass[(i + k) * w + j];
        field[i * w + j] = alpha * acc;
      }
    }
  }

  /**
   * out(i, j) = the bilinear interpolation of the zero-padded image at (i + dy + fieldY(i, j), j' + dx +
   * fieldX(i, j)), normalised; j' = W-1-j when mirrored, else j (as the plain crop reads it).
   */
  apply(img: Uint8Array, out: Float32Array, dy: number, dx: number, mirror: boolean, rng: Rng): void {
    const { h, w, c, fieldY, fieldX, scale, shift } = this;
    this.drawField(rng, fieldY);
    this.drawField(rng, fieldX);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const y = i + dy + fieldY[i * w + j];
        const x = (mirror ? w - 1 - j : j) + dx + fieldX[i * w + j];
        const y0 = Math.floor(y);
        const x0 = Math.floor(x);
        const fy = y - y0;
        const fx = x - x0;
        // Corner weights, zero for a corner outside the image (the black padding).
        const inY0 = y0 >= 0 && y0 < h;
        const inY1 = y0 + 1 >= 0 && y0 + 1 < h;
        const inX0 = x0 >= 0 && x0 < w;
        const inX1 = x0 + 1 >= 0 && x0 + 1 < w;
        const w00 = inY0 && inX0 ? (1 - fy) * (1 - fx) : 0;
        const w01 = inY0 && inX1 ? (1 - fy) * fx : 0;
        const w10 = inY1 && inX0 ? fy * (1 - fx) : 0;
        const w11 = inY1 && inX1 ? fy * fx : 0;
        // Clamped indices: a corner outside has weight 0, so any pixel inside may stand for it.
        const r0 = Math.min(Math.max(y0, 0), h - 1) * w;
        const r1 = Math.min(Math.max(y0 + 1, 0), h - 1) * w;
        const c0 = Math.min(Math.max(x0, 0), w - 1);
        const c1 = Math.min(Math.max(x0 + 1, 0), w - 1);
        for (let ch = 0; ch < c; ch++) {
          const v = w00 * img[(r0 + c0) * c + ch] + w01 * img[(r0 + c1) * c + ch] + w10 * img[(r1 + c0) * c + ch] + w11 * img[(r1 + c1) * c + ch];
          out[(i * w + j) * c + ch] = v * scale[ch] + shift[ch];
        }
      }
    }
  }
}
