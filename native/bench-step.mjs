#!/usr/bin/env node
// Times one layer-local (SLL-style) training step of an MLP 784-1024-1024-1024, batch 128, K = 10 on the
// `native`, `wasm` and `cpu` tfjs backends: for each layer, forward dense + relu, a fixed random 1024 x 10
// read-out, softmax cross-entropy, tf.variableGrads over that layer's kernel and bias only, Adam
// (lr 1e-3, 0.9, 0.999, eps 1e-8). Median of --steps steps after --warmup warm-up steps.
//
//   npx tsc -p . && node native/build.mjs && node native/bench-step.mjs [--backends native,wasm,cpu]
//     [--steps 10] [--warmup 3] [--threads 1] [--batch 128] [--width 1024] [--profile]
//
// On `native` the optimizer is NativeAdamOptimizer (also timed with tfjs's Adam as `native+tfjs-adam`);
// on `wasm` and `cpu` it is tf.train.adam. `wasm` gets the project's transposed-matMul patch (useBackend).
// --profile prints the kernels of one step on each backend, by total time.
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../dist/src/backend.js';
import { registerNativeBackend, loadNativeAddon, setNativeThreads, nativeThreads } from '../dist/src/native/backend.js';
import { NativeAdamOptimizer } from '../dist/src/native/adam.js';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

const backends = String(arg('backends', 'native,wasm,cpu')).split(',');
const steps = Number(arg('steps', 10));
const warmup = Number(arg('warmup', 3));
const threads = Number(arg('threads', 1));
const batch = Number(arg('batch', 128));
const width = Number(arg('width', 1024));
const profile = arg('profile', false) !== false;
const K = 10;
const dims = [784, width, width, width];

function makeNet(seed) {
  const layers = [];
  for (let i = 0; i < 3; i++) {
    const dense = tf.layers.dense({
      units: dims[i + 1],
      activation: 'relu',
      inputShape: [dims[i]],
      kernelInitializer: tf.initializers.heUniform({ seed: seed + i }),
    });
    dense.build([null, dims[i]]);
    const readout = tf.randomNormal([dims[i + 1], K], 0, 1 / Math.sqrt(dims[i + 1]), 'float32', seed + 100 + i);
    layers.push({ dense, readout });
  }
  return layers;
}

function crossEntropy(logits, targets) {
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1)));
}

/** One layer-local step over the three layers; returns the summed loss (kept as a tensor). */
function step(net, optimizers, x, targets) {
  return tf.tidy(() => {
    let h = x;
    let total = tf.scalar(0);
    net.forEach(({ dense, readout }, i) => {
      const vars = dense.trainableWeights.map((w) => w.read());
      let out;
      const { value, grads } = tf.variableGrads(() => {
        const hi = dense.apply(h);
        out = tf.keep(hi);
        return crossEntropy(tf.matMul(hi, readout), targets);
      }, vars);
      optimizers[i].applyGradients(grads);
      tf.dispose(grads);
      total = tf.add(total, value);
      if (h !== x) h.dispose();
      h = out;
    });
    if (h !== x) h.dispose();
    return total;
  });
}

async function setBackend(name) {
  if (name === 'native') {
    if (!registerNativeBackend()) {
      const r = loadNativeAddon();
      throw new Error(r.ok ? 'native backend did not register' : r.reason);
    }
    await tf.setBackend('native');
    setNativeThreads(threads);
  } else {
    await useBackend(name);
  }
  if (tf.getBackend() !== name) throw new Error(`backend is ${tf.getBackend()}, wanted ${name}`);
}

async function run(label, backend, nativeAdam) {
  await setBackend(backend);
  const net = makeNet(1);
  const optimizers = net.map(() =>
    nativeAdam ? new NativeAdamOptimizer(1e-3, 0.9, 0.999, 1e-8) : tf.train.adam(1e-3, 0.9, 0.999, 1e-8),
  );
  const x = tf.randomUniform([batch, 784], 0, 1, 'float32', 7);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 7) % K), 'int32');
  const targets = tf.oneHot(labels, K).toFloat();
  for (let i = 0; i < warmup; i++) step(net, optimizers, x, targets).dispose();
  const before = tf.memory().numTensors;
  const times = [];
  let loss = 0;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const l = step(net, optimizers, x, targets);
    loss = l.dataSync()[0];
    times.push(performance.now() - t0);
    l.dispose();
  }
  const leaked = tf.memory().numTensors - before;
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const line = `${label.padEnd(18)} median ${median.toFixed(1).padStart(8)} ms/step   min ${times[0].toFixed(1).padStart(8)}   max ${times[times.length - 1].toFixed(1).padStart(8)}   loss ${loss.toFixed(4)}   leaked tensors ${leaked}`;
  console.log(line);
  if (profile) {
    const info = await tf.profile(() => step(net, optimizers, x, targets).dispose());
    const agg = new Map();
    for (const k of info.kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const a = agg.get(key) ?? { n: 0, ms: 0 };
      a.n++;
      a.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      agg.set(key, a);
    }
    const rows = [...agg.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, 15);
    const total = [...agg.values()].reduce((s, a) => s + a.ms, 0);
    console.log(`  profile: ${info.kernels.length} kernels, ${total.toFixed(1)} ms in kernels`);
    for (const [k, a] of rows) console.log(`  ${a.ms.toFixed(2).padStart(8)} ms ${String(a.n).padStart(4)}x ${k}`);
  }
  tf.dispose([x, labels, targets, ...net.map((l) => l.readout)]);
  net.forEach((l) => l.dense.weights.forEach((w) => w.dispose()));
  optimizers.forEach((o) => o.dispose());
  return median;
}

console.log(`MLP ${dims.join('-')}, batch ${batch}, K ${K}; median of ${steps} steps after ${warmup} warm-up`);
const results = {};
for (const b of backends) {
  if (b === 'native') {
    results.native = await run('native', 'native', true);
    console.log(`  (OpenBLAS threads: ${nativeThreads()})`);
    if (arg('tfjs-adam', false) !== false) results['native+tfjs-adam'] = await run('native+tfjs-adam', 'native', false);
  } else {
    results[b] = await run(b, b, false);
  }
}
console.log(JSON.stringify(results));
