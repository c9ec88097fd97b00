/** Seeded dropout: its masks, its gradient, and MLP runs with it that repeat and pipeline bit for bit. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { applySeededDropout, stepDropout } from '../../src/models/dropout.js';
import { OptionError, resolveOptions } from '../../src/recipe/options.js';
import { disposeHeaded } from '../../src/train/model.js';
import { predict } from '../../src/train/predict.js';
import { evenStages } from '../../src/train/stages.js';
import { batch, fitSmall, pipelineOf, randomImages, smallModel, unitWeights } from '../train/helpers.js';

before(async () => {
  await useBackend('cpu');
});

test('stepDropout keeps about 1 - rate of the entries, scaled by 1 / (1 - rate), the same mask for the same key', () => {
  const n = 200_000;
  const x = tf.fill([n], 3);
  const rate = 0.3;
  const a = stepDropout(x, rate, 11).dataSync();
  const b = stepDropout(x, rate, 11).dataSync();
  const c = stepDropout(x, rate, 12).dataSync();
  const kept = a.filter((v) => v !== 0);
  // Binomial(n, 0.7): std sqrt(n * 0.21) ~ 205, so 5 std is ~0.5% of n.
  assert.ok(Math.abs(kept.length / n - (1 - rate)) < 0.005, `kept fraction ${kept.length / n}`);
  const scaled = Math.fround(3 * Math.fround(1 / Math.fround(1 - rate)));
  assert.ok(kept.every((v) => v === scaled), 'kept entries are x / (1 - rate)');
  assert.deepEqual(b, a, 'same key, same mask');
  const differ = Array.from(a).filter((v, i) => v !== c[i]).length;
  // Two independent masks differ on 2 * 0.7 * 0.3 = 42% of the entries.
  assert.ok(Math.abs(differ / n - 0.42) < 0.01, `masks of two keys differ on ${differ / n}`);
  assert.equal(stepDropout(x, 0, 11), x, 'rate 0 is the identity');
  assert.throws(() => stepDropout(x, 1, 11), /\[0, 1\)/);
  tf.dispose(x);
});

test('the gradient of stepDropout is the mask: d sum(g * drop(x)) / dx = g * mask', () => {
  const x = tf.randomNormal([8, 50], 0, 1, 'float32', 3);
  const g = tf.randomNormal([8, 50], 0, 1, 'float32', 4);
  const mask = stepDropout(tf.onesLike(x), 0.5, 99).dataSync();
  const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(g, stepDropout(t, 0.5, 99))))(x).dataSync();
  const gv = g.dataSync();
  grad.forEach((v, i) => assert.equal(v, Math.fround(gv[i] * mask[i]), `entry ${i}`));
  tf.dispose([x, g]);
});

test('applySeededDropout draws a seeded tf.layers.dropout mask from its seed and the step, and leaves other layers to tfjs', () => {
  const x = tf.ones([4, 30]);
  const seeded = tf.layers.dropout({ rate: 0.4, seed: 5 });
  const step3 = applySeededDropout(seeded, x, 3)!;
  assert.deepEqual(step3.dataSync(), applySeededDropout(seeded, x, 3)!.dataSync());
  assert.notDeepEqual(step3.dataSync(), applySeededDropout(seeded, x, 4)!.dataSync(), 'each step its own mask');
  assert.equal(applySeededDropout(tf.layers.dropout({ rate: 0.4 }), x, 3), null, 'no seed: tfjs draws it');
  assert.equal(applySeededDropout(tf.layers.dropout({ rate: 0.4, seed: 5, noiseShape: [1, 30] }), x, 3), null, 'a noise shape: tfjs');
  assert.equal(applySeededDropout(tf.layers.dense({ units: 2, inputShape: [30] }), x, 3), null);
  tf.dispose(x);
});

const data = { train: randomImages(320, 1), test: randomImages(40, 2) };
const run = { layers: 4, width: 24, epochs: 2, batchSize: 16, dropout: 0.3, backend: 'cpu' as const };

test('an MLP run with --dropout repeats bit for bit, differs from the run without it, and evaluates without dropout', async () => {
  const a = smallModel(run);
  const b = smallModel(run);
  const none = smallModel({ ...run, dropout: 0 });
  const ra = await fitSmall(a, data);
  const rb = await fitSmall(b, data);
  await fitSmall(none, data);
  for (let u = 0; u < run.layers; u++) assert.deepEqual(unitWeights(b.model, u), unitWeights(a.model, u), `unit ${u + 1}`);
  assert.deepEqual(rb.metrics.map(({ epoch_seconds: _, ...m }) => m), ra.metrics.map(({ epoch_seconds: _, ...m }) => m));
  assert.notDeepEqual(unitWeights(none.model, 1), unitWeights(a.model, 1), 'dropout changed the training');
  assert.equal(a.model.network.units[0].layers.at(-1)!.getClassName(), 'Dropout', 'each unit ends in its dropout layer');
  const { x } = batch(1);
  assert.deepEqual(predict(a.model, x).dataSync(), predict(a.model, x).dataSync(), 'prediction draws no mask');
  [a, b, none].forEach((m) => disposeHeaded(m.model));
});

const vit = { ...run, model: 'vit' as const, width: 8, heads: 2, patchSize: 3, epochs: 1, firstParent: 'none' as const };
for (const [name, o] of [['MLP', run], ['ViT', vit]] as const) {
  test(`a pipelined ${name} run with --dropout gives the sequential run's weights bit for bit (the masks follow the step, not the thread)`, async () => {
    const sequential = smallModel(o);
    await fitSmall(sequential, data);
    const piped = smallModel(o);
    const engine = await pipelineOf(piped, evenStages(o.layers, 2));
    await fitSmall(piped, data, {}, {}, engine);
    for (let u = 0; u < o.layers; u++) assert.deepEqual(unitWeights(piped.model, u), unitWeights(sequential.model, u), `unit ${u + 1}`);
    const without = smallModel({ ...o, dropout: 0 });
    await fitSmall(without, data);
    assert.notDeepEqual(unitWeights(without.model, 1), unitWeights(sequential.model, 1), 'dropout changed the training');
    [sequential, piped, without].forEach((m) => disposeHeaded(m.model));
  });
}

test('a BP MLP run with --dropout repeats bit for bit', async () => {
  const a = smallModel({ ...run, method: 'bp' });
  const b = smallModel({ ...run, method: 'bp' });
  await fitSmall(a, data);
  await fitSmall(b, data);
  for (let u = 0; u < run.layers; u++) assert.deepEqual(unitWeights(b.model, u), unitWeights(a.model, u), `unit ${u + 1}`);
  disposeHeaded(a.model);
  disposeHeaded(b.model);
});

test('--dropout is refused for the conv models, which have no dropout layers', () => {
  assert.throws(() => resolveOptions({ model: 'vgg11', dropout: 0.2 }), (e: Error) => e instanceof OptionError && /--dropout applies to --model mlp and vit, got --model vgg11/.test(e.message));
});
