/** Conv units with batch norm: the conv before batch norm runs the plain conv2d op (no unused input gradient). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { resolveOptions } from '../../src/recipe/options.js';
import { buildModel, makeTrainer } from '../../src/recipe/run.js';
import { disposeHeaded } from '../../src/train/model.js';
import { countAddonCalls, requireNative, use } from '../native/helpers.js';
import { batch, CLASSES, INPUT_SHAPE } from '../train/helpers.js';

const options = (method: 'sll' | 'bp') =>
  resolveOptions({ model: 'convstack', layers: 3, width: 4, batchNorm: true, method, cropPadding: 0 });

test('a batch-norm unit conv is a Conv2D computing the same numbers as tfjs-layers\' linear conv2d', async () => {
  await use('cpu');
  const model = buildModel(options('sll'), INPUT_SHAPE, CLASSES);
  const conv = model.network.units[1].layers[0];
  assert.equal(conv.getClassName(), 'Conv2D');
  const x = tf.randomNormal([2, 6, 6, 4], 0, 1, 'float32', 5);
  const layersConv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, inputShape: [6, 6, 4] });
  layersConv.apply(x);
  layersConv.setWeights(conv.getWeights());
  const want = (layersConv.apply(x) as tf.Tensor).dataSync();
  const got = (conv.apply(x) as tf.Tensor).dataSync();
  assert.equal(got.length, 2 * 6 * 6 * 4);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `element ${i}`);
  tf.dispose([x]);
  layersConv.dispose();
  disposeHeaded(model);
});

test('with batch norm an SLL step computes no conv input gradient; a BP step computes one per unit after the first', async () => {
  requireNative();
  await use('native');
  for (const method of ['sll', 'bp'] as const) {
    const o = options(method);
    const model = buildModel(o, INPUT_SHAPE, CLASSES);
    const trainer = makeTrainer(model, o);
    const { x, labels } = batch(1);
    trainer.step(x, labels, 0);
    const { calls } = await countAddonCalls(() => trainer.step(x, labels, 1));
    assert.equal(calls.conv2dBackpropFilter, 3, `${method}: one filter gradient per unit`);
    assert.equal(calls.conv2dBackpropInput ?? 0, method === 'sll' ? 0 : 2, `${method}: input gradients`);
    tf.dispose([x, labels]);
    disposeHeaded(model);
  }
});
