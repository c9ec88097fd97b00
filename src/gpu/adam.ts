/**
 * Adam on the `webgpu` backend, a unit's variables in one dispatch (browser-safe).
 *
 * tfjs's Adam runs ~14 elementwise programs per variable and uploads a scalar for each constant it makes;
 * on a GPU that overhead, not arithmetic, is the step's time (see docs/backends.md). Here one WGSL kernel
 * updates the parameters, first and second moments of the variables in place, two variables to a dispatch
 * (a dense unit's weights and bias together: in-place-update.ts), and the step's values (learning rate,
 * betas, epsilon, tfjs's float32 bias corrections) go in one small uniform buffer written once per step. The
 * state, checkpoints and math are tfjs Adam's (train/fused-adam.ts); the arithmetic is the native kernel's,
 * in the same order.
 */
import * as tf from '@tensorflow/tfjs';
import { FusedAdamOptimizer, type AdamStep } from '../train/fused-adam.js';
import { recordUpdates, type UpdateKernel, type UpdateTensors } from './in-place-update.js';
import { ownStorage, releaseAfterSubmit, uniformBuffer, webGpuBackend } from './tfjs-webgpu.js';

/** One Adam update of element j: p, m, v in place from g. */
const ADAM: UpdateKernel = {
  label: 'sll-adam',
  arrays: [
    { name: 'p', write: true },
    { name: 'm', write: true },
    { name: 'v', write: true },
    { name: 'g', write: false },
  ],
  uniform: 'nlr: f32, b1: f32, omb1: f32, b2: f32, omb2: f32, eps: f32, bc1: f32, bc2: f32',
  body: (k) => `
      let gi = g${k}[j];
      let mNew = m${k}[j] * s.b1 + gi * s.omb1;
      let vNew = v${k}[j] * s.b2 + (gi * gi) * s.omb2;
      m${k}[j] = mNew;
      v${k}[j] = vNew;
      p${k}[j] = ((mNew / s.bc1) / (sqrt(vNew / s.bc2) + s.eps)) * s.nlr + p${k}[j];`,
};

/** Adam as tfjs computes it (same state, same checkpoints), two variables to a WebGPU dispatch. */
export class WebGpuAdamOptimizer extends FusedAdamOptimizer {
  /** This step's variables, recorded together at the step's end. */
  private pending: UpdateTensors[] = [];
  private step: AdamStep | null = null;

  protected override update(value: tf.Variable, m: tf.Variable, v: tf.Variable, gradient: tf.Tensor, step: AdamStep): void {
    ownStorage(webGpuBackend(), [value, m, v]);
    this.pending.push([value, m, v, gradient]);
    this.step = step;
  }

  protected override endStep(): void {
    const step = this.step;
    if (step && this.pending.length > 0) {
      const backend = webGpuBackend();
      // (1 - beta) formed in double and rounded once, as tfjs does with its scalar operands.
      const s = [-step.lr, step.beta1, 1 - step.beta1, step.beta2, 1 - step.beta2, step.epsilon, step.bc1, step.bc2];
      const uniforms = uniformBuffer(backend, Float32Array.from(s).buffer);
      recordUpdates(backend, ADAM, this.pending, uniforms);
      releaseAfterSubmit(backend, uniforms);
    }
    this.pending = [];
    this.step = null;
  }
}
