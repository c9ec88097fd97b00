/**
 * SGD with momentum on the `webgpu` backend, a unit's variables in one dispatch (browser-safe).
 *
 * tfjs's MomentumOptimizer runs four elementwise programs and two assigns per variable and step. Here one
 * WGSL kernel updates the variables and their accumulations in place, two variables to a dispatch
 * (in-place-update.ts), with tfjs's arithmetic in tfjs's order:
 *   a = m * a + g;   p = -lr * a + p   (Nesterov: p = -lr * (g + a * m) + p).
 * The state (the accumulations, named `${variable}/momentum`), getWeights/setWeights and so checkpoints are
 * tfjs's own: this is tf.MomentumOptimizer with another applyGradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedGradients } from '../train/fused-adam.js';
import { recordUpdates, type UpdateKernel, type UpdateTensors } from './in-place-update.js';
import { constantUniformBuffer, ownStorage, webGpuBackend } from './tfjs-webgpu.js';

/** One momentum update of element j: p and a in place from g. */
const MOMENTUM: UpdateKernel = {
  label: 'sll-momentum',
  arrays: [
    { name: 'p', write: true },
    { name: 'a', write: true },
    { name: 'g', write: false },
  ],
  uniform: 'negLr: f32, momentum: f32, nesterov: u32, pad: u32',
  body: (k) => `
      let gi = g${k}[j];
      let ai = s.momentum * a${k}[j] + gi;
      a${k}[j] = ai;
      if (s.nesterov == 1u) {
        p${k}[j] = s.negLr * (gi + ai * s.momentum) + p${k}[j];
      } else {
        p${k}[j] = s.negLr * ai + p${k}[j];
      }`,
};

/** tfjs MomentumOptimizer's fields used here (TypeScript-private there). */
interface MomentumInternals {
  learningRate: number;
  momentum: number;
  useNesterov: boolean;
  accumulations: { originalName: string; variable: tf.Variable }[];
}

/** tf.train.momentum with its update fused, two variables to a WebGPU dispatch (same state, same checkpoints). */
export class WebGpuMomentumOptimizer extends tf.MomentumOptimizer {
  /** tfjs's momentum step for every variable of `variableGradients`, recorded as one dispatch per two variables. */
  override applyGradients(variableGradients: NamedGradients): void {
    const self = this as unknown as MomentumInternals;
    const backend = webGpuBackend();
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    // The step's values change only when the learning rate or momentum does: a constant uniform.
    const params = new ArrayBuffer(16);
    new Float32Array(params, 0, 2).set([-self.learningRate, self.momentum]);
    new Uint32Array(params, 8, 2).set([self.useNesterov ? 1 : 0, 0]);
    const uniforms = constantUniformBuffer(backend, params);
    const registered = tf.engine().registeredVariables;
    const updates: UpdateTensors[] = [];
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
      updates.push([value, accumulation, gradient]);
    });
    recordUpdates(backend, MOMENTUM, updates, uniforms);
    this.incrementIterations();
  }
}
