/**
 * Eq. (5) and its gradient in float64, written from the paper's definitions (CE, BC, softmax), for the tests of
 * every implementation of the unit loss (tfjs ops, the WebGPU kernel, the native kernel), and a run of one
 * implementation on given inputs.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { UnitLossStatsFn } from '../../src/objectives/unit-loss.js';

/** Eq. (5) and its gradient in float64: [prediction, alignment, total, correct] and dL/dv. */
export function unitLossReference(v: number[][], labels: number[], parent: number[][] | null, lambda: number): { stats: number[]; grad: number[][] } {
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

/** Test inputs: B rows of K smooth logits, a parent (or none) and labels. */
export function unitLossInputs(B: number, withParent: boolean, K = 10): { v: number[][]; parent: number[][] | null; labels: number[] } {
  const v = Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => 3 * Math.sin(1.7 * b + 0.9 * k)));
  const parent = withParent ? Array.from({ length: B }, (_, b) => Array.from({ length: K }, (_, k) => 2 * Math.cos(0.6 * b - 1.1 * k))) : null;
  const labels = Array.from({ length: B }, (_, b) => (b * 7 + 3) % K);
  return { v, parent, labels };
}

/** The stats row and dtotal/dv of `fn` on the current backend. */
export async function runUnitLoss(fn: UnitLossStatsFn, v: number[][], labels: number[], parent: number[][] | null, lambda: number): Promise<{ stats: Float32Array; grad: Float32Array }> {
  const vt = tf.tensor2d(v);
  const lt = tf.tensor1d(labels, 'int32');
  const pt = parent ? tf.tensor2d(parent) : null;
  let stats!: tf.Tensor1D;
  const g = tf.grad((x: tf.Tensor) => {
    const out = fn(x as tf.Tensor2D, lt, pt as tf.Tensor2D | null, lambda);
    stats = out.stats;
    return out.total;
  })(vt);
  const result = { stats: (await stats.data()) as Float32Array, grad: (await g.data()) as Float32Array };
  tf.dispose([vt, lt, g, stats, ...(pt ? [pt] : [])]);
  return result;
}

/** Every element within `tol` of the reference, relative to max(1, |reference|). */
export function assertNear(got: ArrayLike<number>, want: number[], what: string, tol = 2e-5): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

/** The (B, with parent, lambda) cases every implementation is tested on. */
export const UNIT_LOSS_CASES = [[37, true, 0.7], [300, true, 1], [300, false, 1], [16, true, 0]] as const;
