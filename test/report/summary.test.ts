import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timeToAccuracy, timeToAccuracyText } from '../../src/report/summary.js';
import type { UnitEpochMetrics } from '../../src/train/fit.js';

const line = (epoch: number, unit: number, test_accuracy: number | null, epoch_seconds: number): UnitEpochMetrics => ({
  epoch, unit, test_accuracy, epoch_seconds, prediction_loss: 0, alignment_loss: 0, loss: 0, train_accuracy: 0, lambda: null, lr: 1e-3,
});

test('timeToAccuracy: the first epoch whose last unit reached the target, with the training seconds summed to its end', () => {
  // Two units; unit 1 reaches 0.9 at epoch 1 but the model (unit 2) only at epoch 3. Lines out of order.
  const metrics = [
    line(2, 2, 0.85, 20), line(1, 1, 0.95, 10), line(1, 2, 0.5, 10), line(2, 1, 0.96, 20), line(3, 2, 0.9, 30), line(3, 1, 0.97, 30), line(4, 2, 0.95, 40), line(4, 1, 0.97, 40),
  ];
  assert.deepEqual(timeToAccuracy(metrics, 0.9), { epoch: 3, seconds: 60 });
  assert.deepEqual(timeToAccuracy(metrics, 0.5), { epoch: 1, seconds: 10 });
  assert.equal(timeToAccuracy(metrics, 0.96), null);
  assert.equal(timeToAccuracy([line(1, 1, null, 5)], 0.1), null);
  assert.throws(() => timeToAccuracy(metrics, 0), /target accuracy must be in \(0, 1\]/);
  assert.throws(() => timeToAccuracy(metrics, 99), RangeError);
  assert.equal(timeToAccuracyText({ epoch: 3, seconds: 60.4 }), 'epoch 3, 60 s');
  assert.equal(timeToAccuracyText(null), 'not reached');
});
