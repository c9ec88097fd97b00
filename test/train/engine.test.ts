/**
 * SequentialEngine reading the stats of several steps at once (what it does on a GPU): the same rows, in step
 * order, as reading every step, and every trained step reported before run returns or throws.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { SequentialEngine, statsReadEvery, type StepBatch } from '../../src/train/engine.js';
import type { Trainer } from '../../src/train/trainer.js';
import { batch, smallModel, trainerOf } from './helpers.js';

/** `count` numbered minibatches from step `from`; throws instead of yielding step `failAt`. */
async function* batches(from: number, count: number, failAt = -1): AsyncGenerator<StepBatch> {
  for (let s = from; s < from + count; s++) {
    if (s === failAt) throw new Error(`batch ${s} failed to read`);
    const { x, labels } = batch(s + 1);
    yield { step: s, x, labels, n: 16 };
  }
}

async function steps(readEvery: number, count: number, opts: { failAt?: number; stopAfter?: number } = {}) {
  await tf.setBackend('cpu');
  const m = smallModel({ layers: 3, width: 24, keep: 0.5, batchSize: 16 });
  const trainer: Trainer = trainerOf(m);
  trainer.setEpoch(0);
  const engine = new SequentialEngine(trainer, readEvery);
  // One step first, so that the optimizers' moments exist before the tensors are counted.
  await engine.run(batches(100, 1), async () => {}, () => true);
  const seen: { step: number; rows: number[][] }[] = [];
  let trained = 0;
  const step = trainer.step.bind(trainer);
  trainer.step = (x, labels, s) => {
    trained++;
    return step(x, labels, s);
  };
  const tensors = tf.memory().numTensors;
  let error: Error | null = null;
  try {
    await engine.run(batches(0, count, opts.failAt), async (s, _n, rows) => void seen.push({ step: s, rows }), () => opts.stopAfter === undefined || trained < opts.stopAfter);
  } catch (e) {
    error = e as Error;
  }
  assert.equal(tf.memory().numTensors, tensors, 'no stats tensor left behind');
  trainer.dispose();
  return { seen, trained, error };
}

test('stats read 4 steps at a time: the same rows in step order as read every step, the tail read too', async () => {
  const every = await steps(1, 10);
  const grouped = await steps(4, 10);
  assert.deepEqual(grouped.seen.map((s) => s.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(grouped.seen, every.seen);
});

test('a stop request or a failing batch still reports every step trained before run returns or throws', async () => {
  const stopped = await steps(4, 10, { stopAfter: 6 });
  assert.equal(stopped.trained, 6);
  assert.deepEqual(stopped.seen.map((s) => s.step), [0, 1, 2, 3, 4, 5]);
  const failed = await steps(4, 10, { failAt: 6 });
  assert.match(failed.error?.message ?? '', /batch 6 failed/);
  assert.deepEqual(failed.seen.map((s) => s.step), [0, 1, 2, 3, 4, 5]);
});

test('statsReadEvery: every step on the CPU backends, every 16 on a GPU', () => {
  for (const b of ['cpu', 'native', 'wasm']) assert.equal(statsReadEvery(b), 1);
  assert.equal(statsReadEvery('webgpu'), 16);
  assert.throws(() => new SequentialEngine({} as Trainer, 0), /readEvery must be an integer >= 1/);
});
