/**
 * The projection head of a unit (paper section 3.3, "Stochastic Random Projection"):
 *   v_i = (1/sqrt(d')) (M_i ⊙ R_i) h_i,   R_i fixed i.i.d. sub-Gaussian, M_i ~ Bernoulli(keep) fresh each step,
 * optionally after adaptive average pooling of h_i to d' features (the paper's Fig. 4b ablation).
 * R_i is sampled once and never trained: it is a plain tensor, never a tf.Variable, so no optimizer sees it.
 */
import * as tf from '@tensorflow/tfjs';
import { bernoulliMask, mixSeed } from '../data/random.js';
import { poolTokens, type TokenPooling } from '../models/tokens.js';

/** The sub-Gaussian distributions R_i's entries may be drawn from: N(0, 1), or +-1 with probability 1/2 each. */
export type ProjectionDistribution = 'gaussian' | 'rademacher';
/** Every {@link ProjectionDistribution}. */
export const PROJECTION_DISTRIBUTIONS: readonly ProjectionDistribution[] = ['gaussian', 'rademacher'];
/** 'inverted' divides the masked R by keep (as inverted dropout does) so E[M ⊙ R / keep] = R. */
export type MaskScale = 'inverted' | 'none';
/** Every {@link MaskScale}. */
export const MASK_SCALES: readonly MaskScale[] = ['inverted', 'none'];
/**
 * The 1/sqrt(d') of v_i = (1/sqrt(d')) R_i h_i. 'classes': d' = K, the rows of R_i, the JL scaling under
 * which ||v_i|| ~ ||h_i||. 'features': d' = d, the features R_i reads, which keeps the logits near unit
 * scale whatever the width (sqrt(d / K) times smaller than 'classes').
 */
export type ProjectionScale = 'classes' | 'features';
/** Every {@link ProjectionScale}. */
export const PROJECTION_SCALES: readonly ProjectionScale[] = ['classes', 'features'];

/** What a projection head is: plain data, saved with a model (R itself is sampled from `seed`, or saved). */
export interface ProjectionHeadConfig {
  /** Shape of h_i without the batch: [D] for a dense unit, [T, D] for tokens, [H, W, C] for a conv unit. */
  inputShape: number[];
  /** Tokens [T, D] only: R reads the class token, or the mean over tokens. */
  token?: TokenPooling;
  /** K, the number of classes. */
  numClasses: number;
  /**
   * Adaptive average pooling of h_i to about this many features before R; null projects h_i whole.
   * [D] (and the D features of tokens) pools to d features; [H, W, C] pools each channel to s x s (PyTorch's adaptive_avg_pool2d bins),
   * s the largest with s <= min(H, W) and s * s * C <= d (at least 1).
   */
  poolDim: number | null;
  distribution: ProjectionDistribution;
  /** Keep probability p of the Bernoulli mask on R; 1 disables the mask. */
  keep: number;
  maskScale: MaskScale;
  scale: ProjectionScale;
  /**
   * Centre the features before R: v_i = R_i (f - mean_j f_j) / sqrt(d') for the d features f of each example
   * (not in the paper). A ReLU unit's features are all >= 0, so without it their mean m reaches every logit k
   * as m * sum_j R_kj, a random class bias as large as the signal. Absent (saved before it existed) is false.
   */
  center?: boolean;
  seed: number;
}

/** One step's Bernoulli mask: entry i of stream `key` is kept with probability `keep`, as `value`. */
export interface MaskDraw {
  key: number;
  keep: number;
  value: number;
}

/** M ⊙ R for one step's mask: R [d, K] with each entry kept (times the mask's value) or zeroed. */
export type MaskedProjectionFn = (projection: tf.Tensor2D, draw: MaskDraw) => tf.Tensor2D;

const maskedByBackend = new Map<string, MaskedProjectionFn>();

/**
 * Makes `fn` compute {@link maskedProjection} while `backend` is tfjs's backend (webgpu draws the mask in its
 * kernel instead of uploading it); it must give the same values. `null` goes back to the default.
 */
export function registerMaskedProjection(backend: string, fn: MaskedProjectionFn | null): void {
  if (fn) maskedByBackend.set(backend, fn);
  else maskedByBackend.delete(backend);
}

/** M ⊙ R: a backend's fused kernel when one is registered, else the mask drawn on the CPU times R. */
export function maskedProjection(projection: tf.Tensor2D, draw: MaskDraw): tf.Tensor2D {
  const fused = maskedByBackend.get(tf.getBackend());
  if (fused) return fused(projection, draw);
  return tf.tidy(() => tf.mul(projection, tf.tensor2d(bernoulliMask(draw.key, projection.size, draw.keep, draw.value), projection.shape)));
}

/**
 * The kernel of f (M ⊙ R) in one pass, for a backend that has it (webgpu: matmul.ts draws the mask as it
 * reads R, so M ⊙ R is never written): inputs {a: f [B, d], b: R [d, K]}, attributes {transposeB, key,
 * keep, value} (a {@link MaskDraw}; transposeB: f [B, K] times (M ⊙ R)^T, the product's gradient).
 */
export const MASKED_PRODUCT_KERNEL = 'SllMaskedMatMul';

/**
 * f (M ⊙ R), the masked head's logits for features f (R holds the 1/sqrt(d')): the backend's
 * {@link MASKED_PRODUCT_KERNEL} when it has one, else f times {@link maskedProjection}. Differentiable in f
 * (and in R, though heads never train it).
 */
export function maskedProduct(features: tf.Tensor2D, projection: tf.Tensor2D, draw: MaskDraw): tf.Tensor2D {
  if (features.size > 0 && tf.getKernel(MASKED_PRODUCT_KERNEL, tf.getBackend()) != null) {
    registerMaskedProductGradient();
    const attrs = { transposeB: false, key: draw.key, keep: draw.keep, value: draw.value };
    return tf.engine().runKernel(MASKED_PRODUCT_KERNEL, { a: features, b: projection }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  }
  return tf.tidy(() => tf.matMul(features, maskedProjection(projection, draw)));
}

let maskedProductGradient = false;

/** C = A op(M ⊙ B): dA = dC op(M ⊙ B)^T (the kernel again), dB = M ⊙ op^-1(A^T dC). Registered once. */
function registerMaskedProductGradient(): void {
  if (maskedProductGradient) return;
  maskedProductGradient = true;
  tf.registerGradient({
    kernelName: MASKED_PRODUCT_KERNEL,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const draw = attrs as unknown as MaskDraw & { transposeB: boolean };
      return {
        a: () => tf.engine().runKernel(MASKED_PRODUCT_KERNEL, { a: dy as tf.Tensor, b }, { ...draw, transposeB: !draw.transposeB } as unknown as tf.NamedAttrMap) as tf.Tensor,
        b: () => {
          const mask = maskedProjection(tf.onesLike(b) as tf.Tensor2D, draw);
          return tf.mul(mask, draw.transposeB ? tf.matMul(dy as tf.Tensor, a, true, false) : tf.matMul(a, dy as tf.Tensor, true, false));
        },
      };
    },
  });
}

/** A unit's fixed random projection head: v_i = (M_i ⊙ R_i) pool(h_i) / sqrt(d'). */
export class ProjectionHead {
  /** R_i^T / sqrt(d'), shape [d, K]: stored transposed so that a batch of rows maps as h R. */
  readonly projection: tf.Tensor2D;
  /** The pooling matrix P: [D, d] for a dense input, [1, H*W, s*s] (one for the whole batch) for a conv one. */
  private readonly pool: tf.Tensor2D | tf.Tensor3D | null;
  /** s of the s x s pooling of a conv input, or null (dense input, or no pooling asked). */
  private readonly side: number | null;

  /** Samples R from `config.seed`, or adopts `projection` (when reloading a saved head). */
  constructor(readonly config: ProjectionHeadConfig, projection?: tf.Tensor2D) {
    const d = featureDim(config);
    const shape: [number, number] = [d, config.numClasses];
    this.projection = projection
      ? tf.keep(projection)
      : tf.tidy(() => {
          const dPrime = config.scale === 'classes' ? config.numClasses : d;
          return tf.div(sampleSubGaussian(shape, config.distribution, config.seed), Math.sqrt(dPrime));
        });
    if (!tf.util.arraysEqual(this.projection.shape, shape)) {
      throw new Error(`projection has shape [${this.projection.shape}], expected [${shape}]`);
    }
    const pool = poolMatrix(config);
    this.pool = pool ? tf.keep(pool) : null;
    this.side = spatialPoolSide(config);
  }

  /**
   * The features R sees: h_i adaptively average-pooled when configured, then flattened ([s, s, C] order),
   * each example's mean feature subtracted when the head centres.
   */
  features(h: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const f = this.pooledFeatures(h);
      return this.config.center ? tf.sub(f, tf.mean(f, 1, true)) : f;
    });
  }

  private pooledFeatures(h: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const batch = h.shape[0];
      if (h.rank === 3) h = poolTokens(h as tf.Tensor3D, this.config.token ?? 'cls');
      if (h.rank === 2) return (this.pool ? tf.matMul(h as tf.Tensor2D, this.pool as tf.Tensor2D) : h) as tf.Tensor2D;
      const side = this.side;
      const [, H, W, C] = h.shape as number[];
      if (side == null || side === H && side === W) return h.reshape([batch, -1]) as tf.Tensor2D;
      if (H % side === 0 && W % side === 0) {
        // Equal bins: a plain average pool (the same numbers as the general path, faster).
        const window: [number, number] = [H / side, W / side];
        return tf.avgPool(h as tf.Tensor4D, window, window, 'valid').reshape([batch, -1]) as tf.Tensor2D;
      }
      // pooled_b = P^T h_b: P (broadcast over the batch) maps each example's [H*W, C] maps to [s*s, C]
      // directly, with no transpose of h on the way in or out.
      const pooled = tf.matMul(this.pool as tf.Tensor3D, h.reshape([batch, H * W, C]) as tf.Tensor3D, true, false);
      return pooled.reshape([batch, -1]) as tf.Tensor2D;
    });
  }

  /**
   * Logits v_i. With `step` (training) R gets the Bernoulli mask of that step, drawn from a counter-based
   * stream keyed by the head's seed and the step, so that a run is reproducible and resumable and every
   * backend draws the same mask; without it (evaluation) R is used as is.
   */
  project(h: tf.Tensor, step?: number): tf.Tensor2D {
    return tf.tidy(() => {
      const f = this.features(h);
      return step !== undefined && this.config.keep < 1 ? maskedProduct(f, this.projection, this.maskDraw(step)) : tf.matMul(f, this.projection);
    });
  }

  /** Which mask step `step` draws: its stream, keep, and the kept entries' value. */
  maskDraw(step: number): MaskDraw {
    const { keep, maskScale, seed } = this.config;
    // tfjs's m / keep in float32: 1 / float32(keep), rounded to float32.
    return { key: mixSeed(seed, step), keep, value: maskScale === 'inverted' ? Math.fround(1 / Math.fround(keep)) : 1 };
  }

  /** M_i ~ Bernoulli(keep)^{d x K}, divided by keep under inverted scaling. */
  mask(step: number): tf.Tensor2D {
    const { key, keep, value } = this.maskDraw(step);
    return tf.tensor2d(bernoulliMask(key, this.projection.size, keep, value), this.projection.shape);
  }

  /**
   * The head without its mask as one linear map of the flattened h_i: the matrix W [D, K] (D the size of
   * h_i, row-major as h_i flattens) with v_i = flatten(h_i) W, i.e. the pooling, the centring (when the
   * head centres) and R^T / sqrt(d') folded into one, computed in float64. A saved predictor ends in it
   * as a frozen dense layer.
   */
  readoutMatrix(): Float32Array {
    const { inputShape, numClasses: k } = this.config;
    const r = this.config.center ? centredColumns(this.projection.dataSync(), k) : this.projection.dataSync();
    if (inputShape.length !== 3) {
      // W = P R for the D features (P the [D, d] adaptive average pooling, or none) ...
      const dim = inputShape[inputShape.length - 1];
      const w = this.config.poolDim == null ? Float64Array.from(r) : matMul64(poolWeights(dim, this.config.poolDim), r, dim, this.config.poolDim, k);
      if (inputShape.length === 1) return Float32Array.from(w);
      // ... which tokens [T, D] reach through the class token (row block 0), or their mean (every block / T).
      const tokens = inputShape[0];
      const out = new Float32Array(tokens * dim * k);
      if (this.config.token === 'mean') for (let t = 0; t < tokens; t++) for (let i = 0; i < dim * k; i++) out[t * dim * k + i] = w[i] / tokens;
      else out.set(w);
      return out;
    }
    const d = featureDim(this.config);
    const D = inputShape.reduce((a, b) => a * b, 1);
    if (this.config.poolDim == null || d === D) return Float32Array.from(r);
    // Conv input: feature (i * s + j) * C + ch averages channel ch over bin (i, j) of the H x W maps.
    const w = new Float64Array(D * k);
    const [h, wd, ch] = inputShape;
    const side = this.side!;
    const rows = poolWeights(h, side);
    const cols = poolWeights(wd, side);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < wd; x++)
        for (let i = 0; i < side; i++)
          for (let j = 0; j < side; j++) {
            const pw = rows[y * side + i] * cols[x * side + j];
            if (pw === 0) continue;
            for (let c = 0; c < ch; c++) {
              const src = ((i * side + j) * ch + c) * k;
              const dst = ((y * wd + x) * ch + c) * k;
              for (let o = 0; o < k; o++) w[dst + o] += pw * r[src + o];
            }
          }
    return Float32Array.from(w);
  }

  /** Frees R and the pooling matrix. */
  dispose(): void {
    this.projection.dispose();
    this.pool?.dispose();
  }
}

/**
 * R [d, K] (row-major) with each column's mean over its d rows subtracted, in float64: centring the features,
 * (f - mean(f) 1) R = f (R - 1 mean_rows(R)), folded into R.
 */
function centredColumns(r: ArrayLike<number>, k: number): Float64Array {
  const d = r.length / k;
  const mean = new Float64Array(k);
  for (let j = 0; j < d; j++) for (let o = 0; o < k; o++) mean[o] += r[j * k + o];
  for (let o = 0; o < k; o++) mean[o] /= d;
  const out = new Float64Array(r.length);
  for (let j = 0; j < d; j++) for (let o = 0; o < k; o++) out[j * k + o] = r[j * k + o] - mean[o];
  return out;
}

/** d, the number of features R projects. */
export function featureDim(config: ProjectionHeadConfig): number {
  const shape = config.inputShape;
  if (shape.length < 3) return config.poolDim ?? shape[shape.length - 1];
  const side = spatialPoolSide(config);
  return side == null ? shape.reduce((a, b) => a * b, 1) : side * side * shape[shape.length - 1];
}

/** s of the s x s spatial pooling of an [H, W, C] input, or null when it is projected whole. */
function spatialPoolSide(config: ProjectionHeadConfig): number | null {
  const shape = config.inputShape;
  if (shape.length !== 3 || config.poolDim == null) return null;
  const [h, w, c] = shape;
  let side = 1;
  while (side + 1 <= Math.min(h, w) && (side + 1) * (side + 1) * c <= config.poolDim) side++;
  return side;
}

/**
 * The matrix that pools: [D, d] for a dense input pooled to d features; [H*W, s*s] for a conv input whose
 * s x s bins are unequal (kron of the row and column poolings); null when no matmul is needed.
 */
function poolMatrix(config: ProjectionHeadConfig): tf.Tensor2D | tf.Tensor3D | null {
  const shape = config.inputShape;
  if (config.poolDim == null) return null;
  if (shape.length < 3) return adaptiveAvgPoolMatrix(shape[shape.length - 1], config.poolDim);
  const side = spatialPoolSide(config)!;
  const [h, w] = shape;
  if ((side === h && side === w) || (h % side === 0 && w % side === 0)) return null;
  const rows = poolWeights(h, side);
  const cols = poolWeights(w, side);
  const p = new Float32Array(h * w * side * side);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let i = 0; i < side; i++)
        for (let j = 0; j < side; j++) p[(y * w + x) * side * side + i * side + j] = rows[y * side + i] * cols[x * side + j];
  return tf.tensor3d(p, [1, h * w, side * side]);
}

function sampleSubGaussian(shape: [number, number], distribution: ProjectionDistribution, seed: number) {
  if (distribution === 'gaussian') return tf.randomNormal(shape, 0, 1, 'float32', seed);
  return tf.sub(tf.mul(tf.cast(tf.less(tf.randomUniform(shape, 0, 1, 'float32', seed), 0.5), 'float32'), 2), 1);
}

/**
 * P in R^{D x d} with h P = adaptive average pooling of h's D features to d: output j averages inputs
 * floor(j D / d) .. ceil((j + 1) D / d) - 1, the bins of PyTorch's adaptive_avg_pool1d.
 */
export function adaptiveAvgPoolMatrix(inputDim: number, outputDim: number): tf.Tensor2D {
  return tf.tensor2d(poolWeights(inputDim, outputDim), [inputDim, outputDim]);
}

/** The values of adaptiveAvgPoolMatrix, row-major. */
function poolWeights(inputDim: number, outputDim: number): Float32Array {
  if (outputDim < 1 || outputDim > inputDim) {
    throw new Error(`pooling to ${outputDim} features needs 1 <= d <= ${inputDim}`);
  }
  const p = new Float32Array(inputDim * outputDim);
  for (let j = 0; j < outputDim; j++) {
    const start = Math.floor((j * inputDim) / outputDim);
    const end = Math.ceil(((j + 1) * inputDim) / outputDim);
    for (let i = start; i < end; i++) p[i * outputDim + j] = 1 / (end - start);
  }
  return p;
}

/** a [m, n] b [n, k] in float64, both row-major. */
function matMul64(a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * k);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      const aij = a[i * n + j];
      if (aij !== 0) for (let c = 0; c < k; c++) out[i * k + c] += aij * b[j * k + c];
    }
  return out;
}
