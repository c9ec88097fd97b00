import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { makeStreamingDataset } from '../../src/data/dataset.js';
import { DataError } from '../../src/data/errors.js';
import { disposeHeaded } from '../../src/train/model.js';
import { PipelineEngine, StageError, ThreadTransport } from '../../src/train/pipeline.js';
import { balancedStages, evenStages, type StageRange } from '../../src/train/stages.js';
import { stageRun } from '../../src/recipe/run.js';
import { fitSmall, pipelineOf, randomImages, smallModel, unitWeights } from './helpers.js';

before(async () => {
  await useBackend('cpu');
});

// gc() for the leak test (node --test passes no --expose-gc).
v8.setFlagsFromString('--expose-gc');


const data = { train: randomImages(400, 1), test: randomImages(40, 2) };
const run = { layers: 4, width: 24, epochs: 2, batchSize: 16, firstParent: 'input' as const, cropPadding: 1, backend: 'cpu' as const };

for (const ranges of [evenStages(4, 2), [{ first: 0, end: 1 }, { first: 1, end: 3 }, { first: 3, end: 4 }]]) {
  const name = ranges.map((r) => `${r.first + 1}-${r.end}`).join(' | ');
  test(`a pipeline of stages [${name}] gives bit-identical weights and metrics to sequential SLL on cpu`, async () => {
    const sequential = smallModel(run);
    const seqResult = await fitSmall(sequential, data);
    const piped = smallModel(run);
    const engine = await pipelineOf(piped, ranges);
    const pipeResult = await fitSmall(piped, data, {}, {}, engine);
    for (let u = 0; u < run.layers; u++) assert.deepEqual(unitWeights(piped.model, u), unitWeights(sequential.model, u), `unit ${u + 1}`);
    const strip = (ms: typeof seqResult.metrics) => ms.map(({ epoch_seconds: _, ...m }) => m);
    assert.deepEqual(strip(pipeResult.metrics), strip(seqResult.metrics));
    assert.ok(engine!.peakInFlight <= engine!.depth, `in flight ${engine!.peakInFlight} > depth ${engine!.depth}`);
    assert.ok(engine!.peakInFlight >= 2, 'stages did overlap');
    disposeHeaded(sequential.model);
    disposeHeaded(piped.model);
  });
}

test('a pipelined run leaks nothing: tensor counts (main thread, every stage) and the main thread\'s array buffers are flat from epoch to epoch', async () => {
  // Wide enough that a sync's weights (~0.8 MB) would show if something kept them.
  const piped = smallModel({ ...run, width: 256, epochs: 6, checkpointEvery: 7 });
  const engine = await pipelineOf(piped, evenStages(4, 2));
  const gc = vm.runInNewContext('gc') as () => void;
  const main: number[] = [];
  const buffers: number[] = [];
  const stages: number[][] = [];
  // Each epoch ends with a sync (weights to the main thread) and a checkpoint (a second sync, optimizer states).
  await fitSmall(piped, data, {
    onEpochEnd: () => {
      main.push(tf.memory().numTensors);
      gc();
      buffers.push(process.memoryUsage().arrayBuffers);
    },
    onCheckpoint: async () => {
      stages.push([...engine.stageTensors]);
    },
  }, { checkpointEvery: 7 }, engine);
  assert.equal(main.length, 6);
  assert.ok(stages.length > 6, 'checkpoints inside epochs too');
  for (const n of main.slice(1)) assert.equal(n, main[0], `main thread: ${main}`);
  for (const s of stages.slice(1)) assert.deepEqual(s, stages[0], `stages: ${JSON.stringify(stages)}`);
  // A leak of a sync's weights (~1.6 MB an epoch) shows at every later epoch; a one-off allocation that
  // outlives one reading (CI once saw 2 MiB at epoch 6 only) does not, so take the least of epochs 4-6.
  const growth = (Math.min(...buffers.slice(3)) - buffers[1]) / 2 ** 20;
  assert.ok(growth < 1.5, `array buffers grew ${growth.toFixed(2)} MiB from epoch 2 to epochs 4-6: ${buffers.map((b) => (b / 2 ** 20).toFixed(2))}`);
  await engine.dispose();
  disposeHeaded(piped.model);
});

test('a pipeline of batch-norm conv units gives bit-identical weights, running statistics and metrics to sequential SLL on cpu', async () => {
  const conv = { ...run, model: 'convstack' as const, layers: 3, width: 4, epochs: 1, projDim: 16, batchNorm: true };
  const sequential = smallModel(conv);
  const seqResult = await fitSmall(sequential, data);
  const piped = smallModel(conv);
  const pipeResult = await fitSmall(piped, data, {}, {}, await pipelineOf(piped, [{ first: 0, end: 2 }, { first: 2, end: 3 }]));
  const allWeights = (m: typeof piped) => m.model.network.units.flatMap((u) => u.layers.flatMap((l) => l.getWeights().map((w) => w.dataSync())));
  // getWeights includes batch norm's moving mean and variance, which the main thread's evaluation uses.
  assert.deepEqual(allWeights(piped), allWeights(sequential));
  const strip = (ms: typeof seqResult.metrics) => ms.map(({ epoch_seconds: _, ...m }) => m);
  assert.deepEqual(strip(pipeResult.metrics), strip(seqResult.metrics));
  disposeHeaded(sequential.model);
  disposeHeaded(piped.model);
});

test('a pipeline of ViT units (layers rebuilt from JSON in the workers) gives bit-identical weights to sequential SLL on cpu', async () => {
  const vit = { ...run, model: 'vit' as const, layers: 4, width: 8, heads: 2, patchSize: 3, epochs: 1, firstParent: 'none' as const };
  const sequential = smallModel(vit);
  await fitSmall(sequential, data);
  const piped = smallModel(vit);
  await fitSmall(piped, data, {}, {}, await pipelineOf(piped, evenStages(4, 2)));
  for (let u = 0; u < vit.layers; u++) assert.deepEqual(unitWeights(piped.model, u), unitWeights(sequential.model, u), `unit ${u + 1}`);
  disposeHeaded(sequential.model);
  disposeHeaded(piped.model);
});

test('a crashed stage stops the run with an error naming the stage and its units, and no worker survives', async () => {
  const small = smallModel(run);
  const engine: PipelineEngine = await pipelineOf(small, evenStages(4, 2));
  const { workers } = engine.transport as ThreadTransport;
  const exited = workers.map((w) => new Promise<number>((resolve) => w.once('exit', resolve)));
  await assert.rejects(
    fitSmall(small, data, {
      onBatchEnd: (info) => {
        if (info.step === 3) void workers[1].terminate();
      },
    }, {}, engine),
    (e: Error) => e instanceof StageError && /pipeline stage 2 \(units 3-4\) exited/.test(e.message),
  );
  assert.equal((await Promise.all(exited)).length, 2, 'both workers exited');
  disposeHeaded(small.model);
});

test('stages balance measured costs: the costliest stage is as cheap as any contiguous split allows', () => {
  assert.deepEqual(balancedStages([1, 1, 1, 1], 2), [{ first: 0, end: 2 }, { first: 2, end: 4 }]);
  assert.deepEqual(balancedStages([8, 1, 1, 1, 1], 2), [{ first: 0, end: 1 }, { first: 1, end: 5 }]);
  assert.deepEqual(balancedStages([1, 2, 3, 4, 5], 3), [{ first: 0, end: 3 }, { first: 3, end: 4 }, { first: 4, end: 5 }]);
  assert.deepEqual(evenStages(5, 2), [{ first: 0, end: 3 }, { first: 3, end: 5 }]);
});

test('an image that fails mid-epoch: the steps before it are checkpointed, sequential and pipelined alike, and the error says after which step', async () => {
  const good = randomImages(400, 1);
  // The same images, read on demand; example 123 fails to read (as a damaged file would) once armed.
  const failing = makeStreamingDataset({
    name: 'failing',
    labels: good.labels,
    shape: good.shape,
    numClasses: good.numClasses,
    mean: good.mean,
    std: good.std,
    readPixels(indices, out) {
      const stride = out.length / indices.length;
      for (let k = 0; k < indices.length; k++) {
        const i = indices[k];
        if (i === 123) throw new DataError('img-123.png: corrupt image');
        out.set(good.pixels!.subarray(i * stride, (i + 1) * stride), k * stride);
      }
    },
  });
  const failingData = { train: failing, test: randomImages(40, 2) };
  const stopAt = async (m: ReturnType<typeof smallModel>, engine?: PipelineEngine) => {
    let saved: { step: number; weights: Float32Array[][] } | null = null;
    const hooks = {
      onCheckpoint: async (state: { step: number }) => {
        saved = { step: state.step, weights: [0, 1, 2, 3].map((u) => unitWeights(m.model, u)) };
      },
    };
    const error = await fitSmall(m, failingData, hooks, {}, engine).then(
      () => assert.fail('the run did not stop'),
      (e: unknown) => e as DataError,
    );
    assert.ok(error instanceof DataError, String(error));
    return { error, saved: saved as { step: number; weights: Float32Array[][] } | null };
  };
  const sequential = smallModel({ ...run, epochs: 1 });
  const seq = await stopAt(sequential);
  assert.ok(seq.saved && seq.saved.step > 0, 'a checkpoint of the steps before the bad image');
  assert.equal(seq.error.checkpointStep, seq.saved.step);
  assert.match(seq.error.message, /^img-123\.png: corrupt image$/);
  const piped = smallModel({ ...run, epochs: 1 });
  const engine = await pipelineOf(piped, evenStages(4, 2));
  const pipe = await stopAt(piped, engine);
  await engine.dispose();
  // Every minibatch in flight when the bad one came was finished first: the same steps, the same weights.
  assert.equal(pipe.error.checkpointStep, seq.saved.step);
  assert.deepEqual(pipe.saved!.weights, seq.saved.weights);
  disposeHeaded(sequential.model);
  disposeHeaded(piped.model);
});

test('a pipeline refuses stage ranges that skip, repeat or leave out units, and a stage that fails to start ends every worker', async () => {
  const small = smallModel(run);
  const bad: [StageRange[], RegExp][] = [
    [[{ first: 0, end: 2 }, { first: 3, end: 4 }], /stage 2 must hold units from 2/],
    [[{ first: 0, end: 2 }, { first: 2, end: 2 }, { first: 2, end: 4 }], /stage 2 must hold units from 2 .* non-empty/],
    [[{ first: 0, end: 3 }], /the stages hold units 0..2, the network has 4/],
    [[], /at least one stage range/],
  ];
  for (const [ranges, message] of bad) await assert.rejects(pipelineOf(small, ranges), (e: Error) => e instanceof RangeError && message.test(e.message));
  assert.throws(() => evenStages(4, 5), /stages must be an integer in 1..4/);
  assert.throws(() => balancedStages([1, 1], 0), /stages must be an integer in 1..2/);
  const closed: number[] = [];
  const close = ThreadTransport.prototype.close;
  ThreadTransport.prototype.close = async function (this: ThreadTransport) {
    const exits = this.workers.map((w) => new Promise<number>((resolve) => w.once('exit', resolve)));
    await close.call(this);
    closed.push((await Promise.all(exits)).length);
  };
  try {
    const stageRunOf = stageRun(small.options, 4);
    await assert.rejects(
      PipelineEngine.start(small.model, { ...stageRunOf, backend: 'no-such-backend' }, evenStages(4, 2)),
      (e: Error) => e instanceof StageError && /pipeline stage [12] \(units [13]-[24]\) failed: .*no-such-backend/.test(e.message),
    );
  } finally {
    ThreadTransport.prototype.close = close;
  }
  assert.deepEqual(closed, [2], 'both workers ended');
  disposeHeaded(small.model);
});
