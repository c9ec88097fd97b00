/**
 * Adam with one fused native call per variable.
 *
 * Same math, state and checkpoint format as tfjs's AdamOptimizer (tf.train.adam): the moments m and v are
 * non-trainable tf.Variables named `${variable}/m` and `${variable}/v`, kept per position in the gradient
 * list, and the bias corrections use tfjs's float32 running products beta^t; getWeights()/setWeights()
 * give and take the same list as tfjs Adam's. tfjs's update is ~14 elementwise ops over every parameter
 * (2.8M in the SLL MLP, ~1.4 s a step on the cpu backend); here it is a single loop.
 *
 * On the `native` backend the parameter and both moments are updated in place when their storage is not
 * shared (reference count 1); otherwise, and on any other backend, the result goes through fresh buffers
 * assigned to the variables (on a non-native backend the values are read, updated natively, and written
 * back: correct, but with the transfers). Arrays returned earlier by dataSync() on a variable updated in
 * place change with it: copy them if they must outlive a step.
 */
import * as tf from '@tensorflow/tfjs';
import { float32Values, NativeBackend, nativeAddon, type NativeAddon } from './backend.js';

interface OptimizerVariable {
  originalName: string;
  variable: tf.Variable;
}

/** tfjs's NamedTensor (not exported by the union package). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}
/** Gradients as tfjs optimizers take them. */
export type NamedGradients = tf.NamedTensorMap | NamedTensor[];

/** Adam as tfjs computes it (same state, same checkpoints), one fused native update per variable. */
export class NativeAdamOptimizer extends tf.Optimizer {
  /** Serialised as 'Adam', so that a saved configuration reloads as a tfjs Adam. */
  static get className(): string {
    return 'Adam';
  }

  /** Read on every step: the caller may change it between steps. */
  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;

  private readonly addon: NativeAddon;
  private accBeta1: tf.Variable;
  private accBeta2: tf.Variable;
  private accumulatedFirstMoment: OptimizerVariable[] = [];
  private accumulatedSecondMoment: OptimizerVariable[] = [];

  /** Throws when the addon is not built. epsilon is explicit: tfjs's default (1e-7) differs from PyTorch's. */
  constructor(learningRate: number, beta1: number, beta2: number, epsilon: number) {
    super();
    this.addon = nativeAddon();
    this.learningRate = learningRate;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.epsilon = epsilon;
    this.accBeta1 = tf.tidy(() => tf.scalar(beta1).variable(false));
    this.accBeta2 = tf.tidy(() => tf.scalar(beta2).variable(false));
  }

  override applyGradients(variableGradients: NamedGradients): void {
    const names = Array.isArray(variableGradients)
      ? variableGradients.map((v) => v.name)
      : Object.keys(variableGradients);
    // tfjs's bias corrections: 1 - beta^t with beta^t a float32 running product, all in float32.
    const bc1 = Math.fround(1 - this.accBeta1.dataSync()[0]);
    const bc2 = Math.fround(1 - this.accBeta2.dataSync()[0]);
    const registered = tf.engine().registeredVariables;
    names.forEach((name, i) => {
      const value = registered[name];
      if (value == null) throw new Error(`NativeAdamOptimizer: no variable named ${name}`);
      if (this.accumulatedFirstMoment[i] == null) {
        this.accumulatedFirstMoment[i] = {
          originalName: `${name}/m`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      }
      if (this.accumulatedSecondMoment[i] == null) {
        this.accumulatedSecondMoment[i] = {
          originalName: `${name}/v`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      }
      const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
      if (gradient == null) return;
      this.update(value, this.accumulatedFirstMoment[i].variable, this.accumulatedSecondMoment[i].variable, gradient, bc1, bc2);
    });
    tf.tidy(() => {
      this.accBeta1.assign(tf.mul(this.accBeta1, this.beta1));
      this.accBeta2.assign(tf.mul(this.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }

  private update(value: tf.Variable, m: tf.Variable, v: tf.Variable, gradient: tf.Tensor, bc1: number, bc2: number): void {
    if (value.dtype !== 'float32' || gradient.dtype !== 'float32') {
      throw new Error(`NativeAdamOptimizer: ${value.name} is ${value.dtype}, gradient ${gradient.dtype}; needs float32`);
    }
    if (!tf.util.arraysEqual(value.shape, gradient.shape)) {
      throw new Error(`NativeAdamOptimizer: gradient shape [${gradient.shape}] differs from ${value.name}'s [${value.shape}]`);
    }
    const backend = tf.backend();
    const { beta1, beta2, epsilon } = this;
    const lr = this.learningRate;
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

  override dispose(): void {
    this.accBeta1.dispose();
    this.accBeta2.dispose();
    tf.dispose(this.accumulatedFirstMoment.map((v) => v.variable));
    tf.dispose(this.accumulatedSecondMoment.map((v) => v.variable));
    this.accumulatedFirstMoment = [];
    this.accumulatedSecondMoment = [];
  }

  /** tfjs Adam's list: iterations, then every first moment, then every second moment. */
  override async getWeights(): Promise<NamedTensor[]> {
    const variables = [...this.accumulatedFirstMoment, ...this.accumulatedSecondMoment];
    return [await this.saveIterations()].concat(variables.map((v) => ({ name: v.originalName, tensor: v.variable })));
  }

  /** Takes the list getWeights gives; the beta powers are recomputed from the iterations, as tfjs does. */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    weightValues = await this.extractIterations(weightValues);
    tf.tidy(() => {
      this.accBeta1.assign(tf.pow(this.beta1, this.iterations_ + 1));
      this.accBeta2.assign(tf.pow(this.beta2, this.iterations_ + 1));
    });
    const count = weightValues.length / 2;
    tf.dispose(this.accumulatedFirstMoment.map((v) => v.variable));
    tf.dispose(this.accumulatedSecondMoment.map((v) => v.variable));
    this.accumulatedFirstMoment = weightValues
      .slice(0, count)
      .map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
    this.accumulatedSecondMoment = weightValues
      .slice(count, count * 2)
      .map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new cls(config['learningRate'], config['beta1'], config['beta2'], config['epsilon']);
  }
}

/** Makes `values` the variable's storage (a new tensor over the array, no copy). */
function assignValues(variable: tf.Variable, values: Float32Array): void {
  const t = tf.tensor(values, variable.shape, 'float32');
  variable.assign(t);
  t.dispose();
}
