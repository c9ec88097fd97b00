/**
 * Adam on the `webgpu` backend in one dispatch per variable (browser-safe).
 *
 * tfjs's Adam runs ~14 elementwise programs per variable and uploads a scalar for each constant it makes;
 * on a GPU that overhead, not arithmetic, is the step's time (see docs/backends.md). Here each variable's
 * parameter, first and second moments are updated in place by one WGSL kernel, and the step's values
 * (learning rate, betas, epsilon, tfjs's float32 bias corrections) go in one small uniform buffer written
 * once per step and bound by every variable's dispatch. The state, checkpoints and math are tfjs Adam's
 * (train/fused-adam.ts); the arithmetic is the native kernel's, in the same order.
 */
import * as tf from '@tensorflow/tfjs';
import { FusedAdamOptimizer, type AdamStep } from '../train/fused-adam.js';
import { computePipeline, ownStorage, recordDispatch, releaseAfterSubmit, tensorBuffer, uniformBuffer, webGpuBackend } from './tfjs-webgpu.js';

const WORKGROUP = 256;
const MAX_WORKGROUPS = 65535;

/** One Adam update over a whole variable: p, m, v in place from g; a grid-stride loop covers any size. */
export const ADAM_WGSL = /* wgsl */ `
struct Step { nlr: f32, b1: f32, omb1: f32, b2: f32, omb2: f32, eps: f32, bc1: f32, bc2: f32 };
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<uniform> s: Step;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let n = arrayLength(&g);
  for (var i = id.x; i < n; i = i + groups.x * ${WORKGROUP}u) {
    let gi = g[i];
    let m1 = m[i] * s.b1 + gi * s.omb1;
    let v1 = v[i] * s.b2 + (gi * gi) * s.omb2;
    m[i] = m1;
    v[i] = v1;
    p[i] = ((m1 / s.bc1) / (sqrt(v1 / s.bc2) + s.eps)) * s.nlr + p[i];
  }
}
`;

/** Adam as tfjs computes it (same state, same checkpoints), one WebGPU dispatch per variable. */
export class WebGpuAdamOptimizer extends FusedAdamOptimizer {
  /** This step's uniform buffer, made by the first variable's update. */
  private stepUniforms: GPUBuffer | null = null;

  protected override update(value: tf.Variable, m: tf.Variable, v: tf.Variable, gradient: tf.Tensor, step: AdamStep): void {
    const backend = webGpuBackend();
    if (!this.stepUniforms) {
      // (1 - beta) formed in double and rounded once, as tfjs does with its scalar operands.
      const s = [-step.lr, step.beta1, 1 - step.beta1, step.beta2, 1 - step.beta2, step.epsilon, step.bc1, step.bc2];
      this.stepUniforms = uniformBuffer(backend, Float32Array.from(s).buffer);
    }
    ownStorage(backend, [value, m, v]);
    const buffers = [tensorBuffer(backend, value, true), tensorBuffer(backend, m, true), tensorBuffer(backend, v, true), tensorBuffer(backend, gradient)];
    const bytes = 4 * value.size;
    if (buffers.some((b) => b.size !== bytes)) throw new Error(`WebGpuAdamOptimizer: ${value.name}'s buffers are not ${bytes} bytes each`);
    const pipeline = computePipeline(backend.device, 'sll-adam', ADAM_WGSL);
    const workgroups = Math.min(MAX_WORKGROUPS, Math.max(1, Math.ceil(value.size / WORKGROUP)));
    recordDispatch(backend, pipeline, [...buffers, this.stepUniforms], [value, m, v, gradient], [workgroups]);
  }

  protected override endStep(): void {
    if (this.stepUniforms) releaseAfterSubmit(webGpuBackend(), this.stepUniforms);
    this.stepUniforms = null;
  }
}
