/**
 * The fused layer kernels of models/fused-layers.ts on the `webgpu` backend (browser-safe): a unit's Dense
 * or Conv2D layer as one dispatch forward, and its activation and bias gradient as one dispatch backward.
 *
 * Under a gradient tape tfjs runs a Dense layer as a matmul, a bias add and a ReLU (tfjs fuses them only
 * outside a tape), and differentiates the ReLU as step(h) times dy before the bias gradient's sum: six
 * programs where two do (dW = x^T dz is the seventh, in both). Forward, {@link DENSE_KERNEL} and
 * {@link CONV2D_KERNEL} are tfjs-backend-webgpu's own _FusedMatMul and FusedConv2D programs (bias and
 * activation in the matmul's or convolution's epilogue); backward, {@link ACTIVATION_BIAS_GRAD_KERNEL}
 * writes dz = dy ⊙ [h > 0] and sums it over the rows into db in the same pass (sum.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { ACTIVATION_BIAS_GRAD_KERNEL, CONV2D_KERNEL, DENSE_KERNEL } from '../models/fused-layers.js';
import { recordColumnSum } from './sum.js';
import { webGpuBackend } from './tfjs-webgpu.js';

type KernelFunc = tf.KernelConfig['kernelFunc'];

/** dz = dy ⊙ act'(y) and db = dz summed over all but the last axis, in one dispatch ('linear': dz is dy). */
const activationBiasGrad: KernelFunc = ({ inputs, backend: kernelBackend, attrs }) => {
  const { dy, y } = inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
  const { activation } = attrs as unknown as { activation: string };
  if (!tf.util.arraysEqual(dy.shape, y.shape)) throw new Error(`${ACTIVATION_BIAS_GRAD_KERNEL}: dy [${dy.shape}] and y [${y.shape}] differ`);
  if (dy.dtype !== 'float32' || dy.shape.length === 0 || tf.util.sizeFromShape(dy.shape) === 0) {
    throw new Error(`${ACTIVATION_BIAS_GRAD_KERNEL}: dy must be a non-empty float32 tensor of rank >= 1, got ${dy.dtype} [${dy.shape}]`);
  }
  if (activation !== 'relu' && activation !== 'linear') throw new Error(`${ACTIVATION_BIAS_GRAD_KERNEL}: activation '${activation}' is not fused`);
  const webgpu = kernelBackend as unknown as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo; incRef(dataId: object): void };
  const cols = dy.shape[dy.shape.length - 1];
  const db = webgpu.makeTensorInfo([cols], 'float32');
  if (activation === 'linear') {
    // dz is dy itself (shared storage, as tfjs's Identity does).
    webgpu.incRef(dy.dataId);
    recordColumnSum(webGpuBackend(), dy, db);
    return [{ dataId: dy.dataId, shape: dy.shape.slice(), dtype: dy.dtype }, db];
  }
  const dz = webgpu.makeTensorInfo(dy.shape.slice(), 'float32');
  recordColumnSum(webGpuBackend(), dy, db, { y, dz });
  return [dz, db];
};

/** The kernels this module registers for webgpu: ours, or tfjs-backend-webgpu's under our names. */
function kernels(): { kernelName: string; kernelFunc: KernelFunc }[] {
  const stock = (name: string): KernelFunc => {
    const k = tf.getKernel(name, 'webgpu');
    if (!k) throw new Error(`tfjs-backend-webgpu is not loaded: it registers the ${name} kernel the fused layers run`);
    return k.kernelFunc;
  };
  stock('_FusedMatMul');
  // Whichever _FusedMatMul is registered when the layer runs: tfjs's, or matmul.ts's in front of it.
  const dense: KernelFunc = (args) => tf.getKernel('_FusedMatMul', 'webgpu')!.kernelFunc(args);
  return [
    { kernelName: DENSE_KERNEL, kernelFunc: dense },
    { kernelName: CONV2D_KERNEL, kernelFunc: stock('FusedConv2D') },
    { kernelName: ACTIVATION_BIAS_GRAD_KERNEL, kernelFunc: activationBiasGrad },
  ];
}

/**
 * Makes a unit's Dense and Conv2D layers run through the fused kernels on webgpu (on), or as tfjs-layers
 * runs them (off: what `bench:gpu` measures as tfjs-stock).
 */
export function useFusedLayers(on: boolean): void {
  for (const { kernelName, kernelFunc } of kernels()) {
    if (tf.getKernel(kernelName, 'webgpu')) tf.unregisterKernel(kernelName, 'webgpu');
    if (on) tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
  }
}
