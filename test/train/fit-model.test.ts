/** fitSll / fitBp on a tfjs user's own model, data and callbacks. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { DataError } from '../../src/data/errors.js';
import { registerFileSystem, saveModel } from '../../src/io/model-files.js';
import { evaluate, unitActivity, type EvaluateOptions } from '../../src/train/evaluate.js';
import type { TfCallbacks } from '../../src/train/callbacks.js';
import { makeDataset } from '../../src/data/dataset.js';
import type { TrainingData } from '../../src/data/source.js';
import { fitBp, fitSll, type BpFitConfig, type SllFitConfig } from '../../src/train/fit-model.js';
import { disposeHeaded, disposeHeads, isHeadedNetwork, type HeadedNetwork } from '../../src/train/model.js';
import { predict } from '../../src/train/predict.js';
import { fromArtifacts, toPredictor, type SllArtifacts } from '../../src/io/artifacts.js';

before(async () => {
  await useBackend('cpu');
  registerFileSystem();
});

const K = 4;

/** n points of K Gaussian blobs in 2 dimensions, embedded in `shape` (a vector [d] or an image [h, w, 1]); one-hot labels. */
function blobs(n: number, seed: number, shape: number[] = [16]): { x: tf.Tensor; y: tf.Tensor2D; labels: Int32Array } {
  return tf.tidy(() => {
    const labels = Int32Array.from({ length: n }, (_, i) => (i * 5 + seed) % K);
    const centers = tf.tensor2d([[2, 0], [-2, 0], [0, 2], [0, -2]]);
    const points = tf.add(tf.gather(centers, tf.tensor1d(labels, 'int32')), tf.randomNormal([n, 2], 0, 0.5, 'float32', seed));
    const size = shape.reduce((a, b) => a * b, 1);
    const embed = tf.randomNormal([2, size], 0, 1, 'float32', 99);
    const x = tf.reshape(tf.matMul(points, embed), [n, ...shape]);
    return { x, y: tf.oneHot(tf.tensor1d(labels, 'int32'), K).toFloat() as tf.Tensor2D, labels };
  });
}

function denseModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 32, activation: 'relu', inputShape: [16], kernelInitializer: tf.initializers.heNormal({ seed: 1 }) }),
      tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
    ],
  });
}

function convModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', inputShape: [8, 8, 1], kernelInitializer: tf.initializers.heNormal({ seed: 3 }) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 4 }) }),
      tf.layers.flatten(),
    ],
  });
}

const train = blobs(400, 1);
const valid = blobs(200, 2);
const quick = { epochs: 6, batchSize: 32, lr: 0.01, keep: 1, seed: 3 };

test('a user\'s tf.sequential of dense layers learns with fitSll from tensors: units, logs, History', async () => {
  const model = denseModel();
  const batchEnds: number[] = [];
  const history = await fitSll(model, [train.x, train.y], {
    ...quick,
    validationData: { x: valid.x, y: valid.y },
    callbacks: { onBatchEnd: async (batch: number) => void batchEnds.push(batch) },
  });
  assert.equal(history.model.network.units.length, 2, 'each dense layer is a unit');
  assert.equal(history.heads.length, 2);
  assert.deepEqual(history.epoch, [0, 1, 2, 3, 4, 5]);
  assert.equal(batchEnds.length, 6 * Math.ceil(400 / 32));
  for (const key of ['loss', 'acc', 'val_loss', 'val_acc', 'unit1_val_acc', 'unit2_align_loss', 'unit2_lr', 'unit1_lambda']) {
    assert.equal(history.history[key]?.length, 6, key);
  }
  const valAcc = history.history.val_acc;
  assert.ok(valAcc[5] > 0.9, `validation accuracy ${valAcc}`);
  assert.ok(history.history.loss[5] < history.history.loss[0], 'the loss fell');
  assert.equal(history.history.unit1_align_loss[0], 0, 'the first unit has no parent');
  assert.ok(history.history.unit2_align_loss[0] > 0);
  // The user's model itself was trained: its predictions through the last head match the history.
  const evaluation = await evaluate(history.model, [valid.x, valid.y]);
  assert.equal(evaluation.accuracy, valAcc[5]);
  disposeHeads(history.model);
});

test('a user\'s conv tf.sequential learns with fitSll from a tf.data.Dataset; its saved model predicts through tf.loadLayersModel', async () => {
  const images = blobs(320, 5, [8, 8, 1]);
  const test8 = blobs(100, 6, [8, 8, 1]);
  const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(images.x)), ys: tf.data.array(tf.unstack(images.y)) }).batch(32);
  const model = convModel();
  const history = await fitSll(model, ds, {
    ...quick,
    epochs: 5,
    validationData: [test8.x, test8.y],
  });
  assert.deepEqual(history.model.network.spec.unitLayerCounts, [2, 2], 'conv + its pool; conv + flatten');
  assert.equal(history.params.steps, 10, 'batches per epoch from the data set\'s size');
  assert.ok(history.history.val_acc.at(-1)! > 0.8, `validation accuracy ${history.history.val_acc}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-fit-'));
  await saveModel(dir, history.model);
  const plain = await tf.loadLayersModel(`file://${dir}/model.json`);
  const probs = plain.predict(test8.x) as tf.Tensor2D;
  assert.deepEqual(tf.argMax(probs, 1).dataSync(), tf.argMax(predict(history.model, test8.x), 1).dataSync());
  plain.dispose();
  disposeHeads(history.model);
});

test('tf.callbacks.earlyStopping stops fitSll', async () => {
  const model = denseModel();
  // No improvement can beat a minDelta of 100: training stops after the second epoch.
  const stop = tf.callbacks.earlyStopping({ monitor: 'val_loss', minDelta: 100, patience: 0 });
  const history = await fitSll(model, { x: train.x, y: train.y }, { ...quick, epochs: 10, validationData: { x: valid.x, y: valid.y }, callbacks: [stop] });
  assert.deepEqual(history.epoch, [0, 1]);
  assert.equal(history.history.val_loss.length, 2);
  disposeHeads(history.model);
});

test('integer labels need numClasses; then they train like one-hot ones', async () => {
  const y = tf.tensor1d(train.labels, 'int32');
  await assert.rejects(fitSll(denseModel(), [train.x, y], quick), (e: Error) => e instanceof DataError && /numClasses/.test(e.message));
  const oneHot = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1 });
  const ints = await fitSll(denseModel(), [train.x, y], { ...quick, epochs: 1, numClasses: K });
  assert.deepEqual(ints.history, oneHot.history);
  await assert.rejects(fitSll(denseModel(), [train.x, tf.tensor1d([...train.labels].map((l) => l + 3), 'int32')], { ...quick, numClasses: K }), /label 4 at index \d+ outside 0..3/);
  disposeHeads(oneHot.model);
  disposeHeads(ints.model);
});

test('units group as asked: layer counts, a function, SLL^{i+} blocks; a branching model is refused', async () => {
  const counts = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, units: [2] });
  assert.deepEqual(counts.model.network.spec.unitLayerCounts, [2]);
  const fn = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, units: () => true, unitLayers: 2 });
  assert.deepEqual(fn.model.network.spec.unitLayerCounts, [2]);
  const input = tf.input({ shape: [16] });
  const a = tf.layers.dense({ units: 8 }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.dense({ units: 8 }).apply(input) as tf.SymbolicTensor;
  const branching = tf.model({ inputs: input, outputs: tf.layers.add().apply([a, b]) as tf.SymbolicTensor });
  await assert.rejects(fitSll(branching, [train.x, train.y], quick), /does not take exactly the previous layer's output/);
  const chain = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 8, activation: 'relu' }).apply(a) as tf.SymbolicTensor });
  const functional = await fitSll(chain, [train.x, train.y], { ...quick, epochs: 1 });
  assert.deepEqual(functional.model.network.spec.unitLayerCounts, [1, 1]);
  await assert.rejects(fitSll(denseModel(), [train.x, train.y], { ...quick, keep: 2 }), /keep must be in \(0, 1\], got 2/);
  for (const h of [counts, fn, functional]) disposeHeads(h.model);
});

test('fitBp trains the same model end to end through a new linear classifier', async () => {
  const history = await fitBp(denseModel(), [train.x, train.y], { ...quick, validationData: [valid.x, valid.y] });
  assert.ok(history.model.network.classifier, 'a classifier was added');
  assert.equal(history.heads.length, 0);
  assert.ok(history.history.val_acc.at(-1)! > 0.9, `validation accuracy ${history.history.val_acc}`);
  assert.equal(history.history.lr.length, 6);
});

test('fitSll leaves no tensor behind but the heads, which disposeHeads frees', async () => {
  const model = denseModel();
  const before = tf.memory().numTensors;
  const history = await fitSll(model, [train.x, train.y], { ...quick, epochs: 2, validationData: [valid.x, valid.y] });
  disposeHeads(history.model);
  assert.equal(tf.memory().numTensors, before);
});

test('with batchesPerEpoch, each epoch takes the next batches of the tf.data.Dataset (as fitDataset does)', async () => {
  const firsts: number[] = [];
  const ds = tf.data
    .zip({ xs: tf.data.array(tf.unstack(train.x)), ys: tf.data.array(tf.unstack(train.y)) })
    .batch(32)
    .map((b) => {
      const { xs } = b as { xs: tf.Tensor };
      firsts.push(tf.tidy(() => xs.slice([0, 0], [1, 1]).dataSync()[0]));
      return b;
    });
  const history = await fitSll(denseModel(), ds.repeat(), { ...quick, epochs: 3, batchesPerEpoch: 2, numClasses: K });
  assert.equal(firsts.length, 6, 'six batches read in three epochs of two');
  assert.equal(new Set(firsts).size, 6, `every epoch reads new batches: ${firsts}`);
  disposeHeads(history.model);
  // 13 batches in all: epoch 7 runs out.
  await assert.rejects(fitSll(denseModel(), ds, { ...quick, epochs: 7, batchesPerEpoch: 2, numClasses: K }), (e: Error) => e instanceof DataError && /ran out after 1 batches of epoch 7 \(batchesPerEpoch 2\)/.test(e.message));
  for (const bad of [0, 1.5]) {
    await assert.rejects(fitSll(denseModel(), ds, { ...quick, batchesPerEpoch: bad }), new RegExp(`batchesPerEpoch must be an integer >= 1, got ${bad}`));
  }
  await assert.rejects(fitSll(denseModel(), [train.x, train.y], { ...quick, batchesPerEpoch: 2 }), /batchesPerEpoch applies to a tf.data.Dataset/);
});

test('weight regularizers of the layers are added to the loss they train on, as in model.fit', async () => {
  const norm = (m: tf.LayersModel) => tf.tidy(() => tf.norm(m.layers[0].getWeights()[0]).dataSync()[0]);
  const model = (l2: number) =>
    tf.sequential({
      layers: [
        tf.layers.dense({ units: 32, activation: 'relu', inputShape: [16], kernelInitializer: tf.initializers.heNormal({ seed: 1 }), ...(l2 > 0 && { kernelRegularizer: tf.regularizers.l2({ l2 }) }) }),
        tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: 2 }) }),
      ],
    });
  for (const method of [fitSll, fitBp]) {
    const plain = model(0);
    const penalised = model(1);
    const start = norm(plain);
    assert.equal(norm(penalised), start, 'the same initial weights');
    const a = await method(plain, [train.x, train.y], { ...quick, epochs: 2 });
    const b = await method(penalised, [train.x, train.y], { ...quick, epochs: 2 });
    assert.ok(norm(penalised) < 0.75 * norm(plain), `${method.name}: an l2 penalty shrinks the kernel (${norm(penalised)} against ${norm(plain)})`);
    for (const h of [a, b]) disposeHeads(h.model);
  }
});

test('labels of another number of classes than the model\'s are refused, not trained on', async () => {
  const history = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1 });
  const six = tf.oneHot(tf.fill([400], 5, 'int32'), 6);
  await assert.rejects(fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, numClasses: 10 }), /one-hot labels have 4 classes, expected 10/);
  await assert.rejects(fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, validationData: [train.x, six] }), /one-hot labels have 6 classes, expected 4/);
  await assert.rejects(evaluate(history.model, [train.x, six]), /one-hot labels have 6 classes, expected 4/);
  await assert.rejects(fitSll(history.model, [train.x, six], { ...quick, epochs: 1 }), /one-hot labels have 6 classes, expected 4/);
  await assert.rejects(fitSll(history.model, [train.x, train.y], { ...quick, epochs: 1, numClasses: 6 }), /numClasses is 6, but the model has 4 classes/);
  six.dispose();
  disposeHeads(history.model);
});

test('callbacks stop fitSll as they stop model.fit: a compiled tf.Sequential\'s stopTraining, and mid-epoch', async () => {
  const compiled = denseModel();
  compiled.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy' });
  const one = await fitSll(compiled, [train.x, train.y], { ...quick, epochs: 4, callbacks: { onEpochEnd: async () => void (compiled.stopTraining = true) } });
  assert.deepEqual(one.epoch, [0]);
  disposeHeads(one.model);
  // Stopped after batch 2 of epoch 1: the epoch ends there, with its logs; every onBatchBegin has its onBatchEnd.
  const events: string[] = [];
  class StopMidEpoch extends tf.Callback {
    override async onBatchBegin(batch: number) {
      events.push(`begin ${batch}`);
    }
    override async onBatchEnd(batch: number) {
      events.push(`end ${batch}`);
      if (batch === 2) this.model.stopTraining = true;
    }
    override async onEpochEnd(epoch: number) {
      events.push(`epoch ${epoch}`);
    }
  }
  const partial = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 3, callbacks: new StopMidEpoch() });
  assert.deepEqual(events, ['begin 0', 'end 0', 'begin 1', 'end 1', 'begin 2', 'end 2', 'epoch 0']);
  assert.deepEqual(partial.epoch, [0]);
  assert.equal(partial.history.loss.length, 1);
  assert.ok(Number.isFinite(partial.history.loss[0]));
  disposeHeads(partial.model);
  const ends: number[] = [];
  const begins: number[] = [];
  const full = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 2, callbacks: { onBatchBegin: async (b: number) => void begins.push(b), onBatchEnd: async (b: number) => void ends.push(b) } });
  assert.deepEqual(begins, ends, 'no onBatchBegin without its batch');
  disposeHeads(full.model);
});

test('bad data, models and options fail with a message saying what is wrong, and leak nothing', async () => {
  const oneHot = (n: number) => tf.tidy(() => tf.oneHot(tf.zeros([n], 'int32'), K));
  const xs = tf.zeros([8, 16]);
  const [y8, y6, y4] = [oneHot(8), oneHot(6), oneHot(4)];
  const activationOnly = () => tf.sequential({ layers: [tf.layers.activation({ inputShape: [16], activation: 'relu' })] });
  const cases: [tf.LayersModel, (m: tf.LayersModel) => Promise<unknown>, RegExp][] = [
    [denseModel(), (m) => fitSll(m, tf.data.array<tf.TensorContainer>([]), { ...quick, numClasses: K }), /the tf.data.Dataset gave no batches/],
    [denseModel(), (m) => fitSll(m, tf.data.array([{ x: xs, y: y8 }]), quick), /each tf.data.Dataset element must be a batch \{xs, ys\}/],
    [denseModel(), (m) => fitSll(m, tf.data.array([{ xs, ys: y6 }]), quick), /batch 0: xs holds 8 examples, ys 6/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, optimizer: () => 'adam' as unknown as tf.Optimizer }), /optimizer factory must return a tf.Optimizer/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, epochs: 1, lambda: () => -1 }), /lambda returned -1 for epoch 0, unit 0/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, epochs: 1, lrSchedule: () => -1 }), /lrSchedule returned -1 for epoch 0, unit 0/],
    [activationOnly(), (m) => fitSll(m, [train.x, train.y], quick), /unit 1 \(.*\) has no trainable weights/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, validationData: [xs, y4] }), /x has 8 examples, y 4/],
    [denseModel(), (m) => fitBp(m, [train.x, train.y], { ...quick, validationData: [xs, y4] }), /x has 8 examples, y 4/],
    // Keys fitSll does not know are refused, not left at their defaults: model.fit's with what to use here.
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, epoch: 3 } as SllFitConfig), /epoch is not an option here \(did you mean epochs\?\)/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, batch_size: 3 } as SllFitConfig), /did you mean batchSize\?/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], { ...quick, validationSplit: 0.1 } as SllFitConfig), /validationSplit is not an option here \(.*give validationData\)/],
    [denseModel(), (m) => fitBp(m, [train.x, train.y], { ...quick, stepsPerEpoch: 3 } as BpFitConfig), /stepsPerEpoch .*give batchesPerEpoch/],
    [denseModel(), (m) => fitSll(m, [train.x, train.y], null as unknown as SllFitConfig), /config must be an object of options, got null/],
  ];
  for (const [model, call, message] of cases) {
    const before = tf.memory().numTensors;
    await assert.rejects(call(model), message);
    assert.equal(tf.memory().numTensors, before, `${message}: no tensor left behind`);
    model.dispose();
  }
  tf.dispose([xs, y8, y6, y4]);
  const sgd = tf.memory().numTensors;
  const history = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, optimizer: 'sgd' });
  disposeHeaded(history.model);
  const bp = await fitBp(denseModel(), [train.x, train.y], { ...quick, epochs: 1, optimizer: 'sgd' });
  disposeHeaded(bp.model);
  assert.equal(tf.memory().numTensors, sgd, 'SGD with momentum frees its learning-rate scalar');
});

test('a model trained further keeps its heads: head options must agree with them', async () => {
  const history = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1, keep: 0.8 });
  await assert.rejects(fitSll(history.model, [train.x, train.y], { ...quick, epochs: 1, keep: 1 }), /keep is 1, but this model's heads were made with 0.8/);
  await assert.rejects(fitSll(history.model, [train.x, train.y], { ...quick, keep: 0.8, epochs: 1, projDim: 8 }), /projDim is 8, but this model's heads pool to null, null/);
  const more = await fitSll(history.model, [train.x, train.y], { ...quick, keep: 0.8, epochs: 1 });
  assert.equal(more.model, history.model);
  disposeHeads(history.model);
});

test('evaluate and unitActivity: a bad batch size or bad data fail without leaving tensors behind', async () => {
  const history = await fitSll(denseModel(), [train.x, train.y], { ...quick, epochs: 1 });
  const wrong = tf.zeros([8, 10]);
  const y8 = tf.tidy(() => tf.oneHot(tf.zeros([8], 'int32'), K));
  const before = tf.memory().numTensors;
  for (const batchSize of [0, 2.5]) {
    await assert.rejects(evaluate(history.model, [valid.x, valid.y], { batchSize }), /batchSize must be a positive integer/);
    await assert.rejects(unitActivity(history.model, [valid.x, valid.y], { batchSize }), /batchSize must be a positive integer/);
  }
  await assert.rejects(evaluate(history.model, [wrong, y8]));
  await assert.rejects(unitActivity(history.model, [wrong, y8]));
  await assert.rejects(evaluate(history.model, [valid.x, tf.tensor1d(Array.from({ length: 200 }, () => 7), 'int32')]), /label 7 at index 0 outside 0..3/);
  assert.equal(tf.memory().numTensors, before + 1, 'only the labels tensor made in the last call');
  tf.dispose([wrong, y8]);
  await assert.rejects(evaluate(history.model, [valid.x, valid.y], { numClasses: 5 }), /evaluate: numClasses 5 disagrees with the model's 4 classes/);
  assert.equal((await evaluate(history.model, [valid.x, valid.y], { numClasses: K })).examples, 200);
  disposeHeads(history.model);
});

test('functions that take a trained model say so when given the tf.LayersModel itself', async () => {
  const plain = denseModel();
  const layersModel = /takes a HeadedNetwork \(FitHistory.model of fitSll or fitBp, or loadModel's\), got a tf.LayersModel: train it with fitSll or fitBp/;
  const asHeaded = plain as unknown as HeadedNetwork;
  await assert.rejects(evaluate(asHeaded, [valid.x, valid.y]), (e: Error) => e instanceof TypeError && /^evaluate /.test(e.message) && layersModel.test(e.message));
  await assert.rejects(unitActivity(asHeaded, [valid.x, valid.y]), layersModel);
  assert.throws(() => predict(asHeaded, valid.x), layersModel);
  assert.throws(() => toPredictor(asHeaded), layersModel);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-plain-'));
  await assert.rejects(saveModel(path.join(dir, 'm'), asHeaded), (e: Error) => /^saveModel /.test(e.message) && layersModel.test(e.message));
  assert.equal(fs.existsSync(path.join(dir, 'm')), false, 'no folder made');
  await assert.rejects(evaluate(null as unknown as HeadedNetwork, [valid.x, valid.y]), /evaluate takes a HeadedNetwork .*, got null/);
  assert.equal(isHeadedNetwork(plain), false);
  const predictorOnly = await new Promise<tf.io.ModelArtifacts>((resolve) => void plain.save(tf.io.withSaveHandler(async (a) => (resolve(a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }))));
  await assert.rejects(fromArtifacts(predictorOnly as unknown as SllArtifacts), /fromArtifacts takes \{ predictor, sll, heads \} .*got tfjs model artifacts \(a predictor alone: load those with tf.loadLayersModel\)/);
  await assert.rejects(fromArtifacts(undefined as unknown as SllArtifacts), /got something else/);
  plain.dispose();
});

test('labels, data and options that would train or score silently wrong are refused, and a failed step frees its batch', async () => {
  const n = 40;
  const x = tf.slice(train.x, 0, n);
  const yIdx = tf.tensor1d(Array.from(train.labels.subarray(0, n)), 'int32');
  const [y17, yNaN, x10] = [tf.fill([n], 1.7), tf.fill([n], NaN), tf.zeros([n, 10])];
  const oneHot = (k: number) => tf.tidy(() => tf.oneHot(tf.zeros([8], 'int32'), k));
  const [oh4, oh5, xs8, x16, y4] = [oneHot(4), oneHot(5), tf.zeros([8, 16]), tf.zeros([16]), tf.zeros([4])];
  const one = { ...quick, epochs: 1, numClasses: K };
  const cases: [(m: tf.LayersModel) => Promise<unknown>, RegExp][] = [
    [(m) => fitSll(m, { x, y: y17 }, one), /y: label 1.7 at index 0 is not a whole number \(a class index\)/],
    [(m) => fitSll(m, { x, y: yNaN }, one), /y: label NaN at index 0 is not a whole number/],
    [(m) => fitSll(m, tf.data.generator(function* () {
      yield { xs: tf.clone(xs8), ys: tf.clone(oh4) };
      yield { xs: tf.clone(xs8), ys: tf.clone(oh5) };
    }), { ...quick, epochs: 1 }), /batch 1: one-hot labels have 5 classes, expected 4/],
    [(m) => fitSll(m, x as unknown as TrainingData, yIdx as unknown as SllFitConfig), /fitSll takes \(model, data, config\): give the inputs and labels together as data, e\.g\. fitSll\(model, \[x, y\]/],
    [(m) => fitSll(m, { x, y: [1, 2] as unknown as tf.Tensor }, one), /y must be a tf.Tensor \(e\.g\. tf\.tensor1d\(labels, 'int32'\)\), got an array/],
    [(m) => fitSll(m, [x, yIdx], { ...one, callbacks: tf.callbacks.earlyStopping as unknown as TfCallbacks }), /callbacks must be tf.Callback objects .*, got a function \(a factory such as tf.callbacks.earlyStopping must be called/],
    [(m) => fitSll(m, [x, yIdx], { ...one, callbacks: { onEpochEnd: 'log' } as unknown as TfCallbacks }), /got a onEpochEnd that is not a function/],
    [(m) => fitSll(m, [x, yIdx], { ...one, augment: { cropPadding: 2 } }), /augment applies to image data sets/],
    [(m) => fitSll(m, [x, yIdx], { ...one, lr: '0.01' as unknown as number }), /lr must be a number, got "0.01"/],
    [(m) => fitSll(m, tf.data.array([{ xs: x16, ys: y4 }]), one), /xs holds 16 examples, ys 4 \(each element must be a batch: is \.batch\(n\) missing\?\)/],
    [(m) => fitSll(m, [x10, yIdx], one), /training data: each example is \[10\], the model takes \[16\]/],
    [(m) => fitSll(m, [x, yIdx], { ...one, validationData: [x10, yIdx] }), /validation data: each example is \[10\], the model takes \[16\]/],
  ];
  for (const [call, message] of cases) {
    const model = denseModel();
    const before = tf.memory().numTensors;
    await assert.rejects(call(model), message);
    assert.equal(tf.memory().numTensors, before, `${message}: no tensor left behind`);
    model.dispose();
  }
  await assert.rejects(fitSll({} as tf.LayersModel, [x, yIdx], one), (e: Error) => e instanceof TypeError && /fitSll trains a tf.LayersModel \(tf.sequential\(...\), tf.model\(...\)\) or a HeadedNetwork/.test(e.message));
  // tfjs's sparse form [n, 1] trains as class indices.
  const sparse = await fitSll(denseModel(), [x, tf.reshape(yIdx, [n, 1])], one);
  assert.equal(sparse.params.batchSize, 32);
  await assert.rejects(evaluate(sparse.model, [x, yIdx], { enssemble: true } as EvaluateOptions), /enssemble is not an option here \(did you mean ensemble\?\)/);
  // A model trained further keeps its units and its heads' token pooling.
  await assert.rejects(fitSll(sparse.model, [x, yIdx], { ...one, unitLayers: 2 }), /unitLayers gives units of \[2\] layers, but this model's units hold \[1,1\]/);
  await assert.rejects(fitSll(sparse.model, [x, yIdx], { ...one, units: [2] }), /units gives units of \[2\] layers/);
  assert.equal((await fitSll(sparse.model, [x, yIdx], { ...one, units: [1, 1] })).model, sparse.model, 'the same grouping is accepted');
  disposeHeads(sparse.model);
  // The class count of a tf.data.Dataset with one-hot labels is read from one batch, once; tf.data batches have their own size.
  let started = 0;
  const counted = tf.data.generator(() => {
    started++;
    let i = 0;
    return { next: () => (i++ < 2 ? { value: { xs: tf.zeros([8, 16]), ys: tf.oneHot(tf.zeros([8], 'int32'), K) }, done: false } : { value: undefined, done: true }) };
  });
  const fromData = await fitSll(denseModel(), counted, { ...quick, epochs: 1 });
  assert.equal(started, 2, 'one peek, one epoch');
  assert.equal(fromData.params.batchSize, null);
  disposeHeads(fromData.model);
  tf.dispose([x, yIdx, y17, yNaN, x10, oh4, oh5, xs8, x16, y4]);
});

test('an image data set given to a trained model must be normalised as the model was', async () => {
  const pixels = new Uint8Array(64 * 8 * 8);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) % 256;
  const labels = Int32Array.from({ length: 64 }, (_, i) => i % K);
  const images = (mean: number) => makeDataset({ name: 'px', pixels, labels, shape: [8, 8, 1], numClasses: K, mean: [mean], std: [0.3] });
  const history = await fitSll(convModel(), images(0.4), { ...quick, epochs: 1 });
  assert.deepEqual(history.model.normalization?.mean, [0.4]);
  assert.equal((await evaluate(history.model, images(0.4))).examples, 64);
  const other = /the image data set is normalised with mean \[0.1\], std \[0.3\]; the model was trained with mean \[0.4\], std \[0.3\]/;
  await assert.rejects(evaluate(history.model, images(0.1)), other);
  await assert.rejects(fitSll(history.model, images(0.1), { ...quick, epochs: 1 }), other);
  await assert.rejects(fitSll(convModel(), images(0.4), { ...quick, epochs: 1, validationData: images(0.1) }), other);
  disposeHeads(history.model);
});
