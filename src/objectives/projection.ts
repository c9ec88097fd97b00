/**
 * The projection head of a unit (paper section 3.3, "Stochastic Random Projection"):
 *   v_i = (1/sqrt(d')) (M_i ⊙ R_i) h_i,   R_i fixed i.i.d. sub-Gaussian, M_i ~ Bernoulli(keep) fresh each step,
 * optionally after adaptive average pooling of h_i to d' features (the paper's Fig. 4b ablation).
 * R_i is sampled once and never trained: it is a plain tensor, never a tf.Variable, so no optimizer sees it.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from '../data/random.js';

export type ProjectionDistribution = 'gaussian' | 'rademacher';
export const PROJECTION_DISTRIBUTIONS: readonly ProjectionDistribution[] = ['gaussian', 'rademacher'];
/** 'inverted' divides the masked R by keep (as inverted dropout does) so E[M ⊙ R / keep] = R. */
export type MaskScale = 'inverted' | 'none';
export const MASK_SCALES: readonly MaskScale[] = ['inverted', 'none'];

export interface ProjectionHeadConfig {
  /** Features of h_i once flattened. */
  inputDim: number;
  /** K, the number of classes. */
  numClasses: number;
  /** Adaptive average pooling of h_i to this many features before R; null projects h_i itself. */
  poolDim: number | null;
  distribution: ProjectionDistribution;
  /** Keep probability p of the Bernoulli mask on R; 1 disables the mask. */
  keep: number;
  maskScale: MaskScale;
  seed: number;
}

export class ProjectionHead {
  /** R_i^T / sqrt(d'), shape [d', K]: stored transposed so that a batch of rows maps as h R. */
  readonly projection: tf.Tensor2D;
  private readonly pool: tf.Tensor2D | null;

  /** Samples R from `config.seed`, or adopts `projection` (when reloading a saved head). */
  constructor(readonly config: ProjectionHeadConfig, projection?: tf.Tensor2D) {
    const d = config.poolDim ?? config.inputDim;
    const shape: [number, number] = [d, config.numClasses];
    this.projection = projection
      ? tf.keep(projection)
      : tf.tidy(() => tf.div(sampleSubGaussian(shape, config.distribution, config.seed), Math.sqrt(d)));
    if (!tf.util.arraysEqual(this.projection.shape, shape)) {
      throw new Error(`projection has shape [${this.projection.shape}], expected [${shape}]`);
    }
    this.pool = config.poolDim == null ? null : tf.keep(adaptiveAvgPoolMatrix(config.inputDim, config.poolDim));
  }

  /** The features R sees: h_i flattened, then adaptively average-pooled when configured. */
  features(h: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => {
      const flat = h.reshape([h.shape[0], -1]) as tf.Tensor2D;
      return this.pool ? tf.matMul(flat, this.pool) : flat;
    });
  }

  /**
   * Logits v_i. With `step` (training) R gets the Bernoulli mask of that step, drawn from a seed derived
   * from the head's seed and the step so that a run is reproducible and resumable; without it (evaluation)
   * R is used as is.
   */
  project(h: tf.Tensor, step?: number): tf.Tensor2D {
    return tf.tidy(() => {
      const useMask = step !== undefined && this.config.keep < 1;
      const r = useMask ? tf.mul(this.projection, this.mask(step)) : this.projection;
      return tf.matMul(this.features(h), r);
    });
  }

  /** M_i ~ Bernoulli(keep)^{d' x K}, divided by keep under inverted scaling. */
  mask(step: number): tf.Tensor2D {
    const { keep, maskScale, seed } = this.config;
    return tf.tidy(() => {
      const uniform = tf.randomUniform(this.projection.shape, 0, 1, 'float32', mixSeed(seed, step));
      const m = tf.cast(tf.less(uniform, keep), 'float32');
      return (maskScale === 'inverted' ? tf.div(m, keep) : m) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.projection.dispose();
    this.pool?.dispose();
  }
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
  if (outputDim < 1 || outputDim > inputDim) {
    throw new Error(`pooling to ${outputDim} features needs 1 <= d <= ${inputDim}`);
  }
  const p = new Float32Array(inputDim * outputDim);
  for (let j = 0; j < outputDim; j++) {
    const start = Math.floor((j * inputDim) / outputDim);
    const end = Math.ceil(((j + 1) * inputDim) / outputDim);
    for (let i = start; i < end; i++) p[i * outputDim + j] = 1 / (end - start);
  }
  return tf.tensor2d(p, [inputDim, outputDim]);
}
