import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { ModelFileError } from '../../src/io/artifacts.js';
import { loadModel, registerFileSystem, saveModel } from '../../src/io/model-files.js';
import { disposeHeaded, type HeadedNetwork } from '../../src/train/model.js';
import { predict } from '../../src/train/predict.js';
import { batch, sllTrainer, smallModel } from '../train/helpers.js';

before(async () => {
  await useBackend('cpu');
  registerFileSystem();
});

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-io-'));
}

const normalization = { mean: [0.5], std: [0.25] };

function trained(method: 'sll' | 'bp', extra = {}): HeadedNetwork {
  const m = smallModel({ method, projDim: method === 'sll' ? 8 : null, firstParent: method === 'sll' ? 'input' : 'none', ...extra });
  if (method === 'sll') sllTrainer(m).step(batch(1).x, batch(1).labels, 0);
  return { ...m.model, normalization };
}

for (const [method, extra] of [['sll', {}], ['bp', {}], ['sll', { projCenter: true }]] as const) {
  test(`a saved ${method} model${'projCenter' in extra ? ' with centring heads' : ''} reloads with identical weights, heads, normalisation and predictions`, async () => {
    const model = trained(method, extra);
    const dir = tmpDir();
    await saveModel(dir, model);
    const loaded = await loadModel(dir);
    assert.deepEqual(loaded.network.spec, model.network.spec);
    assert.deepEqual(loaded.normalization, normalization);
    const { x } = batch(2);
    const heads = method === 'sll' ? [0, 1, 2] : [2];
    for (const head of heads) assert.deepEqual(predict(loaded, x, { head }).dataSync(), predict(model, x, { head }).dataSync(), `head ${head}`);
    loaded.heads.forEach((h, i) => {
      assert.deepEqual(h.config, model.heads[i].config);
      assert.equal(h.config.center, 'projCenter' in extra);
      assert.deepEqual(h.projection.dataSync(), model.heads[i].projection.dataSync());
    });
    assert.equal(loaded.inputHead?.config.seed, model.inputHead?.config.seed);
    assert.equal(loaded.network.classifier != null, method === 'bp');
    disposeHeaded(loaded);
    disposeHeaded(model);
  });
}

for (const [name, method, extra] of [
  ['an SLL MLP', 'sll', {}],
  ['a BP MLP', 'bp', {}],
  ['an SLL conv stack with pooled heads', 'sll', { model: 'convstack', width: 3, projDim: 12 }],
  ['an SLL conv stack with pooled, centring heads', 'sll', { model: 'convstack', width: 3, projDim: 12, projCenter: true }],
] as const) {
  test(`model.json of ${name} is a plain tfjs model: tf.loadLayersModel gives class probabilities from raw pixels`, async () => {
    const model = trained(method, extra);
    const dir = tmpDir();
    await saveModel(dir, model);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(json.format, 'layers-model');
    assert.deepEqual(json.weightsManifest[0].paths, ['./weights.bin']);
    const plain = await tf.loadLayersModel(`file://${dir}/model.json`);
    const pixels = tf.randomUniform([16, 6, 6, 1], 0, 255, 'float32', 9).round();
    const probs = plain.predict(pixels) as tf.Tensor2D;
    assert.deepEqual(probs.shape, [16, 4]);
    const want = predict(model, tf.div(tf.sub(tf.div(pixels, 255), 0.5), 0.25));
    const got = probs.dataSync();
    want.dataSync().forEach((p, i) => assert.ok(Math.abs(p - got[i]) < 1e-5, `probability ${i}: ${got[i]} vs ${p}`));
    assert.deepEqual(tf.argMax(probs, 1).dataSync(), tf.argMax(want, 1).dataSync());
    tf.sum(probs, 1).dataSync().forEach((s) => assert.ok(Math.abs(s - 1) < 1e-5));
    assert.equal(plain.trainableWeights.length, model.network.model.trainableWeights.length + (method === 'bp' ? 2 : 0), 'normalisation and head are frozen');
    plain.dispose();
    disposeHeaded(model);
  });
}

test('tfjs\'s file:// scheme saves and loads any tfjs model in Node', async () => {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [5], activation: 'relu' }), tf.layers.dense({ units: 2 })] });
  const dir = tmpDir();
  await model.save(`file://${dir}`);
  const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
  const x = tf.randomNormal([4, 5], 0, 1, 'float32', 1);
  assert.deepEqual((loaded.predict(x) as tf.Tensor).dataSync(), (model.predict(x) as tf.Tensor).dataSync());
});

test('loading a folder without a model, with truncated heads or weights, or of another format fails with a clear error', async () => {
  await assert.rejects(loadModel(tmpDir()), (e: Error) => e instanceof ModelFileError && /sll.json not found/.test(e.message));
  const model = trained('sll');
  const dir = tmpDir();
  await saveModel(dir, model);
  const heads = path.join(dir, 'heads.bin');
  const whole = fs.readFileSync(heads);
  fs.truncateSync(heads, whole.length - 8);
  await assert.rejects(loadModel(dir), (e: Error) => e instanceof ModelFileError && /truncated/.test(e.message));
  fs.writeFileSync(heads, whole);
  const weights = path.join(dir, 'weights.bin');
  fs.truncateSync(weights, fs.statSync(weights).size - 4);
  await assert.rejects(loadModel(dir), (e: Error) => e instanceof ModelFileError && /the weights hold \d+ bytes, model.json lists \d+/.test(e.message));
  const other = tmpDir();
  await saveModel(other, model);
  const sllJson = path.join(other, 'sll.json');
  fs.writeFileSync(sllJson, fs.readFileSync(sllJson, 'utf8').replace('sll-model/2', 'sll-model/1'));
  await assert.rejects(loadModel(other), (e: Error) => e instanceof ModelFileError && /format 'sll-model\/1'/.test(e.message));
  disposeHeaded(model);
});
