/**
 * The WebGPU masked projection (its Bernoulli mask drawn in the kernel) against the CPU path: bit for bit.
 * On SwiftShader without a GPU; skips only with a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { webGpuMaskedProjection } from '../../src/gpu/masked-projection.js';
import { maskedProjection, type MaskDraw } from '../../src/objectives/projection.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU masked-projection tests');

test('masked projection on webgpu equals the CPU mask times R, bit for bit, in one dispatch', { skip }, async () => {
  for (const [shape, draw] of [
    [[4096, 10], { key: 12345, keep: 0.5, value: 2 }],
    [[33, 7], { key: 0xfffffff0, keep: 0.8, value: Math.fround(1 / Math.fround(0.8)) }],
    [[1000, 100], { key: 7, keep: 0.3, value: 1 }],
  ] as [[number, number], MaskDraw][]) {
    const values = Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => Math.sin(i * 0.37) * 3);
    await useBackend('cpu');
    const r = tf.tensor2d(values, shape);
    const want = await maskedProjection(r, draw).data();
    r.dispose();
    await useBackend('webgpu');
    const rg = tf.tensor2d(values, shape);
    const first = webGpuMaskedProjection(rg, draw); // uploads R once
    first.dispose();
    const before = dispatches();
    const got = webGpuMaskedProjection(rg, draw);
    assert.equal(dispatches() - before, 1, 'one dispatch');
    const out = await got.data();
    for (let i = 0; i < want.length; i++) assert.ok(Object.is(out[i], want[i]), `[${shape}] keep ${draw.keep}: entry ${i} ${out[i]} vs ${want[i]}`);
    tf.dispose([rg, got]);
  }
});
