/**
 * tf.stack on webgpu (src/gpu/stack.ts): one dispatch for up to 7 float32 tensors of one shape along the
 * first axis, exactly the inputs' values; tfjs's kernel, as right, for the rest. On SwiftShader without a
 * GPU; skips only with a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { randomArray } from '../native/helpers.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU stack tests');

test('stack on webgpu: 1 to 7 float32 tensors of one shape in one dispatch, value for value', { skip }, async () => {
  await useBackend('webgpu');
  for (const shape of [[4], [3, 5], [2, 70, 3]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let k = 1; k <= 7; k++) {
      const values = Array.from({ length: k }, (_, i) => randomArray(n, 10 * k + i));
      const xs = values.map((v) => tf.tensor(v, shape));
      await Promise.all(xs.map((x) => x.data()));
      const before = dispatches();
      const y = tf.stack(xs);
      assert.equal(dispatches() - before, 1, `${k} x [${shape}]: one dispatch`);
      assert.deepEqual(y.shape, [k, ...shape]);
      const want = new Float32Array(k * n);
      values.forEach((v, i) => want.set(v, i * n));
      assert.deepEqual(await y.data(), want, `${k} x [${shape}]`);
      tf.dispose([y, ...xs]);
    }
  }
});

test("stack on webgpu: 8 inputs, another axis and int32 go to tfjs's kernel, with the same values", { skip }, async () => {
  const cases: [string, () => tf.Tensor][] = [
    ['8 inputs', () => tf.stack(Array.from({ length: 8 }, (_, i) => tf.tensor1d(randomArray(5, i))))],
    ['axis 1', () => tf.stack([tf.tensor2d(randomArray(6, 1), [2, 3]), tf.tensor2d(randomArray(6, 2), [2, 3])], 1)],
    ['axis -1', () => tf.stack([tf.tensor1d(randomArray(4, 3)), tf.tensor1d(randomArray(4, 4))], -1)],
    ['int32', () => tf.stack([tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')])],
  ];
  for (const [what, f] of cases) {
    await useBackend('cpu');
    const want = tf.tidy(f);
    await useBackend('webgpu');
    const got = tf.tidy(f);
    assert.deepEqual(got.shape, want.shape, what);
    assert.equal(got.dtype, want.dtype, what);
    assert.deepEqual(await got.data(), await want.data(), what);
    tf.dispose([got, want]);
  }
});
