import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { unitVariables } from '../../src/models/network.js';
import { batch, sllTrainer, smallModel, trainerOf, unitWeights } from './helpers.js';

before(async () => {
  await useBackend('cpu');
});

test('unit i update is identical whether or not units after i exist, whatever their weights', () => {
  const deep = smallModel({ layers: 3 });
  const shallow = smallModel({ layers: 1 });
  // Same seed: unit 1 and its head start identical in both networks.
  assert.deepEqual(unitWeights(deep.model, 0), unitWeights(shallow.model, 0));
  // Scramble the later units of the deep network; unit 1 must not notice.
  for (const unit of deep.model.network.units.slice(1)) {
    for (const v of unitVariables(unit)) v.assign(tf.randomNormal(v.shape, 0, 5, 'float32', 99));
  }
  const deepTrainer = sllTrainer(deep);
  const shallowTrainer = sllTrainer(shallow);
  for (let step = 0; step < 3; step++) {
    const { x, labels } = batch(step);
    deepTrainer.step(x, labels, step);
    shallowTrainer.step(x, labels, step);
  }
  const before = unitWeights(smallModel({ layers: 1 }).model, 0);
  assert.notDeepEqual(unitWeights(shallow.model, 0), before, 'unit 1 did train');
  assert.deepEqual(unitWeights(deep.model, 0), unitWeights(shallow.model, 0));
});

test('unit 2 update does not depend on unit 3, and only unit i variables change in its step', () => {
  const a = smallModel({ layers: 3 });
  const b = smallModel({ layers: 2 });
  const ta = sllTrainer(a);
  const tb = sllTrainer(b);
  const { x, labels } = batch(5);
  ta.step(x, labels, 0);
  tb.step(x, labels, 0);
  assert.deepEqual(unitWeights(a.model, 1), unitWeights(b.model, 1));
  // Each optimizer owns exactly its unit's variables.
  const owned = ta.optimizers.map((_, i) => unitVariables(a.model.network.units[i]).map((v) => v.name));
  const all = owned.flat();
  assert.equal(new Set(all).size, all.length, 'no variable is shared by two units');
});

test('the projections are bit-identical before and after training and never trainable', () => {
  const { model, options } = smallModel();
  const before = model.heads.map((h) => h.projection.dataSync().slice());
  const trainer = sllTrainer({ model, options });
  for (let step = 0; step < 5; step++) {
    const { x, labels } = batch(step);
    trainer.step(x, labels, step);
  }
  model.heads.forEach((h, i) => assert.deepEqual(h.projection.dataSync(), before[i]));
  const trainable = model.network.units.flatMap((u) => unitVariables(u));
  for (const h of model.heads) assert.ok(!trainable.some((v) => v.dataId === h.projection.dataId));
});

test('the first unit aligns with a fixed projection of the input when asked', () => {
  const { model, options } = smallModel({ firstParent: 'input' });
  assert.ok(model.inputHead);
  const trainer = sllTrainer({ model, options });
  const { x, labels } = batch(1);
  const stats = trainer.step(x, labels, 0).arraySync();
  assert.ok(stats[0][1] > 0, 'unit 1 has an alignment loss');
  const none = smallModel();
  const stats0 = sllTrainer(none).step(x, labels, 0).arraySync();
  assert.equal(stats0[0][1], 0, 'without a parent, unit 1 has no alignment loss');
});

test('lambda per unit and a lambda schedule reach the loss', () => {
  const { model, options } = smallModel({ lambda: [0, 0, 2] });
  assert.deepEqual(sllTrainer({ model, options }).setEpoch(0).lambdas, [0, 0, 2]);
  const trainer = sllTrainer({ model, options }, { lambda: (epoch, unit) => (unit === 1 ? epoch + 1 : [0, 0, 2][unit]) });
  assert.deepEqual(trainer.setEpoch(2).lambdas, [0, 3, 2]);
  const { x, labels } = batch(2);
  const [u1, u2, u3] = trainer.step(x, labels, 0).arraySync();
  assert.ok(Math.abs(u1[2] - u1[0]) < 1e-6, 'lambda 0: total = prediction');
  assert.ok(Math.abs(u2[2] - (u2[0] + 3 * u2[1])) < 1e-5);
  assert.ok(Math.abs(u3[2] - (u3[0] + 2 * u3[1])) < 1e-5);
});

test('a learning rate per unit reaches each unit\'s optimizer, under the schedule too', () => {
  const sgd = { optimizer: 'sgd' as const, momentum: 0, lrSchedule: 'constant' as const };
  const one = smallModel({ ...sgd, lr: 0.01 });
  const each = smallModel({ ...sgd, lr: [0.01, 0.02, 0.005] });
  const before = [0, 1, 2].map((i) => unitWeights(one.model, i)[0]);
  const { x, labels } = batch(3);
  sllTrainer(one).step(x, labels, 0);
  sllTrainer(each).step(x, labels, 0);
  // Plain SGD from the same weights: unit 1 (same lr) moves identically, so units 2 and 3 see the same
  // inputs and gradients and move 2x and 0.5x as far.
  [1, 2, 0.5].forEach((ratio, i) => {
    const a = unitWeights(one.model, i)[0];
    const b = unitWeights(each.model, i)[0];
    let moved = 0;
    for (let k = 0; k < a.length; k++) {
      const da = a[k] - before[i][k];
      moved += Math.abs(da);
      assert.ok(Math.abs(b[k] - before[i][k] - ratio * da) < 1e-6, `unit ${i + 1} weight ${k}`);
    }
    assert.ok(moved > 0, `unit ${i + 1} moved`);
  });
  const cosine = smallModel({ lr: [0.004, 0.002, 0.001], epochs: 4 });
  const trainer = sllTrainer(cosine);
  trainer.setEpoch(2);
  const rates = trainer.optimizers.map((o) => (o as unknown as { learningRate: number }).learningRate);
  assert.deepEqual(rates, [0.002, 0.001, 0.0005], 'cosine at half-way: half of each peak');
});

for (const method of ['sll', 'bp'] as const) {
  test(`${method} steps leak no tensors: the count after step 10 equals the count after step 60`, () => {
    const { model, options } = smallModel({ method, optimizer: 'adam' });
    const trainer = trainerOf({ model, options });
    const { x, labels } = batch(0);
    let after10 = 0;
    for (let step = 1; step <= 60; step++) {
      trainer.setEpoch(step % 3);
      tf.dispose(trainer.step(x, labels, step));
      if (step === 10) after10 = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, after10);
  });
}

test('SLL^{i+}: --unit-layers 2 groups layers into units, one head and one optimizer per block', () => {
  const layerWise = smallModel({ layers: 5 });
  const { model, options } = smallModel({ layers: 5, unitLayers: 2 });
  const c = layerWise.model.network.spec.unitLayerCounts;
  assert.equal(c.length, 5);
  assert.deepEqual(model.network.spec.unitLayerCounts, [c[0] + c[1], c[2] + c[3], c[4]]);
  assert.deepEqual(model.network.units.map((u) => u.layers.length), [c[0] + c[1], c[2] + c[3], c[4]]);
  assert.equal(model.heads.length, 3);
  // Block k's output is layer 2k's output: the same Sequential, cut differently.
  assert.deepEqual(model.network.units.map((u) => u.outputShape), [1, 3, 4].map((l) => layerWise.model.network.units[l].outputShape));
  const trainer = sllTrainer({ model, options });
  assert.equal(trainer.optimizers.length, 3);
  // Backprop inside a block: both layers of block 1 move in its step; the other blocks only by their own.
  const before = unitWeights(model, 0);
  const { x, labels } = batch(2);
  trainer.step(x, labels, 0);
  const after = unitWeights(model, 0);
  assert.equal(after.length, 4, 'kernel and bias of two dense layers');
  after.forEach((w, i) => assert.notDeepEqual(w, before[i], `weight ${i} of block 1 trained`));
  // Block 2's update does not depend on block 3.
  const shorter = smallModel({ layers: 4, unitLayers: 2 });
  sllTrainer(shorter).step(x, labels, 0);
  assert.deepEqual(unitWeights(model, 1), unitWeights(shorter.model, 1));
  assert.throws(() => smallModel({ layers: 2, unitLayers: 3 }), /unit-layers/);
});
