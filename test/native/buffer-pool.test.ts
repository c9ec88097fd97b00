/**
 * The native backend's pool of large output arrays (NativeBackend.allocFloat32): arrays are reused once the
 * last tensor holding their storage is disposed, and never while anyone may still read them: not an array
 * handed out by dataSync/data, not a user's array given to tf.tensor, not a buffer another tensor views.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { NativeBackend } from '../../src/native/backend.js';
import { use } from './helpers.js';

/** Large enough to be pooled (128 KiB and more). */
const N = 64 * 1024;

async function nativeBackend(): Promise<NativeBackend> {
  await use('native');
  const backend = tf.backend();
  assert.ok(backend instanceof NativeBackend);
  return backend;
}

function storage(backend: NativeBackend, t: tf.Tensor): Float32Array {
  return backend.data.get(t.dataId)!.values as Float32Array;
}

test('a kernel output is reused for the next output of its length once its tensor is disposed', async () => {
  const backend = await nativeBackend();
  const a = tf.fill([N], 2);
  const first = tf.add(a, 1);
  const buffer = storage(backend, first).buffer;
  first.dispose();
  assert.ok(backend.pooledByteCount() >= N * 4, 'the disposed output went back to the pool');
  const second = tf.mul(a, 3);
  assert.equal(storage(backend, second).buffer, buffer, 'the same memory serves the next output');
  assert.deepEqual(Array.from(second.dataSync().subarray(0, 3)), [6, 6, 6], 'and holds the new values');
  tf.dispose([a, second]);
});

test('an array handed out by dataSync() or data() keeps its values after its tensor is disposed', async () => {
  await nativeBackend();
  const a = tf.fill([N], 5);
  const b = tf.add(a, 1);
  const c = tf.add(a, 2);
  const read = b.dataSync();
  const readAsync = await c.data();
  tf.dispose([b, c]);
  for (let i = 0; i < 4; i++) tf.dispose(tf.mul(a, 10 + i));
  assert.ok(read.every((v) => v === 6), 'dataSync array intact');
  assert.ok(readAsync.every((v) => v === 7), 'data() array intact');
  a.dispose();
});

test("a user's array given to tf.tensor is never recycled", async () => {
  await nativeBackend();
  const mine = new Float32Array(N).fill(1.5);
  const t = tf.tensor1d(mine);
  const u = tf.add(t, 1);
  tf.dispose([t, u]);
  const others = [0, 1, 2].map((i) => tf.fill([N], 9 + i));
  const sums = others.map((o) => tf.add(o, 0));
  assert.ok(mine.every((v) => v === 1.5), 'the user array still holds its values');
  tf.dispose([...others, ...sums]);
});

test('a buffer another tensor views (a subarray) is recycled only when that tensor is gone too', async () => {
  const backend = await nativeBackend();
  const a = tf.fill([N], 4);
  const b = tf.add(a, 1);
  const values = storage(backend, b);
  // What a cpu kernel's contiguous slice does: a new tensor over a view of b's storage.
  const view = tf.engine().makeTensorFromTensorInfo(backend.makeTensorInfo([N / 2], 'float32', values.subarray(N / 2)));
  const pooled = backend.pooledByteCount();
  b.dispose();
  assert.equal(backend.pooledByteCount(), pooled, 'not pooled while the view lives');
  const c = tf.mul(a, 2);
  assert.notEqual(storage(backend, c).buffer, values.buffer);
  assert.ok(view.dataSync().every((v) => v === 5), 'the view keeps its values');
  tf.dispose([view, c, a]);
});

test('outputs that need zeros get them from recycled memory (pad)', async () => {
  await nativeBackend();
  const side = 256;
  const a = tf.fill([side, side], Number.NaN);
  const garbage = tf.add(a, 0);
  garbage.dispose();
  const x = tf.ones([side - 2, side - 2]);
  const padded = tf.pad(x, [[1, 1], [1, 1]]);
  const v = padded.dataSync();
  assert.equal(v[0], 0);
  assert.equal(v[side + 1], 1);
  assert.ok(v.every((e) => e === 0 || e === 1), 'no leftover NaN');
  tf.dispose([a, x, padded]);
});

test('a step holding many arrays of one length at once gets all of them back from the pool the next time', async () => {
  const backend = await nativeBackend();
  backend.emptyPool();
  const a = tf.fill([N], 1);
  const burst = () => Array.from({ length: 40 }, (_, i) => tf.add(a, i));
  const first = burst();
  const buffers = new Set(first.map((t) => storage(backend, t).buffer));
  tf.dispose(first);
  assert.equal(backend.pooledByteCount(), 40 * N * 4, 'all 40 came back (a cap of 16 a length kept 16)');
  const second = burst();
  assert.ok(second.every((t) => buffers.has(storage(backend, t).buffer)), 'and all 40 were used again');
  assert.equal(backend.pooledByteCount(), 0);
  assert.deepEqual(Array.from(second[39].dataSync().subarray(0, 2)), [40, 40]);
  tf.dispose([a, ...second]);
});

test('the pool stays bounded over repeated steps and tensors do not leak', async () => {
  const backend = await nativeBackend();
  const w = tf.variable(tf.randomNormal([512, 512]));
  const x = tf.randomNormal([256, 512]);
  const step = () => tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.relu(tf.matMul(x, v))))(w));
  tf.dispose(step());
  const tensors = tf.memory().numTensors;
  const pooled: number[] = [];
  for (let i = 0; i < 10; i++) {
    tf.dispose(step());
    pooled.push(backend.pooledByteCount());
  }
  assert.equal(tf.memory().numTensors, tensors);
  assert.ok(pooled.every((p) => p === pooled[0]), `pooled bytes flat across steps: ${pooled}`);
  backend.emptyPool();
  assert.equal(backend.pooledByteCount(), 0);
  tf.dispose([w, x]);
});
