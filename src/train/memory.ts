/**
 * Peak training memory of one step (paper Fig. 2): SLL keeps one unit's activations alive at a time, so
 * its activation peak stays flat as depth grows, while BP holds every layer's activations for the
 * backward pass. Measured from tfjs's own accounting (tf.profile), after warm-up steps so that optimizer
 * state is already allocated.
 */
import * as tf from '@tensorflow/tfjs';
import { networkVariables, type Network } from '../models/network.js';
import { optimizerState } from './optimizers.js';
import type { Trainer } from './trainer.js';

/** Bytes of one training step. */
export interface StepBytes {
  /** Peak tensor bytes during one training step (everything alive included). */
  peak_bytes: number;
  /** Parameters plus optimizer state. */
  param_bytes: number;
  /** Peak minus what was held before the step: activations, gradients and temporaries. */
  activation_peak_bytes: number;
  /**
   * On the `webgpu` backend only: bytes of GPU buffers its buffer pool holds after the step. The pool keeps
   * every buffer it ever allocated for reuse, so this is the high-water mark of the GPU memory tfjs took
   * (buffers rounded to their pooled sizes) since the backend started: measure one configuration per process
   * for it to be that configuration's. tfjs's own accounting above counts tensors only.
   */
  gpu_pool_bytes?: number;
}

/** Memory of one step of `trainer` on `network` with the minibatch (x, labels), after `warmup` steps. */
export async function measureStepMemory(network: Network, trainer: Trainer, x: tf.Tensor, labels: tf.Tensor1D, warmup = 2): Promise<StepBytes> {
  for (let s = 0; s < warmup; s++) tf.dispose(trainer.step(x, labels, s));
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => tf.dispose(trainer.step(x, labels, warmup)));
  const variables = networkVariables(network).reduce((n, v) => n + 4 * v.size, 0);
  const states = await Promise.all(trainer.optimizers.map(optimizerState));
  const slots = states.reduce((n, s) => n + s.slots.reduce((m, slot) => m + slot.values.byteLength, 0), 0);
  const pool = (tf.memory() as { numBytesAllocatedInGPU?: number }).numBytesAllocatedInGPU;
  return {
    peak_bytes: info.peakBytes,
    param_bytes: variables + slots,
    activation_peak_bytes: info.peakBytes - before,
    ...(tf.getBackend() === 'webgpu' && pool !== undefined ? { gpu_pool_bytes: pool } : {}),
  };
}
