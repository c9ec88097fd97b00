import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { useBackend } from '../../src/backend.js';
import { disposeHeaded } from '../../src/train/model.js';
import { evenStages } from '../../src/train/stages.js';
import { fitSmall, pipelineOf, randomImages, smallModel, unitWeights } from './helpers.js';

before(async () => {
  await useBackend('native', 1);
});


test('on native with one BLAS thread per stage, a 2-stage pipeline matches sequential SLL within 1e-5 relative', async () => {
  const data = { train: randomImages(320, 3), test: randomImages(32, 4) };
  const run = { layers: 4, width: 64, epochs: 2, batchSize: 16, backend: 'native' as const, threads: 1 };
  const sequential = smallModel(run);
  await fitSmall(sequential, data);
  const piped = smallModel(run);
  await fitSmall(piped, data, {}, {}, await pipelineOf(piped, evenStages(4, 2)));
  for (let u = 0; u < run.layers; u++) {
    const a = unitWeights(piped.model, u);
    const b = unitWeights(sequential.model, u);
    a.forEach((w, j) =>
      w.forEach((x, k) => {
        const y = b[j][k];
        assert.ok(Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(y)), `unit ${u + 1} weight ${j}[${k}]: ${x} vs ${y}`);
      }),
    );
  }
  disposeHeaded(sequential.model);
  disposeHeaded(piped.model);
});
