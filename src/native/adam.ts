/**
 * Adam with one fused native call per variable (the state, checkpoints and bias corrections of tfjs's
 * Adam: train/fused-adam.ts). tfjs's update is ~14 elementwise ops over every parameter (2.8M in the SLL
 * MLP, ~1.4 s a step on the cpu backend); here it is a single loop.
 *
 * On the `native` backend the parameter and both moments are updated in place when their storage is not
 * shared (reference count 1); otherwise, and on any other backend, the result goes through fresh buffers
 * assigned to the variables (on a non-native backend the values are read, updated natively, and written
 * back: correct, but with the transfers). Arrays returned earlier by dataSync() on a variable updated in
 * place change with it: copy them if they must outlive a step.
 */
import * as tf from '@tensorflow/tfjs';
import { FusedAdamOptimizer, type AdamStep } from '../train/fused-adam.js';
import { float32Values, NativeBackend, nativeAddon, type NativeAddon } from './backend.js';

export type { NamedGradients, NamedTensor } from '../train/fused-adam.js';

/** Adam as tfjs computes it (same state, same checkpoints), one fused native update per variable. */
export class NativeAdamOptimizer extends FusedAdamOptimizer {
  private readonly addon: NativeAddon;

  /** Throws when the addon is not built. epsilon is explicit: tfjs's default (1e-7) differs from PyTorch's. */
  constructor(learningRate: number, beta1: number, beta2: number, epsilon: number) {
    super(learningRate, beta1, beta2, epsilon);
    this.addon = nativeAddon();
  }

  protected override update(value: tf.Variable, m: tf.Variable, v: tf.Variable, gradient: tf.Tensor, step: AdamStep): void {
    const backend = tf.backend();
    const { lr, beta1, beta2, epsilon, bc1, bc2 } = step;
    // The native path needs all four tensors' data in this backend's storage (data created on another
    // backend moves only when a kernel reads it).
    if (backend instanceof NativeBackend && [value, m, v, gradient].every((t) => backend.data.has(t.dataId))) {
      const p = this.writable(backend, value);
      const mm = this.writable(backend, m);
      const vv = this.writable(backend, v);
      const g = float32Values(backend, gradient);
      if (g == null) throw new Error('NativeAdamOptimizer: gradient is not float32');
      this.addon.adam(p.src, mm.src, vv.src, g, lr, beta1, beta2, epsilon, 0, p.dst, mm.dst, vv.dst, bc1, bc2);
      for (const [t, w] of [[value, p], [m, mm], [v, vv]] as const) {
        if (w.dst !== w.src) assignValues(t, w.dst);
      }
      return;
    }
    // Another backend: read, update natively, write back.
    const p = Float32Array.from(value.dataSync() as Float32Array);
    const mm = Float32Array.from(m.dataSync() as Float32Array);
    const vv = Float32Array.from(v.dataSync() as Float32Array);
    const g = Float32Array.from(gradient.dataSync() as Float32Array);
    this.addon.adam(p, mm, vv, g, lr, beta1, beta2, epsilon, 0, null, null, null, bc1, bc2);
    assignValues(value, p);
    assignValues(m, mm);
    assignValues(v, vv);
  }

  /** Source array of `t`, and where its update goes: the same array when no other tensor shares it. */
  private writable(backend: NativeBackend, t: tf.Variable): { src: Float32Array; dst: Float32Array } {
    const values = backend.data.get(t.dataId)?.values;
    if (values instanceof Float32Array && backend.refCount(t.dataId) === 1) return { src: values, dst: values };
    const src = float32Values(backend, t);
    if (src == null) throw new Error(`NativeAdamOptimizer: ${t.name} holds no float32 values`);
    return { src, dst: new Float32Array(src.length) };
  }
}

/** Makes `values` the variable's storage (a new tensor over the array, no copy). */
function assignValues(variable: tf.Variable, values: Float32Array): void {
  const t = tf.tensor(values, variable.shape, 'float32');
  variable.assign(t);
  t.dispose();
}
