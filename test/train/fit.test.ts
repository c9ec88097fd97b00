import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { disposeHeaded } from '../../src/train/model.js';
import { fitSmall, randomImages, smallModel } from './helpers.js';

before(async () => {
  await useBackend('cpu');
});


for (const method of ['sll', 'bp'] as const) {
  test(`${method}: the tensor count stays flat across 500 training steps and returns to its start after fit`, async () => {
    const small = smallModel({ method, epochs: 5, batchSize: 10 });
    const data = { train: randomImages(1000, 1), test: randomImages(50, 2) };
    const start = tf.memory().numTensors;
    const counts = new Map<number, number>();
    await fitSmall(small, data, {
      onBatchEnd: (info) => {
        if (info.step === 9 || info.step === 499) counts.set(info.step + 1, tf.memory().numTensors);
      },
    });
    assert.equal(counts.size, 2);
    assert.equal(counts.get(500), counts.get(10));
    // Only the optimizers' state was alive during training; fit disposes it.
    assert.equal(tf.memory().numTensors, start);
    disposeHeaded(small.model);
  });
}
