/**
 * Peak training memory of one step (paper Fig. 2): SLL keeps one unit's activations alive at a time, so
 * its activation peak stays flat as depth grows, while BP holds every layer's activations for the
 * backward pass. Measured from tfjs's own accounting (tf.profile), after warm-up steps so that optimizer
 * state is already allocated.
 */
import * as tf from '@tensorflow/tfjs';
import { resolveOptions, type RunOptions } from '../options.js';
import { buildModel, makeTrainer } from './fit.js';
import { disposeHeaded } from './model.js';
import { optimizerState } from './optimizers.js';

export interface StepMemory {
  model: RunOptions['model'];
  method: RunOptions['method'];
  depth: number;
  /** Peak tensor bytes during one training step (everything alive included). */
  peak_bytes: number;
  /** Parameters plus optimizer state. */
  param_bytes: number;
  /** Peak minus what was held before the step: activations, gradients and temporaries. */
  activation_peak_bytes: number;
}

/** Memory of one step of `o` (its model, method and layers = depth) on inputs of `inputShape`. */
export async function measureStepMemory(
  partial: Partial<RunOptions>,
  inputShape: readonly number[],
  numClasses: number,
  warmup = 2,
): Promise<StepMemory> {
  const o = resolveOptions(partial);
  const model = buildModel(o, inputShape, numClasses);
  const trainer = makeTrainer(model, o);
  const x = tf.randomNormal([o.batchSize, ...inputShape], 0, 1, 'float32', o.seed);
  const labels = tf.tensor1d(
    Array.from({ length: o.batchSize }, (_, i) => i % numClasses),
    'int32',
  );
  try {
    for (let s = 0; s < warmup; s++) tf.dispose(trainer.step(x, labels, s));
    const before = tf.memory().numBytes;
    const info = await tf.profile(() => tf.dispose(trainer.step(x, labels, warmup)));
    const variables = model.network.model.trainableWeights.reduce((n, w) => n + 4 * tf.util.sizeFromShape(w.shape as number[]), 0);
    const states = await Promise.all(trainer.optimizers.map(optimizerState));
    const slots = states.reduce((n, s) => n + s.slots.reduce((m, slot) => m + slot.values.byteLength, 0), 0);
    return {
      model: o.model,
      method: o.method,
      depth: o.layers,
      peak_bytes: info.peakBytes,
      param_bytes: variables + slots,
      activation_peak_bytes: info.peakBytes - before,
    };
  } finally {
    tf.dispose([x, labels]);
    trainer.dispose();
    disposeHeaded(model);
  }
}
