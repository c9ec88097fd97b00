import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { unitActivity } from '../../src/train/evaluate.js';
import { disposeHeaded } from '../../src/train/model.js';
import { randomImages, smallModel } from './helpers.js';

before(async () => {
  await useBackend('cpu');
});

test('unitActivity: zero fraction and channels ever active of every unit match a float64 forward pass', async () => {
  const { model } = smallModel({ model: 'mlp', layers: 3, width: 8 });
  const data = randomImages(40, 3);
  const dense = model.network.units.map((u) => u.layers[u.layers.length - 1]);
  // Unit 1's channel 0 never fires (zero weights, negative bias); channel 1 always does (bias 100).
  const [k1, b1] = dense[0].getWeights().map((w) => w.arraySync() as number[] | number[][]);
  (k1 as number[][]).forEach((row) => {
    row[0] = 0;
    row[1] = 0;
  });
  (b1 as number[])[0] = -1;
  (b1 as number[])[1] = 100;
  dense[0].setWeights([tf.tensor(k1 as number[][]), tf.tensor(b1 as number[])]);

  // Independent reference: h_i = relu(h_{i-1} W_i + b_i) in float64, x normalised as the loaders do.
  let h: number[][] = Array.from({ length: data.size }, (_, n) =>
    Array.from(data.pixels.subarray(n * 36, (n + 1) * 36), (p) => (p / 255 - data.mean[0]) / data.std[0]),
  );
  const want = dense.map((layer) => {
    const [k, b] = layer.getWeights().map((w) => w.arraySync()) as [number[][], number[]];
    h = h.map((row) => b.map((bj, j) => Math.max(0, row.reduce((s, xi, i) => s + xi * k[i][j], bj))));
    const zeros = h.flat().filter((v) => v === 0).length / (h.length * b.length);
    const active = b.filter((_, j) => h.some((row) => row[j] !== 0)).length;
    return { zeros, active };
  });

  const got = await unitActivity(model, data, { batchSize: 16 });
  assert.equal(got.length, 3);
  got.forEach((a, i) => {
    assert.equal(a.channels, 8);
    assert.equal(a.activeChannels, want[i].active, `unit ${i + 1} active channels`);
    assert.ok(Math.abs(a.zeroFraction - want[i].zeros) < 1e-9, `unit ${i + 1}: ${a.zeroFraction} vs ${want[i].zeros}`);
  });
  assert.equal(got[0].activeChannels, 7, 'the silenced channel is not counted');
  assert.ok(got[0].zeroFraction >= 1 / 8);
  const before = tf.memory().numTensors;
  await unitActivity(model, data, { batchSize: 16 });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  disposeHeaded(model);
});
