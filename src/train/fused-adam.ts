/**
 * Adam with one fused update per variable: what the native and WebGPU Adams share.
 *
 * Same math, state and checkpoint format as tfjs's AdamOptimizer (tf.train.adam): the moments m and v are
 * non-trainable tf.Variables named `${variable}/m` and `${variable}/v`, kept per position in the gradient
 * list, and the bias corrections 1 - beta^t use tfjs's float32 running products beta^t (kept here as
 * float32 numbers: a float32 product of two float32 numbers is Math.fround of their double product, so no
 * tensor and no read back is needed for them); getWeights()/setWeights() give and take tfjs Adam's list.
 * tfjs's own update is ~14 elementwise ops per variable; a subclass does it in one (`update`).
 */
import * as tf from '@tensorflow/tfjs';

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

/** The per-step values every variable's update uses. */
export interface AdamStep {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1 - beta1^t and 1 - beta2^t, in float32, as tfjs forms them. */
  bc1: number;
  bc2: number;
}

/** Adam as tfjs computes it (same state, same checkpoints), one fused update per variable. */
export abstract class FusedAdamOptimizer extends tf.Optimizer {
  /** Serialised as 'Adam', so that a saved configuration reloads as a tfjs Adam. */
  static get className(): string {
    return 'Adam';
  }

  /** Read on every step: the caller may change it between steps. */
  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;

  /**
   * beta1^(t+1) and beta2^(t+1) as float32 running products (tfjs's accBeta1/accBeta2, by the same names:
   * train/optimizers.ts saves and restores them for a bit-exact resume).
   */
  private accBeta1: number;
  private accBeta2: number;
  private accumulatedFirstMoment: OptimizerVariable[] = [];
  private accumulatedSecondMoment: OptimizerVariable[] = [];

  /** epsilon is explicit: tfjs's default (1e-7) differs from PyTorch's. */
  constructor(learningRate: number, beta1: number, beta2: number, epsilon: number) {
    super();
    this.learningRate = learningRate;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.epsilon = epsilon;
    this.accBeta1 = Math.fround(beta1);
    this.accBeta2 = Math.fround(beta2);
  }

  /**
   * Updates `value`, `m` and `v` from `gradient` (all float32, same shape): m = b1 m + (1 - b1) g,
   * v = b2 v + (1 - b2) g^2, value -= lr (m / bc1) / (sqrt(v / bc2) + eps).
   */
  protected abstract update(value: tf.Variable, m: tf.Variable, v: tf.Variable, gradient: tf.Tensor, step: AdamStep): void;

  /** Called once per step after every variable's update (a GPU subclass records its dispatches here). */
  protected endStep(): void {}

  override applyGradients(variableGradients: NamedGradients): void {
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const step: AdamStep = {
      lr: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      bc1: Math.fround(1 - this.accBeta1),
      bc2: Math.fround(1 - this.accBeta2),
    };
    const registered = tf.engine().registeredVariables;
    names.forEach((name, i) => {
      const value = registered[name];
      if (value == null) throw new Error(`${this.constructor.name}: no variable named ${name}`);
      this.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      this.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      const gradient = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
      if (gradient == null) return;
      if (value.dtype !== 'float32' || gradient.dtype !== 'float32') {
        throw new Error(`${this.constructor.name}: ${value.name} is ${value.dtype}, gradient ${gradient.dtype}; needs float32`);
      }
      if (!tf.util.arraysEqual(value.shape, gradient.shape)) {
        throw new Error(`${this.constructor.name}: gradient shape [${gradient.shape}] differs from ${value.name}'s [${value.shape}]`);
      }
      this.update(value, this.accumulatedFirstMoment[i].variable, this.accumulatedSecondMoment[i].variable, gradient, step);
    });
    this.endStep();
    this.accBeta1 = Math.fround(this.accBeta1 * Math.fround(this.beta1));
    this.accBeta2 = Math.fround(this.accBeta2 * Math.fround(this.beta2));
    this.incrementIterations();
  }

  override dispose(): void {
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
    // tfjs: accBeta = pow(beta, iterations + 1), a float32 op.
    const powers = tf.tidy(() => tf.pow(tf.tensor1d([this.beta1, this.beta2]), this.iterations_ + 1));
    [this.accBeta1, this.accBeta2] = Array.from(await powers.data());
    powers.dispose();
    const count = weightValues.length / 2;
    tf.dispose(this.accumulatedFirstMoment.map((v) => v.variable));
    tf.dispose(this.accumulatedSecondMoment.map((v) => v.variable));
    this.accumulatedFirstMoment = weightValues.slice(0, count).map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
    this.accumulatedSecondMoment = weightValues.slice(count, count * 2).map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
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
