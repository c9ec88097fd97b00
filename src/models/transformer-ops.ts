/**
 * The transformer's math on one screen (ViT, Dosovitskiy et al.; pre-norm blocks as in timm):
 *   LN(x)   = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta          over the last axis
 *   GELU(x) = x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2)))
 *   MHSA(x) = concat_h softmax(q_h k_h^T / sqrt(d_h)) v_h  W_o + b_o,   q = x W_q + b_q (k, v alike)
 * written with tfjs ops, so that tfjs differentiates them on any backend.
 */
import * as tf from '@tensorflow/tfjs';

/** LayerNorm's epsilon (timm's ViT; PyTorch's nn.LayerNorm default is 1e-5). */
export const LAYER_NORM_EPSILON = 1e-6;

/**
 * Kernels a backend may register to compute these ops in one pass each (the native backend does):
 * LayerNorm: inputs {x, gamma, beta}, attr {epsilon} -> [y, mean [rows], rstd [rows]]; its gradient: inputs
 * {dy, x, gamma, mean, rstd} -> [dx, dgamma, dbeta]; GELU: {x} -> y; its gradient {dy, x} -> dx. Without
 * them the ops are compositions of tfjs ops, the same math.
 */
export const LAYER_NORM_KERNEL = 'SllLayerNorm';
/** See {@link LAYER_NORM_KERNEL}. */
export const LAYER_NORM_GRAD_KERNEL = 'SllLayerNormGrad';
/** See {@link LAYER_NORM_KERNEL}. */
export const GELU_KERNEL = 'SllGelu';
/** See {@link LAYER_NORM_KERNEL}. */
export const GELU_GRAD_KERNEL = 'SllGeluGrad';

/** tfjs's customGrad, whose typing wants a variadic function of tensors and the save callback. */
type CustomGradFunc = Parameters<typeof tf.customGrad>[0];
type Save = (tensors: tf.Tensor[]) => void;

function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) != null;
}

const fusedLayerNorm = new Map<number, (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor>();

/** Layer normalisation over the last axis. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon = LAYER_NORM_EPSILON): tf.Tensor {
  if (hasKernel(LAYER_NORM_KERNEL)) {
    let op = fusedLayerNorm.get(epsilon);
    if (!op) {
      op = tf.customGrad(((input: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, save: Save) => {
        const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM_KERNEL, { x: input, gamma: scale, beta: shift }, { epsilon }) as tf.Tensor[];
        save([input, scale, mean, rstd]);
        return {
          value: y,
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
            tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, { dy, x: saved[0], gamma: saved[1], mean: saved[2], rstd: saved[3] }, {}) as tf.Tensor[],
        };
      }) as unknown as CustomGradFunc) as unknown as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
      fusedLayerNorm.set(epsilon, op);
    }
    return op(x, gamma, beta);
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon))), gamma), beta);
  });
}

const fusedGelu = tf.customGrad(((x: tf.Tensor, save: Save) => {
  save([x]);
  return {
    value: tf.engine().runKernel(GELU_KERNEL, { x }, {}) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(GELU_GRAD_KERNEL, { dy, x: saved[0] }, {}) as tf.Tensor,
  };
}) as unknown as CustomGradFunc) as unknown as (x: tf.Tensor) => tf.Tensor;

/** GELU, exact (with erf), as PyTorch's nn.GELU() and tfjs-layers' 'gelu' compute it. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (hasKernel(GELU_KERNEL)) return fusedGelu(x);
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/** x [..., D] W [D, E] + b [E]: a dense layer on the last axis of a tensor of any rank. */
export function linear(x: tf.Tensor, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const flat = tf.reshape(x, [-1, shape[shape.length - 1]]) as tf.Tensor2D;
    return tf.reshape(tf.add(tf.matMul(flat, w), b), [...shape.slice(0, -1), w.shape[1]]);
  });
}

/** The weights of multi-head self-attention: the query, key and value maps and the output projection. */
export interface AttentionWeights {
  q: tf.Tensor2D;
  qBias: tf.Tensor1D;
  k: tf.Tensor2D;
  kBias: tf.Tensor1D;
  v: tf.Tensor2D;
  vBias: tf.Tensor1D;
  proj: tf.Tensor2D;
  projBias: tf.Tensor1D;
}

/** Multi-head self-attention of tokens x [B, T, D] with `heads` heads of D / heads dimensions. */
export function selfAttention(x: tf.Tensor3D, heads: number, w: AttentionWeights, dropout: (t: tf.Tensor) => tf.Tensor = (t) => t): tf.Tensor3D {
  return tf.tidy(() => {
    const [batch, tokens, dim] = x.shape;
    const headDim = dim / heads;
    // [B, T, D] -> [B, heads, T, headDim]
    const split = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [batch, tokens, heads, headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
    const q = split(linear(x, w.q, w.qBias));
    const k = split(linear(x, w.k, w.kBias));
    const v = split(linear(x, w.v, w.vBias));
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(headDim));
    const attention = dropout(tf.softmax(scores, -1)) as tf.Tensor4D;
    const out = tf.reshape(tf.transpose(tf.matMul(attention, v), [0, 2, 1, 3]), [batch, tokens, dim]);
    return linear(out, w.proj, w.projBias) as tf.Tensor3D;
  });
}
