import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { loadModel, saveModel, ModelFileError } from '../../src/io/model-files.js';
import { SllTrainer } from '../../src/train/sll.js';
import { batch, smallModel } from '../train/helpers.js';

before(async () => {
  await useBackend('cpu');
});

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-io-'));
}

for (const method of ['sll', 'bp'] as const) {
  test(`a saved ${method} model reloads with identical weights, heads and outputs`, async () => {
    const { model, options } = smallModel({ method, projDim: 8, firstParent: method === 'sll' ? 'input' : 'none' });
    if (method === 'sll') new SllTrainer(model, options).step(batch(1).x, batch(1).labels, 0);
    const dir = tmpDir();
    await saveModel(dir, model);
    const loaded = await loadModel(dir);
    assert.deepEqual(loaded.network.spec, model.network.spec);
    const { x } = batch(2);
    const out = (m: typeof model) => (m.network.model.predict(x) as tf.Tensor).dataSync();
    assert.deepEqual(out(loaded), out(model));
    loaded.heads.forEach((h, i) => {
      assert.deepEqual(h.config, model.heads[i].config);
      assert.deepEqual(h.projection.dataSync(), model.heads[i].projection.dataSync());
    });
    assert.equal(loaded.inputHead?.config.seed, model.inputHead?.config.seed);
    assert.equal(loaded.network.classifier != null, method === 'bp');
  });
}

test('model.json and its weights are the standard tfjs format that tf.loadLayersModel reads', async () => {
  const { model } = smallModel();
  const dir = tmpDir();
  await saveModel(dir, model);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  assert.equal(json.format, 'layers-model');
  assert.deepEqual(json.weightsManifest[0].paths, ['./weights.bin']);
  // Load it as any tfjs user would, through a plain fetch-like handler over the two files.
  const handler = tf.io.fromMemory(
    json.modelTopology,
    json.weightsManifest[0].weights,
    new Uint8Array(fs.readFileSync(path.join(dir, 'weights.bin'))).buffer,
  );
  const plain = await tf.loadLayersModel(handler);
  const { x } = batch(3);
  assert.deepEqual(
    (plain.predict(x) as tf.Tensor).dataSync(),
    (model.network.model.predict(x) as tf.Tensor).dataSync(),
  );
});

test('loading a folder without a model, or with truncated heads, fails with a clear error', async () => {
  await assert.rejects(loadModel(tmpDir()), (e: Error) => e instanceof ModelFileError && /sll.json not found/.test(e.message));
  const { model } = smallModel();
  const dir = tmpDir();
  await saveModel(dir, model);
  const heads = path.join(dir, 'heads.bin');
  fs.truncateSync(heads, fs.statSync(heads).size - 8);
  await assert.rejects(loadModel(dir), (e: Error) => e instanceof ModelFileError && /truncated/.test(e.message));
});
