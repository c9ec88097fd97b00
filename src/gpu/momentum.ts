/**
 * SGD with momentum on the `webgpu` backend in one dispatch per variable (browser-safe).
 *
 * tfjs's MomentumOptimizer runs four elementwise programs and two assigns per variable and step. Here one
 * WGSL kernel updates the variable and its accumulation in place, with tfjs's arithmetic in tfjs's order:
 *   a = m * a + g;   p = -lr * a + p   (Nesterov: p = -lr * (g + a * m) + p).
 * The state (the accumulations, named `${variable}/momentum`), getWeights/setWeights and so checkpoints are
 * tfjs's own: this is tf.MomentumOptimizer with another applyGradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedGradients } from '../train/fused-adam.js';
import { computePipeline, constantUniformBuffer, ownStorage, recordDispatch, tensorBuffer, webGpuBackend } from './tfjs-webgpu.js';

const WORKGROUP = 256;
const MAX_WORKGROUPS = 65535;

const MOMENTUM_WGSL = /* wgsl */ `
struct Step { negLr: f32, momentum: f32, nesterov: u32, pad: u32 };
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<uniform> s: Step;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let n = arrayLength(&g);
  for (var i = id.x; i < n; i = i + groups.x * ${WORKGROUP}u) {
    let gi = g[i];
    let ai = s.momentum * a[i] + gi;
    a[i] = ai;
    if (s.nesterov == 1u) {
      p[i] = s.negLr * (gi + ai * s.momentum) + p[i];
    } else {
      p[i] = s.negLr * ai + p[i];
    }
  }
}
`;

/** tfjs MomentumOptimizer's fields used here (TypeScript-private there). */
interface MomentumInternals {
  learningRate: number;
  momentum: number;
  useNesterov: boolean;
  accumulations: { originalName: string; variable: tf.Variable }[];
}

/** tf.train.momentum with its update fused into one WebGPU dispatch per variable (same state, same checkpoints). */
export class WebGpuMomentumOptimizer extends tf.MomentumOptimizer {
  override applyGradients(variableGradients: NamedGradients): void {
    const self = this as unknown as MomentumInternals;
    const backend = webGpuBackend();
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    // The step's values change only when the learning rate or momentum does: a constant uniform.
    const params = new ArrayBuffer(16);
    new Float32Array(params, 0, 2).set([-self.learningRate, self.momentum]);
    new Uint32Array(params, 8, 2).set([self.useNesterov ? 1 : 0, 0]);
    const uniforms = constantUniformBuffer(backend, params);
    const pipeline = computePipeline(backend.device, 'sll-momentum', MOMENTUM_WGSL);
    const registered = tf.engine().registeredVariables;
    names.forEach((name, i) => {
      const value = registered[name];
      if (value == null) throw new Error(`WebGpuMomentumOptimizer: no variable named ${name}`);
      self.accumulations[i] ??= { originalName: `${name}/momentum`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
      if (gradient == null) return;
      if (value.dtype !== 'float32' || gradient.dtype !== 'float32' || !tf.util.arraysEqual(value.shape, gradient.shape)) {
        throw new Error(`WebGpuMomentumOptimizer: ${name} is ${value.dtype} [${value.shape}], its gradient ${gradient.dtype} [${gradient.shape}]`);
      }
      const accumulation = self.accumulations[i].variable;
      ownStorage(backend, [value, accumulation]);
      const buffers = [tensorBuffer(backend, value, true), tensorBuffer(backend, accumulation, true), tensorBuffer(backend, gradient), uniforms];
      const workgroups = Math.min(MAX_WORKGROUPS, Math.max(1, Math.ceil(value.size / WORKGROUP)));
      recordDispatch(backend, pipeline, buffers, [value, accumulation, gradient], [workgroups]);
    });
    this.incrementIterations();
  }
}
