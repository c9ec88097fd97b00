import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { useBackend } from '../../src/backend.js';
import { runTraining } from '../../src/recipe/run.js';

before(async () => {
  await useBackend('wasm');
});

// A real, short run on an MNIST subset: 10k training images, 4 epochs of a 2x256 MLP (~10 s on wasm).
const recipe = { trainLimit: 10000, testLimit: 2000, epochs: 4, layers: 2, width: 256, keep: 1, cropPadding: 0, lr: 2e-3 };

test('SLL on an MNIST subset exceeds 90% test accuracy with every head learning', async () => {
  const { summary, result } = await runTraining({ ...recipe, method: 'sll' }, null);
  assert.ok(summary.test_accuracy > 0.9, `test accuracy ${summary.test_accuracy}`);
  summary.unit_test_accuracy.forEach((a, i) => assert.ok(a > 0.85, `unit ${i + 1}: ${a}`));
  const first = result.metrics.filter((m) => m.epoch === 1);
  const last = result.metrics.filter((m) => m.epoch === recipe.epochs);
  last.forEach((m, i) => assert.ok(m.prediction_loss < first[i].prediction_loss, `unit ${i + 1} prediction loss fell`));
  assert.equal(result.metrics.length, recipe.epochs * recipe.layers);
});

test('the BP baseline on the same subset also exceeds 90%', async () => {
  const { summary } = await runTraining({ ...recipe, method: 'bp' }, null);
  assert.ok(summary.test_accuracy > 0.9, `test accuracy ${summary.test_accuracy}`);
  assert.deepEqual(summary.unit_test_accuracy, [summary.test_accuracy]);
});
