/**
 * The `webgpu` backend against the `cpu` one. Without a GPU these run on SwiftShader (Debian's chromium),
 * which installWebGpu falls back to when no Vulkan driver is named. They skip only with a printed reason,
 * and never under CI (CI=true), where a missing adapter fails them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { SWIFTSHADER_ICD, installWebGpu, type GpuAdapterDescription } from '../../src/gpu/webgpu-node.js';
import { loadModel, saveModel } from '../../src/io/model-files.js';
import { networkVariables, unitVariables } from '../../src/models/network.js';
import { unitLoss } from '../../src/objectives/unit-loss.js';
import type { OptimizerState } from '../../src/train/optimizers.js';
import { batch, fitSmall, randomImages, smallModel, trainerOf } from '../train/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The adapter, or why there is none (then every test below but the last skips, or fails under CI). */
async function adapterOrReason(): Promise<{ adapter: GpuAdapterDescription } | { reason: string }> {
  try {
    const { adapter } = await installWebGpu({ swiftShader: true });
    await useBackend('webgpu');
    return { adapter };
  } catch (e) {
    return { reason: (e as Error).message };
  }
}
const found = await adapterOrReason();
const skip = 'reason' in found ? `no WebGPU adapter: ${found.reason}` : false;
if (skip && process.env.CI === 'true') throw new Error(`CI must run the WebGPU tests; ${skip}`);
if (skip) console.log(`# skipping the WebGPU tests: ${skip}`);

/** max |a - b| / max |b|: the error relative to the reference's scale. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

/** Runs `f` on `backend` and reads every tensor it returns (asynchronously: webgpu cannot read synchronously in Node). */
async function on(backend: 'webgpu' | 'cpu', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await useBackend(backend);
  const out = tf.tidy(f);
  const values = await Promise.all(out.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(out);
  return values;
}

test('webgpu runs on the adapter Dawn found (SwiftShader when no driver is named and it is installed)', { skip }, async () => {
  const { adapter } = found as { adapter: GpuAdapterDescription };
  assert.equal(tf.getBackend(), 'webgpu');
  assert.ok(adapter.vendor || adapter.device || adapter.description, 'the adapter describes itself');
  if (process.env.VK_DRIVER_FILES === SWIFTSHADER_ICD) assert.equal(adapter.architecture, 'swiftshader');
  const [sum] = await on('webgpu', () => [tf.sum(tf.range(0, 100))]);
  assert.equal(sum[0], 4950);
});

test('matmul (every transpose), relu, softmax, logSoftmax, the unit loss and its gradient on webgpu match cpu within 1e-4 relative', { skip }, async () => {
  const ops = (): tf.Tensor[] => {
    const a = tf.randomNormal([33, 70], 0, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomNormal([70, 45], 0, 1, 'float32', 2) as tf.Tensor2D;
    const v = tf.randomNormal([16, 10], 0, 3, 'float32', 3) as tf.Tensor2D;
    const parent = tf.randomNormal([16, 10], 0, 3, 'float32', 4) as tf.Tensor2D;
    const targets = tf.oneHot(tf.tensor1d(Array.from({ length: 16 }, (_, i) => (i * 3) % 10), 'int32'), 10).toFloat() as tf.Tensor2D;
    const loss = (logits: tf.Tensor2D) => unitLoss(logits, targets, parent, 0.7).total;
    const { value, grad } = tf.valueAndGrad(loss)(v);
    const parts = unitLoss(v, targets, parent, 0.7);
    return [
      tf.matMul(a, b),
      tf.matMul(a.transpose(), b, true, false),
      tf.matMul(a, b.transpose(), false, true),
      tf.matMul(a.transpose(), b.transpose(), true, true),
      tf.relu(a),
      tf.softmax(v),
      tf.logSoftmax(v),
      parts.prediction,
      parts.alignment,
      value,
      grad,
    ];
  };
  const gpu = await on('webgpu', ops);
  const cpu = await on('cpu', ops);
  const names = ['matmul', 'matmul ta', 'matmul tb', 'matmul ta tb', 'relu', 'softmax', 'logSoftmax', 'prediction loss', 'alignment loss', 'unit loss', 'unit loss gradient'];
  gpu.forEach((g, i) => assert.ok(relativeError(g, cpu[i]) <= 1e-4, `${names[i]}: relative error ${relativeError(g, cpu[i])}`));
});

/** A ViT of 3 units (patches of 3 x 3, 2 heads, width 8): attention's batched products, and Dense on tokens. */
const VIT = { model: 'vit', layers: 3, width: 8, heads: 2, patchSize: 3, firstParent: 'none' } as const;

/**
 * `steps` steps of a small 3-unit model (an MLP, or `VIT`; Adam; SLL with keep 0.5, or BP) on `backend`:
 * each step's stats and the final weights.
 */
async function trainSteps(backend: 'webgpu' | 'cpu', steps: number, method: 'sll' | 'bp', vit = false): Promise<{ stats: Float32Array[]; weights: Float32Array[]; names: string[] }> {
  await useBackend(backend);
  const m = smallModel({ layers: 3, width: 24, keep: 0.5, batchSize: 16, method, ...(vit ? VIT : {}) });
  const trainer = trainerOf(m);
  trainer.setEpoch(0);
  const stats: Float32Array[] = [];
  for (let step = 0; step < steps; step++) {
    // batch(0) would not be reproducible: tfjs draws an unseeded normal for seed 0.
    const { x, labels } = batch(step + 1);
    const s = trainer.step(x, labels, step);
    stats.push(Float32Array.from(await s.data()));
    tf.dispose([s, x, labels]);
  }
  const variables = networkVariables(m.model.network);
  const weights = await Promise.all(variables.map(async (v) => Float32Array.from(await v.data())));
  trainer.dispose();
  return { stats, weights, names: variables.map((v) => v.name) };
}

for (const method of ['sll', 'bp'] as const) {
  test(`20 ${method === 'sll' ? 'SLL steps of an MLP (Adam, Bernoulli masks)' : 'BP steps of an MLP (Adam)'} on webgpu match cpu from the same seed within 1e-4 relative`, { skip }, async () => {
    const steps = 20;
    const gpu = await trainSteps('webgpu', steps, method);
    const cpu = await trainSteps('cpu', steps, method);
    assert.equal(gpu.weights.length, method === 'sll' ? 6 : 8);
    gpu.stats.forEach((s, step) => assert.ok(relativeError(s, cpu.stats[step]) <= 1e-4, `step ${step} stats: relative error ${relativeError(s, cpu.stats[step])}`));
    gpu.weights.forEach((w, i) => assert.ok(relativeError(w, cpu.weights[i]) <= 1e-4, `weight ${i} after ${steps} steps: relative error ${relativeError(w, cpu.weights[i])}`));
  });
}

test('10 SLL steps of a ViT (SLL^1+, Adam, Bernoulli masks) on webgpu match cpu from the same seed within 1e-4 relative', { skip }, async () => {
  const steps = 10;
  const gpu = await trainSteps('webgpu', steps, 'sll', true);
  const cpu = await trainSteps('cpu', steps, 'sll', true);
  gpu.stats.forEach((s, step) => assert.ok(relativeError(s, cpu.stats[step]) <= 1e-4, `step ${step} stats: relative error ${relativeError(s, cpu.stats[step])}`));
  // Not the keys' bias: its gradient is 0 in exact arithmetic (adding q . b_k to every score of a query
  // leaves the softmax as it is), so what Adam makes of it is each backend's rounding noise.
  const compared = gpu.names.filter((n) => !n.endsWith('k_bias'));
  assert.ok(compared.length >= 3 * 12, gpu.names.join(' '));
  gpu.weights.forEach((w, i) => {
    if (!compared.includes(gpu.names[i])) return;
    assert.ok(relativeError(w, cpu.weights[i]) <= 1e-4, `${gpu.names[i]} after ${steps} steps: relative error ${relativeError(w, cpu.weights[i])}`);
  });
});

test('the tensor count stays flat over 50 SLL steps on webgpu', { skip }, async () => {
  await useBackend('webgpu');
  const m = smallModel({ layers: 3, width: 16, batchSize: 16 });
  const trainer = trainerOf(m);
  trainer.setEpoch(0);
  const { x, labels } = batch(1);
  const counts: number[] = [];
  for (let step = 0; step < 50; step++) {
    const s = trainer.step(x, labels, step);
    await s.data();
    s.dispose();
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(new Set(counts.slice(1)), new Set([counts[1]]), `tensors after each step: ${counts.join(' ')}`);
  trainer.dispose();
  tf.dispose([x, labels]);
});

test('the fit loop (per-step stats, divergence guard, checkpoints) and saving work on webgpu, where nothing can be read synchronously', { skip }, async () => {
  await useBackend('webgpu');
  const m = smallModel({ layers: 2, width: 16, batchSize: 16, epochs: 1 });
  const checkpoints: OptimizerState[][] = [];
  const result = await fitSmall(m, { train: randomImages(48, 1), test: randomImages(16, 2) }, { onCheckpoint: async (_s, optimizers) => void checkpoints.push(optimizers) }, { checkpointEvery: 2 });
  assert.equal(result.epochs, 1);
  assert.ok(result.metrics.every((u) => Number.isFinite(u.loss)), JSON.stringify(result.metrics));
  assert.ok(checkpoints.length >= 2, `checkpoints: ${checkpoints.length}`);
  assert.ok(checkpoints.at(-1)!.every((o) => o.iterations === 3 && o.slots.length > 0));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-webgpu-'));
  try {
    await saveModel(dir, m.model);
    const loaded = await loadModel(dir);
    const [a, b] = [m.model, loaded].map((h) => h.network.units.flatMap((u) => unitVariables(u)));
    for (const [i, v] of a.entries()) assert.deepEqual(await b[i].data(), await v.data(), `weight ${i} saved and reloaded`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with no Vulkan driver, --backend webgpu exits 2 naming the loader, the driver and SwiftShader', () => {
  const main = path.join(here, '..', '..', 'src', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [main, 'train', '--backend', 'webgpu', '--train-limit', '64', '--epochs', '1', '--width', '8'], {
    encoding: 'utf8',
    env: { ...process.env, VK_DRIVER_FILES: '/nonexistent', VK_ICD_FILENAMES: '/nonexistent' },
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /backend 'webgpu' is unavailable: WebGPU found no GPU adapter/);
  assert.match(r.stderr, /Vulkan loader/);
  assert.match(r.stderr, /VK_DRIVER_FILES=\/nonexistent gave none/);
  assert.match(r.stderr, /NVIDIA.*VK_DRIVER_FILES/s);
  assert.match(r.stderr, new RegExp(`SwiftShader.*${SWIFTSHADER_ICD}`));
});

test("bench:gpu --count: the SLL MLP step (3 units) within the issue's budget, and BP's", { skip }, () => {
  // Width 64 for SwiftShader's sake: the counts do not depend on it. 20 warm-up steps: a read's worth and more.
  const bench = path.join(here, '..', '..', 'bench', 'gpu.js');
  const args = [bench, '--count', '--json', '--engines', 'sll', '--batches', '16', '--width', '64', '--steps', '32', '--warmup', '20'];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(rows.length, 2, r.stdout);
  for (const row of rows) {
    const what = JSON.stringify(row);
    assert.ok(row.dispatches_per_step <= 40, `at most 40 dispatches a step: ${what}`);
    assert.equal(row.uploads_per_step, 0, `no tensor-data upload: ${what}`);
    assert.ok(row.uniform_writes_per_step <= row.dispatches_per_step, `no more uniform writes than dispatches: ${what}`);
    // One read of the stats at the logging point, every read_every (16) steps: none in between.
    assert.equal(row.read_every, 16, what);
    assert.ok(Math.round(row.readbacks_per_step * 16) <= 1, `no readback between logging points: ${what}`);
    // Each step gets the same buffers as the one before (its work submitted at its end), so its dispatches find
    // their bind groups again; submitted elsewhere in the step, nearly every dispatch made a new one.
    assert.ok(row.bind_groups_per_step < 1, `fewer than one new bind group a step: ${what}`);
  }
});
