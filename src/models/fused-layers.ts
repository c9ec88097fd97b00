/**
 * A unit's Dense and Conv2D layers as one kernel each, forward and backward, where the backend has the
 * kernels (the native backend does): h = act(x W + b) or h = act(conv(x, W) + b) with act ReLU or linear.
 *
 * Why: under a gradient tape tfjs runs such a layer as three kernels (matmul or conv, bias add, ReLU) and
 * differentiates ReLU as step(h), a cast and a multiply, then sums for the bias: four more passes over the
 * activation. Here the forward is one kernel with the bias and ReLU fused, and the backward computes
 * dz = dy ⊙ [h > 0] and db = sum_rows(dz) in one pass; then dW, and dx only when something needs it (the
 * engine asks for the gradient of each input on the path to the variables only: never for a unit's
 * stop-gradient input). The math and the layer's weights are the same; only the kernels change.
 *
 * Kernels a backend registers for this (inputs and attributes as tfjs's fused ops take them):
 * - {@link DENSE_KERNEL}: {a: x [B, D], b: W [D, E], bias?: [E]}, {transposeA: false, transposeB: false,
 *   activation} -> act(x W + b), as tfjs's _FusedMatMul;
 * - {@link CONV2D_KERNEL}: {x, filter, bias?}, conv2d's attributes and {activation}, as tfjs's FusedConv2D;
 * - {@link ACTIVATION_BIAS_GRAD_KERNEL}: {dy, y}, {activation} -> [dz, db] with db the sum of dz over all
 *   but the last axis.
 *
 * A BatchNormalization layer over the last axis, in training, is likewise one kernel forward and one backward
 * (tfjs-layers runs it as moments, batchNorm and ~20 kernels of their gradients):
 * - {@link BATCH_NORM_TRAIN_KERNEL}: {x, scale, offset}, {epsilon} -> [y, mean, variance], with mean and the
 *   biased variance over all but the last axis (as tf.moments) and y = (x - mean) / sqrt(variance + epsilon)
 *   * scale + offset;
 * - {@link BATCH_NORM_TRAIN_GRAD_KERNEL}: {dy, x, scale, mean, variance}, {epsilon} -> [dx, dscale, doffset],
 *   dx including the paths through mean and variance, as tfjs differentiates its ops.
 * The layer's moving mean and variance are updated as tfjs-layers updates them.
 * Without them (any other backend), layers run as tfjs-layers runs them.
 */
import * as tf from '@tensorflow/tfjs';

/** See the module's documentation. */
export const DENSE_KERNEL = 'SllDense';
/** See the module's documentation. */
export const CONV2D_KERNEL = 'SllConv2D';
/** See the module's documentation. */
export const ACTIVATION_BIAS_GRAD_KERNEL = 'SllActivationBiasGrad';
/** See the module's documentation. */
export const BATCH_NORM_TRAIN_KERNEL = 'SllBatchNormTrain';
/** See the module's documentation. */
export const BATCH_NORM_TRAIN_GRAD_KERNEL = 'SllBatchNormTrainGrad';

/** The activations fused here: tfjs-layers' class names of them. */
type FusedActivation = 'relu' | 'linear';

/** tfjs-layers' Dense and Conv2D fields read here (the package does not export their classes). */
interface LayerInternals {
  built: boolean;
  kernel: tf.LayerVariable | null;
  bias: tf.LayerVariable | null;
  activation: { getClassName(): string } | null;
  activityRegularizer?: unknown;
  strides?: number[];
  padding?: string;
  dataFormat?: string;
  dilationRate?: number[];
  rank?: number;
}

/** tfjs-layers' BatchNormalization fields read here. */
interface BatchNormInternals {
  built: boolean;
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: tf.LayerVariable;
  beta?: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

/** What a layer's activation is, when it is one of those fused here. */
function fusedActivation(layer: LayerInternals): FusedActivation | null {
  const name = layer.activation ? layer.activation.getClassName() : 'linear';
  return name === 'relu' || name === 'linear' ? name : null;
}

function registered(kernel: string): boolean {
  if (tf.getKernel(kernel, tf.getBackend()) == null) return false;
  registerFusedLayerGradients();
  return true;
}

/**
 * The layer applied to `x` through the fused kernels, or null when they do not apply (another layer class,
 * activation, data format or rank, a dilated convolution, batch norm outside training or over another axis,
 * or a backend without the kernels): the caller then applies the layer itself.
 */
export function applyFused(layer: tf.layers.Layer, x: tf.Tensor, training = false): tf.Tensor | null {
  if (layer.getClassName() === 'BatchNormalization') return training ? batchNormTraining(layer, x) : null;
  const l = layer as unknown as LayerInternals;
  if (!l.built || l.kernel == null || x.dtype !== 'float32' || l.activityRegularizer != null) return null;
  const activation = fusedActivation(l);
  if (activation == null) return null;
  const kernel = l.kernel.read();
  const bias = l.bias ? l.bias.read() : null;
  const className = layer.getClassName();
  if (className === 'Dense' && x.rank === 2 && registered(DENSE_KERNEL)) {
    const inputs: tf.NamedTensorMap = bias ? { a: x, b: kernel, bias } : { a: x, b: kernel };
    return tf.engine().runKernel(DENSE_KERNEL, inputs, { transposeA: false, transposeB: false, activation } as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  if (className === 'Conv2D' && x.rank === 4 && l.rank === 2 && l.dataFormat === 'channelsLast' && registered(CONV2D_KERNEL)) {
    const dilations = l.dilationRate ?? [1, 1];
    if (dilations.some((d) => d !== 1)) return null;
    const attrs = { strides: l.strides, pad: l.padding === 'same' ? 'same' : 'valid', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined, activation };
    const inputs: tf.NamedTensorMap = bias ? { x, filter: kernel, bias } : { x, filter: kernel };
    return tf.engine().runKernel(CONV2D_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  return null;
}

/**
 * A BatchNormalization layer in training through {@link BATCH_NORM_TRAIN_KERNEL}, with its moving statistics
 * updated as tfjs-layers does (moving -= (moving - batch value) * (1 - momentum)); null where it does not apply.
 */
function batchNormTraining(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor | null {
  const l = layer as unknown as BatchNormInternals;
  const axis = l.axis < 0 ? l.axis + x.rank : l.axis;
  if (!l.built || l.gamma == null || l.beta == null || x.dtype !== 'float32' || x.rank < 2 || axis !== x.rank - 1) return null;
  if (!registered(BATCH_NORM_TRAIN_KERNEL)) return null;
  const [y, mean, variance] = tf.engine().runKernel(
    BATCH_NORM_TRAIN_KERNEL,
    { x, scale: l.gamma.read(), offset: l.beta.read() },
    { epsilon: l.epsilon },
  ) as tf.Tensor[];
  const decay = 1 - l.momentum;
  tf.tidy(() => {
    for (const [moving, value] of [[l.movingMean, mean], [l.movingVariance, variance]] as const) {
      const old = moving.read();
      moving.write(tf.sub(old, tf.mul(tf.sub(old, value), decay)));
    }
  });
  tf.dispose([mean, variance]);
  return y;
}

/** dz = dy ⊙ act'(y) and db = dz summed over all but the last axis: the backend's kernel, else tfjs ops. */
function activationBiasGrad(dy: tf.Tensor, y: tf.Tensor, activation: FusedActivation): [tf.Tensor, tf.Tensor] {
  if (registered(ACTIVATION_BIAS_GRAD_KERNEL)) {
    return tf.engine().runKernel(ACTIVATION_BIAS_GRAD_KERNEL, { dy, y }, { activation }) as tf.Tensor[] as [tf.Tensor, tf.Tensor];
  }
  const dz = activation === 'relu' ? tf.mul(dy, tf.step(y)) : tf.clone(dy);
  const axes = Array.from({ length: dz.rank - 1 }, (_, i) => i);
  return [dz, tf.sum(dz, axes)];
}

let gradientsRegistered = false;

/**
 * Registers the gradients of the fused kernels (once, on first use; they are backend-independent): each
 * input's gradient is computed only when the engine asks for it.
 */
function registerFusedLayerGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: DENSE_KERNEL,
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, w, y] = saved;
      const [dz, db] = activationBiasGrad(dy as tf.Tensor, y, (attrs as { activation: FusedActivation }).activation);
      return {
        a: () => tf.matMul(dz, w, false, true),
        b: () => tf.matMul(x, dz, true, false),
        bias: () => db,
      };
    },
  });
  tf.registerGradient({
    kernelName: CONV2D_KERNEL,
    inputsToSave: ['x', 'filter'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, y] = saved;
      const a = attrs as unknown as { strides: [number, number]; pad: 'same' | 'valid'; activation: FusedActivation };
      const [dz, db] = activationBiasGrad(dy as tf.Tensor, y, a.activation);
      const conv = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
      return {
        x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: dz, filter }, { ...conv, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
        filter: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: dz }, { ...conv, filterShape: filter.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
        bias: () => db,
      };
    },
  });
  tf.registerGradient({
    kernelName: BATCH_NORM_TRAIN_KERNEL,
    inputsToSave: ['x', 'scale'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved, attrs) => {
      // Only y reaches a loss (mean and variance feed the moving statistics): dys[0].
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const [x, scale, mean, variance] = saved;
      const [dx, dscale, doffset] = tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD_KERNEL, { dy, x, scale, mean, variance }, attrs as tf.NamedAttrMap) as tf.Tensor[];
      return { x: () => dx, scale: () => dscale, offset: () => doffset };
    },
  });
}
