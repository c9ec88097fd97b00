import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { useBackend } from '../../src/backend.js';
import * as tf from '@tensorflow/tfjs';
import { resolveOptions, type RunOptions } from '../../src/recipe/options.js';
import { buildModel, makeTrainer } from '../../src/recipe/run.js';
import { measureStepMemory } from '../../src/train/memory.js';
import { disposeHeaded } from '../../src/train/model.js';

/** One step's memory of a run of `partial` on random inputs of `shape`, 10 classes. */
async function stepMemory(partial: Partial<RunOptions>, shape: readonly number[]) {
  const o = resolveOptions(partial);
  const model = buildModel(o, shape, 10);
  const trainer = makeTrainer(model, o);
  const x = tf.randomNormal([o.batchSize, ...shape], 0, 1, 'float32', 1);
  const labels = tf.tensor1d(Array.from({ length: o.batchSize }, (_, i) => i % 10), 'int32');
  try {
    return await measureStepMemory(model.network, trainer, x, labels);
  } finally {
    tf.dispose([x, labels]);
    trainer.dispose();
    disposeHeaded(model);
  }
}

before(async () => {
  await useBackend('cpu');
});

const mlp = { model: 'mlp' as const, width: 64, batchSize: 16, optimizer: 'sgd' as const, cropPadding: 0 };
const conv = { model: 'convstack' as const, width: 8, batchSize: 4, optimizer: 'sgd' as const, cropPadding: 0 };

for (const [name, base, shape] of [['mlp', mlp, [8, 8, 1]], ['conv', conv, [8, 8, 3]]] as const) {
  test(`${name}: SLL activation peak is flat (within 1%) from depth 2 to 8, while BP's grows with depth`, async () => {
    const at = (method: 'sll' | 'bp', layers: number) => stepMemory({ ...base, method, layers }, shape);
    const sll2 = await at('sll', 2);
    const sll8 = await at('sll', 8);
    const bp2 = await at('bp', 2);
    const bp8 = await at('bp', 8);
    // Flat up to the per-unit stats rows (16 bytes a unit) kept for the step's report.
    const drift = Math.abs(sll8.activation_peak_bytes - sll2.activation_peak_bytes);
    assert.ok(drift <= 0.01 * sll2.activation_peak_bytes, `SLL ${sll2.activation_peak_bytes} -> ${sll8.activation_peak_bytes}`);
    assert.ok(bp8.activation_peak_bytes > 2 * bp2.activation_peak_bytes, `BP ${bp2.activation_peak_bytes} -> ${bp8.activation_peak_bytes}`);
    assert.ok(sll8.param_bytes > 3 * sll2.param_bytes, 'parameters and optimizer state grow with depth for both');
    assert.ok(sll8.peak_bytes >= sll8.param_bytes + sll8.activation_peak_bytes, 'the peak holds parameters and activations');
  });
}
