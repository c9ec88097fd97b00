/** Shared helpers of the native backend tests: a hard requirement on the addon, seeded data, comparisons. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeAddon, nativeAddon, registerNativeBackend } from '../../src/native/backend.js';
import { applyWasmTrainingFixes } from '../../src/wasm/training-kernels.js';

/**
 * Registers the native backend, or fails the calling test with the reason: a missing addon is an error
 * (build it with `node native/build.mjs`), never a silent skip.
 */
export function requireNative(): void {
  const r = loadNativeAddon();
  if (!r.ok) assert.fail(`the native addon is required by these tests: ${r.reason}`);
  assert.ok(registerNativeBackend(), 'registerNativeBackend() returned false');
}

export type BackendUnderTest = 'native' | 'cpu' | 'wasm';

export async function use(backend: BackendUnderTest): Promise<void> {
  if (backend === 'native') requireNative();
  if (backend === 'wasm') applyWasmTrainingFixes();
  assert.ok(await tf.setBackend(backend), `setBackend(${backend}) failed`);
  assert.equal(tf.getBackend(), backend);
}

/** mulberry32: a small seeded generator, so every run sees the same inputs. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A tensor input to run on either backend: values plus shape (and dtype). */
export interface Input {
  values: Float32Array | Int32Array;
  shape: number[];
  dtype?: 'float32' | 'int32';
}

export function input(shape: number[], seed: number, lo = -1, hi = 1): Input {
  return { values: randomArray(sizeOf(shape), seed, lo, hi), shape };
}

/** Runs f on fresh tensors made from `inputs` on `backend`; returns copies of the outputs' values. */
export async function runOn(
  backend: BackendUnderTest,
  inputs: Input[],
  f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
): Promise<{ values: Float32Array; shape: number[]; dtype: string }[]> {
  await use(backend);
  const results: { values: Float32Array; shape: number[]; dtype: string }[] = [];
  // Collected outside tidy's return value: tidy walks what it returns element by element, typed arrays too
  // (over a minute for the 4M values of the large-op test).
  tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.values.slice(), i.shape, i.dtype ?? 'float32'));
    const out = f(...xs);
    const outs = Array.isArray(out) ? out : [out];
    for (const t of outs) results.push({ values: Float32Array.from(t.dataSync() as ArrayLike<number>), shape: t.shape, dtype: t.dtype });
  });
  return results;
}

/**
 * Asserts every element of `actual` is within `rtol` of `expected`, relative to the element's magnitude
 * (floored at `floor` times the largest magnitude, so that values near zero are judged on the scale of
 * the tensor), with NaN and infinities required to match exactly.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  what: string,
  floor = 1e-3,
): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i])) maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(e)) {
      assert.ok(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)), `${what}[${i}]: ${a} vs ${e}`);
      continue;
    }
    const err = Math.abs(a - e) / Math.max(Math.abs(e), floor * maxAbs, 1e-30);
    if (!(err <= rtol)) assert.fail(`${what}[${i}]: ${a} vs ${e} (relative error ${err.toExponential(2)} > ${rtol})`);
    worst = Math.max(worst, err);
  }
  return worst;
}

/** As assertClose, but relative to the largest magnitude of `expected` (for sums of many products). */
export function assertCloseNorm(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string): number {
  return assertClose(actual, expected, rtol, what, 1);
}

/** Runs f on the cpu backend and on `native` and compares every output (values, shape and dtype). */
export async function compareBackends(
  inputs: Input[],
  f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  rtol: number,
  what: string,
  norm = false,
): Promise<void> {
  return compareWithCpu('native', inputs, f, rtol, what, norm);
}

/** Runs f on the cpu backend and on `backend` and compares every output (values, shape and dtype). */
export async function compareWithCpu(
  backend: BackendUnderTest,
  inputs: Input[],
  f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  rtol: number,
  what: string,
  norm = false,
): Promise<void> {
  const expected = await runOn('cpu', inputs, f);
  const actual = await runOn(backend, inputs, f);
  assert.equal(actual.length, expected.length);
  actual.forEach((a, k) => {
    const e = expected[k];
    assert.deepEqual(a.shape, e.shape, `${what}: output ${k} shape`);
    assert.equal(a.dtype, e.dtype, `${what}: output ${k} dtype`);
    if (norm) assertCloseNorm(a.values, e.values, rtol, `${what} (output ${k})`);
    else assertClose(a.values, e.values, rtol, `${what} (output ${k})`);
  });
}

/**
 * Counts calls into the addon while `f` runs, by function name: proves that a kernel took the native path
 * rather than its cpu fallback (the backend looks the addon's functions up on every call).
 */
export async function countAddonCalls<T>(f: () => T | Promise<T>): Promise<{ result: T; calls: Record<string, number> }> {
  const addon = nativeAddon() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const calls: Record<string, number> = {};
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, fn] of Object.entries(addon)) {
    if (typeof fn !== 'function') continue;
    originals.set(name, fn);
    addon[name] = (...args: unknown[]) => {
      calls[name] = (calls[name] ?? 0) + 1;
      return fn(...args);
    };
  }
  try {
    return { result: await f(), calls };
  } finally {
    for (const [name, fn] of originals) addon[name] = fn;
  }
}
