/**
 * A full SLL-like training step (two dense relu layers, each with a fixed read-out, softmax cross-entropy,
 * tf.variableGrads over one layer at a time, Adam) on the native backend with NativeAdam against the cpu
 * backend with tfjs Adam; and no tensor leaks across steps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { NativeAdamOptimizer } from '../../src/native/adam.js';
import { assertClose, countAddonCalls, randomArray, requireNative, use } from './helpers.js';

const B = 32;
const DIMS = [48, 64, 40];
const K = 10;

interface Net {
  layers: tf.layers.Layer[];
  readouts: tf.Tensor2D[];
  optimizers: tf.Optimizer[];
  x: tf.Tensor2D;
  targets: tf.Tensor2D;
}

let netCount = 0;

function buildNet(kind: 'native' | 'tfjs'): Net {
  netCount++;
  const layers = DIMS.slice(1).map((units, i) => {
    const dense = tf.layers.dense({
      units,
      activation: 'relu',
      inputShape: [DIMS[i]],
      kernelInitializer: tf.initializers.heUniform({ seed: 11 + i }),
      biasInitializer: tf.initializers.constant({ value: 0.01 }),
      name: `step_test_${netCount}_dense${i}`,
    });
    dense.build([null, DIMS[i]]);
    return dense;
  });
  const readouts = DIMS.slice(1).map((d, i) => tf.tensor2d(randomArray(d * K, 50 + i, -0.3, 0.3), [d, K]));
  const optimizers = layers.map(() =>
    kind === 'native' ? new NativeAdamOptimizer(1e-3, 0.9, 0.999, 1e-8) : tf.train.adam(1e-3, 0.9, 0.999, 1e-8),
  );
  const x = tf.tensor2d(randomArray(B * DIMS[0], 7, 0, 1), [B, DIMS[0]]);
  const labels = tf.tensor1d(Array.from({ length: B }, (_, i) => (i * 7) % K), 'int32');
  const targets = tf.tidy(() => tf.oneHot(labels, K).toFloat()) as tf.Tensor2D;
  labels.dispose();
  return { layers, readouts, optimizers, x, targets };
}

function crossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar;
}

/** One layer-local step; returns each layer's loss. */
function step(net: Net): number[] {
  return tf.tidy(() => {
    let h: tf.Tensor = net.x;
    const losses: tf.Scalar[] = [];
    net.layers.forEach((layer, i) => {
      const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      let out!: tf.Tensor;
      const input = h;
      const { value, grads } = tf.variableGrads(() => {
        const hi = layer.apply(input) as tf.Tensor;
        out = tf.keep(hi);
        return crossEntropy(tf.matMul(hi, net.readouts[i]), net.targets);
      }, vars);
      net.optimizers[i].applyGradients(grads);
      tf.dispose(grads);
      losses.push(value);
      if (h !== net.x) h.dispose();
      h = out;
    });
    if (h !== net.x) h.dispose();
    return losses.map((l) => l.dataSync()[0]);
  });
}

function disposeNet(net: Net): void {
  net.layers.forEach((l) => l.weights.forEach((w) => w.dispose()));
  net.optimizers.forEach((o) => o.dispose());
  tf.dispose([...net.readouts, net.x, net.targets]);
}

async function train(backend: 'native' | 'cpu', kind: 'native' | 'tfjs', steps: number) {
  await use(backend);
  const net = buildNet(kind);
  const losses: number[][] = [];
  for (let s = 0; s < steps; s++) losses.push(step(net));
  const weights = net.layers.flatMap((l) => l.getWeights().map((w) => Float32Array.from(w.dataSync())));
  disposeNet(net);
  return { losses, weights };
}

test('a full SLL-like step (dense relu x2, read-outs, softmax CE, variableGrads, Adam) on native equals cpu', async () => {
  requireNative();
  const steps = 10;
  const cpu = await train('cpu', 'tfjs', steps);
  const native = await train('native', 'native', steps);
  for (let s = 0; s < steps; s++) assertClose(native.losses[s], cpu.losses[s], 1e-5, `losses of step ${s}`);
  assert.ok(native.losses[steps - 1][0] < native.losses[0][0], 'the first layer learns');
  // Adam normalises each gradient element, so a rounding difference in a near-zero gradient element can
  // move its weight by up to 2 lr; judged on the scale of each weight tensor.
  native.weights.forEach((w, i) => assertClose(w, cpu.weights[i], 1e-5, `weight ${i} after ${steps} steps`, 0.1));
});

test('the native step runs its GEMMs, elementwise ops and Adam natively', async () => {
  requireNative();
  await use('native');
  const net = buildNet('native');
  step(net);
  const { calls } = await countAddonCalls(() => step(net));
  disposeNet(net);
  // Per layer: forward GEMM, read-out GEMM, and the gradients of both (dW; the read-out's dh).
  assert.ok((calls.matmul ?? 0) >= 8, `matmul calls: ${calls.matmul}`);
  assert.equal(calls.adam, 4, 'one fused Adam call per variable');
  assert.ok((calls.binary ?? 0) > 0 && (calls.unary ?? 0) > 0 && (calls.reduce ?? 0) > 0, JSON.stringify(calls));
});

test('no tensor leaks: tf.memory().numTensors is flat across 20 native steps', async () => {
  requireNative();
  await use('native');
  const net = buildNet('native');
  step(net); // creates the optimizers' moments
  const before = tf.memory().numTensors;
  const bytesBefore = tf.memory().numBytes;
  for (let s = 0; s < 20; s++) {
    step(net);
    assert.equal(tf.memory().numTensors, before, `tensor count after step ${s + 1}`);
  }
  assert.equal(tf.memory().numBytes, bytesBefore);
  disposeNet(net);
});
