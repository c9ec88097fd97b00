/**
 * The WebGPU column sum (src/gpu/sum.ts) that stands in front of tfjs-webgpu's Sum: axis 0 of a matrix
 * against float64, in one dispatch; every other Sum still tfjs's. On SwiftShader without a GPU; skips only with
 * a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU column-sum tests');

test('sum over axis 0 of a matrix on webgpu: float64 sums, one dispatch, keepDims; other sums unchanged', { skip }, async () => {
  for (const [rows, cols] of [[16, 1024], [300, 7], [1, 5]]) {
    const values = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.91) * 4);
    const want = Array.from({ length: cols }, (_, c) => {
      let s = 0;
      for (let r = 0; r < rows; r++) s += values[r * cols + c];
      return s;
    });
    // A float32 sum of n terms is within ~n eps of the sum of their magnitudes.
    const scale = Array.from({ length: cols }, (_, c) => {
      let s = 0;
      for (let r = 0; r < rows; r++) s += Math.abs(values[r * cols + c]);
      return s;
    });
    const x = tf.tensor2d(values, [rows, cols]);
    await x.data();
    const before = dispatches();
    const s = tf.sum(x, 0);
    assert.equal(dispatches() - before, 1, `[${rows}, ${cols}]: one dispatch`);
    const got = await s.data();
    want.forEach((w, c) => assert.ok(Math.abs(got[c] - w) <= rows * 1.2e-7 * scale[c] + 1e-7, `[${rows}, ${cols}] column ${c}: ${got[c]} vs ${w}`));
    const kept = tf.sum(x, 0, true);
    assert.deepEqual(kept.shape, [1, cols]);
    assert.deepEqual(Array.from(await kept.data()), Array.from(got));
    // Rows, all, and 3-D sums are tfjs's kernel's.
    const byRow = await tf.sum(x, 1).data();
    assert.ok(Math.abs(byRow[0] - values.slice(0, cols).reduce((a, b) => a + b, 0)) < 1e-4);
    assert.ok(Math.abs((await tf.sum(x).data())[0] - want.reduce((a, b) => a + b, 0)) < 1e-3);
    tf.dispose([x, s, kept]);
  }
  const cube = tf.ones([2, 3, 4]);
  assert.deepEqual(Array.from(await tf.sum(cube, 0).data()), new Array(12).fill(2));
  cube.dispose();
});
