/**
 * Batch normalisation on the native backend: the fused training kernels (forward with the batch statistics,
 * backward through them) against a float64 reference written out stage by stage, and against tfjs-layers'
 * BatchNormalization on cpu (output, gradients, moving statistics); the inference kernel (tfjs's
 * FusedBatchNorm); the same bits at 1 and 2 threads; no tensors left behind by a training step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { applyFused } from '../../src/models/fused-layers.js';
import { nativeAddon, setNativeThreads } from '../../src/native/backend.js';
import { resolveOptions } from '../../src/recipe/options.js';
import { buildModel, makeTrainer } from '../../src/recipe/run.js';
import { disposeHeaded } from '../../src/train/model.js';
import { assertCloseNorm, countAddonCalls, randomArray, use } from './helpers.js';

/**
 * Batch norm of x [rows, cols] over its rows in float64, and the gradient of sum(y * w) by the chain rule
 * through each stage (xhat, then variance, then mean), as a textbook derivation writes it.
 */
function reference(x: Float32Array, gamma: Float32Array, beta: Float32Array, w: Float32Array, rows: number, cols: number, eps: number) {
  const y = new Float64Array(rows * cols);
  const dx = new Float64Array(rows * cols);
  const mean = new Float64Array(cols);
  const variance = new Float64Array(cols);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  for (let j = 0; j < cols; j++) {
    let m = 0;
    for (let r = 0; r < rows; r++) m += x[r * cols + j];
    m /= rows;
    let v = 0;
    for (let r = 0; r < rows; r++) v += (x[r * cols + j] - m) ** 2;
    v /= rows;
    mean[j] = m;
    variance[j] = v;
    const sd = Math.sqrt(v + eps);
    const xhat = (r: number) => (x[r * cols + j] - m) / sd;
    for (let r = 0; r < rows; r++) y[r * cols + j] = xhat(r) * gamma[j] + beta[j];
    // dL/dy = w. dL/dxhat = w gamma; dL/dvar = sum dxhat (x - m) (-1/2) (v + eps)^(-3/2);
    // dL/dmean = sum -dxhat / sd + dvar * mean(-2 (x - m)); dx = dxhat / sd + dvar 2 (x - m) / n + dmean / n.
    let dvar = 0;
    let dmean = 0;
    let sumCentered = 0;
    for (let r = 0; r < rows; r++) {
      const i = r * cols + j;
      dgamma[j] += w[i] * xhat(r);
      dbeta[j] += w[i];
      dvar += w[i] * gamma[j] * (x[i] - m) * -0.5 * (v + eps) ** -1.5;
      dmean += (-w[i] * gamma[j]) / sd;
      sumCentered += x[i] - m;
    }
    dmean += (dvar * -2 * sumCentered) / rows;
    for (let r = 0; r < rows; r++) {
      const i = r * cols + j;
      dx[i] = (w[i] * gamma[j]) / sd + (dvar * 2 * (x[i] - m)) / rows + dmean / rows;
    }
  }
  return { y, mean, variance, dx, dgamma, dbeta };
}

/** A built BatchNormalization layer over the last axis of `shape`, with seeded gamma and beta. */
function bnLayer(shape: number[], momentum = 0.9, epsilon = 1e-3): { layer: tf.layers.Layer; gamma: Float32Array; beta: Float32Array } {
  const layer = tf.layers.batchNormalization({ momentum, epsilon });
  layer.build(shape);
  const cols = shape[shape.length - 1];
  const gamma = randomArray(cols, 21, 0.5, 1.5);
  const beta = randomArray(cols, 22, -0.5, 0.5);
  const movingMean = randomArray(cols, 23, -0.2, 0.2);
  const movingVariance = randomArray(cols, 24, 0.5, 2);
  layer.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), tf.tensor1d(movingMean), tf.tensor1d(movingVariance)]);
  return { layer, gamma, beta };
}

interface TrainingRun {
  y: Float32Array;
  dx: Float32Array;
  dgamma: Float32Array;
  dbeta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
}

/** One training-mode application of a fresh layer and the gradients of sum(y * w): fused or as tfjs-layers. */
async function trainingRun(shape: number[], xv: Float32Array, w: Float32Array, fused: boolean): Promise<TrainingRun> {
  const { layer } = bnLayer(shape);
  const x = tf.variable(tf.tensor(xv, shape));
  const [g, b] = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  let y!: tf.Tensor;
  const { grads } = tf.variableGrads(() => {
    const out = fused ? applyFused(layer, x, true) : (layer.apply(x, { training: true }) as tf.Tensor);
    assert.ok(out != null, 'the fused path applies');
    y = tf.keep(out);
    return tf.sum(tf.mul(out, tf.tensor(w, shape))) as tf.Scalar;
  }, [x, g, b]);
  const weights = layer.getWeights();
  const read = async (t: tf.Tensor) => Float32Array.from(await t.data());
  const run = {
    y: await read(y),
    dx: await read(grads[x.name]),
    dgamma: await read(grads[g.name]),
    dbeta: await read(grads[b.name]),
    movingMean: await read(weights[2]),
    movingVariance: await read(weights[3]),
  };
  tf.dispose([y, x, ...Object.values(grads)]);
  layer.weights.forEach((v) => v.dispose());
  return run;
}

const SHAPES: number[][] = [
  [4, 5, 5, 6],
  [3, 7, 2], // rank 3: a token axis
  [300, 9], // more rows than one block of the native kernel
];

for (const shape of SHAPES) {
  test(`native batch norm in training [${shape}]: output and gradients match float64, tfjs-layers on cpu, moving statistics too`, async () => {
    const n = shape.reduce((a, b) => a * b, 1);
    const cols = shape[shape.length - 1];
    // An offset of 3: the batch mean is far from 0, as after a conv with bias.
    const xv = randomArray(n, 5, 2, 4);
    const w = randomArray(n, 6);
    await use('cpu');
    const want = await trainingRun(shape, xv, w, false);
    await use('native');
    const { result: got, calls } = await countAddonCalls(() => trainingRun(shape, xv, w, true));
    assert.equal(calls.batchNormTrain, 1, 'the forward pass is one native call');
    assert.equal(calls.batchNormTrainGrad, 1, 'the backward pass is one native call');
    const { gamma, beta } = bnLayer(shape);
    const ref = reference(xv, gamma, beta, w, n / cols, cols, 1e-3);
    const f32 = (a: Float64Array) => Float32Array.from(a);
    assertCloseNorm(got.y, f32(ref.y), 1e-5, 'y vs float64');
    assertCloseNorm(got.dx, f32(ref.dx), 1e-4, 'dx vs float64');
    assertCloseNorm(got.dgamma, f32(ref.dgamma), 1e-5, 'dgamma vs float64');
    assertCloseNorm(got.dbeta, f32(ref.dbeta), 1e-5, 'dbeta vs float64');
    for (const k of ['y', 'dx', 'dgamma', 'dbeta', 'movingMean', 'movingVariance'] as const) {
      assertCloseNorm(got[k], want[k], 1e-4, `${k} vs tfjs-layers on cpu`);
    }
    // moving = 0.9 moving + 0.1 batch statistic.
    const m0 = randomArray(cols, 23, -0.2, 0.2);
    const v0 = randomArray(cols, 24, 0.5, 2);
    assertCloseNorm(got.movingMean, Float32Array.from(m0, (m, j) => 0.9 * m + 0.1 * ref.mean[j]), 1e-6, 'moving mean');
    assertCloseNorm(got.movingVariance, Float32Array.from(v0, (v, j) => 0.9 * v + 0.1 * ref.variance[j]), 1e-6, 'moving variance');
  });
}

test('batch norm outside training, or over another axis, is left to tfjs-layers', async () => {
  await use('native');
  const { layer } = bnLayer([2, 3, 4]);
  const x = tf.ones([2, 3, 4]);
  assert.equal(applyFused(layer, x, false), null, 'inference runs the layer (FusedBatchNorm)');
  const other = tf.layers.batchNormalization({ axis: 1 });
  other.build([2, 3, 4]);
  assert.equal(applyFused(other, x, true), null, 'axis 1 of 3 is not fused');
  tf.dispose(x);
  [...layer.weights, ...other.weights].forEach((v) => v.dispose());
});

test('native FusedBatchNorm (inference) matches cpu, per-channel and broadcast statistics alike', async () => {
  const shape = [3, 4, 4, 5];
  const n = shape.reduce((a, b) => a * b, 1);
  const cases: { name: string; stat: number[]; affine: boolean }[] = [
    { name: 'per channel [5], scale and offset', stat: [5], affine: true },
    { name: 'per channel [1,1,1,5], no scale or offset', stat: [1, 1, 1, 5], affine: false },
    { name: 'broadcast over [4,1,5] (cpu fallback)', stat: [4, 1, 5], affine: true },
  ];
  for (const c of cases) {
    const size = c.stat.reduce((a, b) => a * b, 1);
    const run = async () => {
      const t = (seed: number, lo: number, hi: number) => tf.tensor(randomArray(size, seed, lo, hi), c.stat);
      const x = tf.tensor(randomArray(n, 1, -2, 2), shape);
      const [m, v, s, o] = [t(2, -1, 1), t(3, 0.2, 2), t(4, 0.5, 1.5), t(5, -1, 1)];
      const y = tf.batchNorm(x, m, v, c.affine ? o : undefined, c.affine ? s : undefined, 1e-3);
      const out = Float32Array.from(await y.data());
      tf.dispose([x, m, v, s, o, y]);
      return out;
    };
    await use('cpu');
    const want = await run();
    await use('native');
    const { result: got, calls } = await countAddonCalls(run);
    assert.equal(calls.batchNormInfer ?? 0, c.stat.length === 3 ? 0 : 1, `${c.name}: native call count`);
    assertCloseNorm(got, want, 1e-6, c.name);
  }
});

test('the batch-norm kernels give the same bits at 1 and 2 threads', async () => {
  await use('native');
  const addon = nativeAddon();
  const rows = 5000;
  const cols = 40;
  const x = randomArray(rows * cols, 1, -3, 5);
  const dy = randomArray(rows * cols, 2);
  const gamma = randomArray(cols, 3, 0.5, 1.5);
  const beta = randomArray(cols, 4);
  const run = (threads: number) => {
    setNativeThreads(threads);
    const out = {
      y: new Float32Array(rows * cols),
      mean: new Float32Array(cols),
      variance: new Float32Array(cols),
      dx: new Float32Array(rows * cols),
      dgamma: new Float32Array(cols),
      dbeta: new Float32Array(cols),
    };
    addon.batchNormTrain(x, gamma, beta, out.y, out.mean, out.variance, rows, cols, 1e-3);
    addon.batchNormTrainGrad(dy, x, gamma, out.mean, out.variance, out.dx, out.dgamma, out.dbeta, rows, cols, 1e-3);
    return out;
  };
  const one = run(1);
  const two = run(2);
  setNativeThreads(1);
  for (const k of Object.keys(one) as (keyof typeof one)[]) assert.deepEqual(two[k], one[k], k);
});

test('SLL steps of a batch-norm conv network on native: fused kernels, tensor count flat, moving statistics move', async () => {
  await use('native');
  const o = resolveOptions({ model: 'convstack', layers: 2, width: 6, batchNorm: true, batchSize: 8, cropPadding: 0, backend: 'native' });
  const model = buildModel(o, [8, 8, 3], 4);
  const trainer = makeTrainer(model, o);
  trainer.setEpoch(0);
  const x = tf.tensor(randomArray(8 * 8 * 8 * 3, 9), [8, 8, 8, 3]);
  const y = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32');
  const bn = model.network.units[0].layers.find((l) => l.getClassName() === 'BatchNormalization')!;
  const before = Float32Array.from(bn.getWeights()[2].dataSync());
  const counts: number[] = [];
  for (let step = 0; step < 6; step++) {
    const { calls } = await countAddonCalls(async () => trainer.step(x, y, step).dispose());
    assert.equal(calls.batchNormTrain, 2, 'one fused forward per batch-norm layer');
    assert.equal(calls.batchNormTrainGrad, 2, 'one fused backward per batch-norm layer');
    counts.push(tf.memory().numTensors);
  }
  assert.ok(counts.slice(2).every((c) => c === counts[1]), `tensor count flat across steps: ${counts}`);
  const after = Float32Array.from(bn.getWeights()[2].dataSync());
  assert.ok(after.some((v, j) => v !== before[j]), 'the moving mean moved');
  trainer.dispose();
  tf.dispose([x, y]);
  disposeHeaded(model);
});

test('the batch-norm bindings refuse arrays shorter than rows x cols and arrays of the wrong type', async () => {
  await use('native');
  const addon = nativeAddon();
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => addon.batchNormTrain(f(12), f(4), f(4), f(11), f(4), f(4), 3, 4, 1e-3), /batchNormTrain: y out of bounds/);
  assert.throws(() => addon.batchNormTrainGrad(f(12), f(12), f(3), f(4), f(4), f(12), f(4), f(4), 3, 4, 1e-3), /gamma out of bounds/);
  assert.throws(() => addon.batchNormInfer(f(12), f(4), f(4), new Float64Array(4) as unknown as Float32Array, null, f(12), 3, 4, 1e-3), /argument 3 must be a Float32Array/);
  // gamma and beta may be null: y = (x - mean) / sqrt(var + eps).
  const y = f(2);
  addon.batchNormInfer(Float32Array.of(3, 5), Float32Array.of(1, 1), Float32Array.of(4, 0.25), null, null, y, 1, 2, 0);
  assert.deepEqual(Array.from(y), [1, 8]);
});
