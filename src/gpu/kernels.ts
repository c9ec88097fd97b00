/**
 * The library's fused WebGPU kernels, switched on for the `webgpu` backend as a whole (browser-safe): Adam and
 * SGD with momentum in one dispatch per variable (adam.ts, momentum.ts), the unit loss with its stats and
 * gradient in one per unit (unit-loss.ts), matrix products with the heads' masks drawn inside (matmul.ts;
 * with tfjs's products, the masked projection on its own: masked-projection.ts), a unit's Dense and Conv2D
 * layers with bias and ReLU in one dispatch forward and one backward (fused-layers.ts), the sum over a
 * matrix's rows (sum.ts) and the stack of a step's stats rows (stack.ts). Each has a tfjs-ops twin that other
 * backends use and its tests compare against.
 */
import * as tf from '@tensorflow/tfjs';
import { registerUnitLossStats } from '../objectives/unit-loss.js';
import { registerMaskedProjection } from '../objectives/projection.js';
import { registerAdam, registerMomentum } from '../train/optimizers.js';
import { WebGpuAdamOptimizer } from './adam.js';
import { WebGpuMomentumOptimizer } from './momentum.js';
import { webGpuMaskedProjection } from './masked-projection.js';
import { useFusedLayers } from './fused-layers.js';
import { useMatMul, type MatMulTiling } from './matmul.js';
import { useStack } from './stack.js';
import { useColumnSum } from './sum.js';
import { webGpuUnitLossStats } from './unit-loss.js';

/** Options of {@link useWebGpuKernels}. */
export interface WebGpuKernelOptions {
  /**
   * With `on`, matrix products run as our own kernel (matmul.ts: fewer host costs per product) rather than
   * tfjs-backend-webgpu's programs (default true; `bench:gpu`'s engine sll-tfjs-matmul is false).
   */
  matMul?: boolean;
  /**
   * How our matrix products split their output among workgroups and threads (default '64x64/4x4'; which is
   * fastest depends on the card and the sizes: `bench:gpu -- --matmuls` times each).
   */
  matMulTiling?: MatMulTiling;
}

/**
 * Makes `webgpu` training use the fused kernels (`on`, what loading the backend does), or tfjs's own ops,
 * tf.train.adam and tf.train.momentum (what `bench:gpu` measures as tfjs-stock). Needs tfjs-backend-webgpu
 * loaded (its kernels are wrapped).
 */
export function useWebGpuKernels(on: boolean, options: WebGpuKernelOptions = {}): void {
  // First: an unknown tiling is refused before anything is switched.
  useMatMul(on && (options.matMul ?? true), options.matMulTiling);
  registerAdam('webgpu', on ? (lr, b1, b2, eps) => new WebGpuAdamOptimizer(lr, b1, b2, eps) : (lr, b1, b2, eps) => tf.train.adam(lr, b1, b2, eps));
  registerMomentum('webgpu', on ? (lr, momentum) => new WebGpuMomentumOptimizer(lr, momentum) : (lr, momentum) => tf.train.momentum(lr, momentum));
  registerUnitLossStats('webgpu', on ? webGpuUnitLossStats : null);
  registerMaskedProjection('webgpu', on ? webGpuMaskedProjection : null);
  useColumnSum(on);
  useFusedLayers(on);
  useStack(on);
}
