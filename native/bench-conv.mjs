#!/usr/bin/env node
// Times one SLL conv-unit training step on the `native` and `wasm` tfjs backends (and PyTorch, when
// /usr/bin/python3 has torch, through native/bench-conv-torch.py, interleaved for a same-run comparison):
//   x 64x32x32x64 (NHWC), tf.layers.conv2d 3x3 64->64 'same' + ReLU, average pooling to 2x2 (16x16 windows),
//   flatten to 256, a fixed 256x10 projection, softmax cross-entropy + Bhattacharyya alignment to fixed
//   parent logits, tf.variableGrads over the conv kernel and bias, Adam (lr 1e-3, eps 1e-8):
//   NativeAdamOptimizer on native, tf.train.adam on wasm.
// Prints the median ms/step of each engine at each BLAS thread count (wasm is single-threaded in Node).
//
//   npx tsc -p . && node native/build.mjs && node native/bench-conv.mjs [--threads 1,2] [--steps 8]
//     [--warmup 2] [--rounds 2] [--backends native,wasm,torch] [--batch 64] [--profile]
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../dist/src/backend.js';
import { nativeThreads, setNativeThreads } from '../dist/src/native/backend.js';
import { NativeAdamOptimizer } from '../dist/src/native/adam.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

const threadCounts = String(arg('threads', '1,2')).split(',').map(Number);
const steps = Number(arg('steps', 8));
const warmup = Number(arg('warmup', 2));
const rounds = Number(arg('rounds', 2));
const backends = String(arg('backends', 'native,wasm,torch')).split(',');
const batch = Number(arg('batch', 64));
const profile = arg('profile', false) !== false;
const [H, W, C, K] = [32, 32, 64, 10];

function makeUnit() {
  const conv = tf.layers.conv2d({
    filters: C,
    kernelSize: 3,
    padding: 'same',
    activation: 'relu',
    kernelInitializer: tf.initializers.heUniform({ seed: 1 }),
  });
  conv.build([null, H, W, C]);
  const projection = tf.randomNormal([4 * C, K], 0, 1 / 16, 'float32', 2);
  const x = tf.randomUniform([batch, H, W, C], 0, 1, 'float32', 3);
  const parent = tf.randomNormal([batch, K], 0, 1, 'float32', 4);
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 7) % K), 'int32');
  const targets = tf.oneHot(labels, K).toFloat();
  labels.dispose();
  return { conv, projection, x, parent, targets };
}

function disposeUnit(u) {
  u.conv.weights.forEach((w) => w.dispose());
  tf.dispose([u.projection, u.x, u.parent, u.targets]);
}

/** One step; returns the loss tensor. */
function step(u, optimizer) {
  return tf.tidy(() => {
    const vars = u.conv.trainableWeights.map((w) => w.read());
    const { value, grads } = tf.variableGrads(() => {
      const h = u.conv.apply(u.x);
      const pooled = tf.avgPool(h, [16, 16], [16, 16], 'valid').reshape([batch, 4 * C]);
      const v = tf.matMul(pooled, u.projection);
      const logq = tf.logSoftmax(v);
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(u.targets, logq), 1)));
      const bc = tf.neg(tf.mean(tf.logSumExp(tf.mul(tf.add(logq, tf.logSoftmax(u.parent)), 0.5), 1)));
      return tf.add(ce, bc);
    }, vars);
    optimizer.applyGradients(grads);
    return value;
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeTfjs(backend, threads) {
  await useBackend(backend, backend === 'native' ? threads : null);
  if (backend === 'native') setNativeThreads(threads);
  const u = makeUnit();
  const optimizer = backend === 'native' ? new NativeAdamOptimizer(1e-3, 0.9, 0.999, 1e-8) : tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  for (let i = 0; i < warmup; i++) step(u, optimizer).dispose();
  const before = tf.memory().numTensors;
  const times = [];
  let loss = 0;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const l = step(u, optimizer);
    loss = l.dataSync()[0];
    times.push(performance.now() - t0);
    l.dispose();
  }
  const leaked = tf.memory().numTensors - before;
  if (profile) {
    const info = await tf.profile(() => step(u, optimizer).dispose());
    const agg = new Map();
    for (const k of info.kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const a = agg.get(key) ?? { n: 0, ms: 0 };
      a.n++;
      a.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      agg.set(key, a);
    }
    const total = [...agg.values()].reduce((s, a) => s + a.ms, 0);
    console.log(`  profile (${backend}, ${threads} threads): ${info.kernels.length} kernels, ${total.toFixed(1)} ms in kernels`);
    for (const [k, a] of [...agg.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, 14)) {
      console.log(`  ${a.ms.toFixed(2).padStart(8)} ms ${String(a.n).padStart(4)}x ${k}`);
    }
  }
  optimizer.dispose();
  disposeUnit(u);
  return { ms: median(times), min: Math.min(...times), loss, leaked };
}

function timeTorch(threads) {
  const r = spawnSync('/usr/bin/python3', [path.join(here, 'bench-conv-torch.py'), '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup), '--batch', String(batch), '--channels-last'], { encoding: 'utf8' });
  const m = /median ([\d.]+) ms\/step \(min ([\d.]+)\)/.exec(r.stdout ?? '');
  if (r.status !== 0 || m == null) return null;
  return { ms: Number(m[1]), min: Number(m[2]) };
}

console.log(`conv unit step: x ${batch}x${H}x${W}x${C}, conv3x3 ${C}->${C} same + relu, avgPool to 2x2, 256 -> ${K}, CE + BC, Adam; ` +
  `median of ${steps} steps after ${warmup} warm-up, ${rounds} interleaved rounds`);
const results = {};
const record = (key, r) => (results[key] ??= []).push(r);
let torchOk = backends.includes('torch');
for (let round = 0; round < rounds; round++) {
  for (const t of threadCounts) {
    if (backends.includes('native')) {
      const r = await timeTfjs('native', t);
      record(`native/${t}`, r);
      console.log(`round ${round + 1}  native  ${t} thread(s) (OpenBLAS ${nativeThreads()}): ${r.ms.toFixed(1)} ms/step (min ${r.min.toFixed(1)}), loss ${r.loss.toFixed(4)}, leaked ${r.leaked}`);
    }
    if (torchOk) {
      const r = timeTorch(t);
      if (r == null) {
        console.log('PyTorch not available (/usr/bin/python3 with torch); skipping it');
        torchOk = false;
      } else {
        record(`torch/${t}`, r);
        console.log(`round ${round + 1}  pytorch ${t} thread(s): ${r.ms.toFixed(1)} ms/step (min ${r.min.toFixed(1)})`);
      }
    }
  }
  if (backends.includes('wasm')) {
    const r = await timeTfjs('wasm', 1);
    record('wasm/1', r);
    console.log(`round ${round + 1}  wasm    1 thread: ${r.ms.toFixed(1)} ms/step (min ${r.min.toFixed(1)}), loss ${r.loss.toFixed(4)}, leaked ${r.leaked}`);
  }
}
const summary = Object.fromEntries(Object.entries(results).map(([k, rs]) => [k, Number(median(rs.map((r) => r.ms)).toFixed(1))]));
console.log('median over rounds (ms/step):', JSON.stringify(summary));
for (const t of threadCounts) {
  if (summary[`native/${t}`] && summary[`torch/${t}`]) {
    console.log(`native / pytorch at ${t} thread(s): ${(summary[`native/${t}`] / summary[`torch/${t}`]).toFixed(2)}x`);
  }
}
