/**
 * The fused WebGPU unit loss (src/gpu/unit-loss.ts): loss, stats row and gradient against eq. (5) written
 * here in float64, and against the tfjs ops on the cpu backend. On SwiftShader without a GPU; skips only with
 * a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { webGpuUnitLossStats } from '../../src/gpu/unit-loss.js';
import { unitLossStats } from '../../src/objectives/unit-loss.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU unit-loss tests');

/** Eq. (5) and its gradient in float64: [prediction, alignment, total, correct] and dL/dv. */
function reference(v: number[][], labels: number[], parent: number[][] | null, lambda: number): { stats: number[]; grad: number[][] } {
  const B = v.length;
  const logSoftmax = (row: number[]) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
    return row.map((x) => x - lse);
  };
  let ce = 0;
  let align = 0;
  let correct = 0;
  const grad = v.map((row, b) => {
    const lp = logSoftmax(row);
    const p = lp.map(Math.exp);
    ce -= lp[labels[b]];
    if (row.indexOf(Math.max(...row)) === labels[b]) correct++;
    let g = p.map((pk, k) => pk - (k === labels[b] ? 1 : 0));
    if (parent && lambda !== 0) {
      const q = logSoftmax(parent[b]).map(Math.exp);
      const bc = p.reduce((s, pk, k) => s + Math.sqrt(pk * q[k]), 0);
      align -= Math.log(bc);
      g = g.map((gk, k) => gk + (lambda * (p[k] - Math.sqrt(p[k] * q[k]) / bc)) / 2);
    }
    return g.map((x) => x / B);
  });
  const prediction = ce / B;
  const alignment = parent && lambda !== 0 ? align / B : 0;
  return { stats: [prediction, alignment, prediction + lambda * alignment, correct], grad };
}

function close(got: ArrayLike<number>, want: number[], what: string, tol = 2e-5): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

for (const [B, withParent, lambda] of [[37, true, 0.7], [300, true, 1], [300, false, 1], [16, true, 0]] as const) {
  test(`fused unit loss, B=${B}, ${withParent ? 'with' : 'without'} parent, lambda ${lambda}: values, stats and gradient match float64 and the tfjs ops`, { skip }, async () => {
    const K = 10;
    const v = Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => 3 * Math.sin(1.7 * b + 0.9 * k)));
    const parent = withParent ? Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => 2 * Math.cos(0.6 * b - 1.1 * k))) : null;
    const labels = Array.from({ length: B }, (_, b) => (b * 7 + 3) % K);
    const want = reference(v, labels, parent, lambda);

    const run = async (fn: typeof unitLossStats) => {
      const vt = tf.tensor2d(v);
      const lt = tf.tensor1d(labels, 'int32');
      const pt = parent ? tf.tensor2d(parent) : null;
      let stats!: tf.Tensor1D;
      const g = tf.grad((x: tf.Tensor) => {
        const out = fn(x as tf.Tensor2D, lt, pt as tf.Tensor2D | null, lambda);
        stats = out.stats;
        return out.total;
      })(vt);
      const result = { stats: await stats.data(), grad: await g.data() };
      tf.dispose([vt, lt, g, stats, ...(pt ? [pt] : [])]);
      return result;
    };

    await useBackend('webgpu');
    const before = dispatches();
    const gpu = await run(webGpuUnitLossStats);
    // The loss, its stats and its gradient: one dispatch; the backward pass scales it by dy: one more.
    assert.ok(dispatches() - before <= 2, `${dispatches() - before} dispatches`);
    close(gpu.stats, want.stats, 'webgpu stats');
    close(gpu.grad, want.grad.flat(), 'webgpu gradient');

    await useBackend('cpu');
    const cpu = await run(unitLossStats);
    close(cpu.stats, want.stats, 'cpu stats');
    close(cpu.grad, want.grad.flat(), 'cpu gradient');
    await useBackend('webgpu');
  });
}
