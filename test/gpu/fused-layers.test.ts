/**
 * The fused Dense and Conv2D layers on webgpu (src/gpu/fused-layers.ts): forward and every gradient against
 * tfjs-layers on cpu, one dispatch forward, and the activation and bias gradient in one dispatch against
 * float64. On SwiftShader without a GPU; skips only with a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { ACTIVATION_BIAS_GRAD_KERNEL, applyFused } from '../../src/models/fused-layers.js';
import { FUSED_LAYER_CASES, LAYER_RUN_OUTPUTS, layerRun } from '../models/fused-layer-cases.js';
import { assertCloseNorm, randomArray } from '../native/helpers.js';
import { webGpuForTests } from './setup.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU fused-layer tests');

for (const c of FUSED_LAYER_CASES) {
  test(`webgpu fused ${c.name}: output and gradients (input, kernel, bias) match tfjs-layers on cpu`, { skip }, async () => {
    await useBackend('cpu');
    const want = await layerRun(c, false);
    await useBackend('webgpu');
    const got = await layerRun(c, true);
    assert.equal(got.length, want.length);
    got.forEach((g, i) => assertCloseNorm(g, want[i], 1e-5, `${c.name} ${LAYER_RUN_OUTPUTS[i]}`));
  });
}

test('on webgpu bias and ReLU cost no dispatch of their own: a dense layer is one, a conv layer as many as its convolution', { skip }, async () => {
  await useBackend('webgpu');
  for (const c of FUSED_LAYER_CASES) {
    const layer = c.make();
    layer.build(c.inputShape);
    const x = tf.tensor(randomArray(c.inputShape.reduce((a, b) => a * b, 1), 1), c.inputShape);
    await x.data();
    const kernel = layer.getWeights()[0];
    const count = (f: () => tf.Tensor | null) => {
      const before = dispatches();
      const y = f();
      const n = dispatches() - before;
      assert.ok(y != null, `${c.name}: the fused path applies`);
      y.dispose();
      return n;
    };
    const fused = count(() => applyFused(layer, x));
    if (c.inputShape.length === 2) assert.equal(fused, 1, `${c.name}: one dispatch`);
    else {
      const { strides, padding } = layer.getConfig() as { strides: [number, number]; padding: 'same' | 'valid' };
      assert.equal(fused, count(() => tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, strides, padding)), `${c.name}: the convolution's dispatches`);
    }
    x.dispose();
    layer.weights.forEach((w) => w.dispose());
  }
});

test('the activation and bias gradient on webgpu: dz = dy [y > 0] and db its sums over rows, float64, in one dispatch', { skip }, async () => {
  await useBackend('webgpu');
  for (const shape of [[16, 1024], [300, 7], [2, 5, 5, 3], [1, 40]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    const cols = shape[shape.length - 1];
    const dyValues = randomArray(n, 1, -3, 3);
    const yValues = randomArray(n, 2).map((v, i) => (i % 5 === 0 ? 0 : Math.max(0, v)));
    const dy = tf.tensor(dyValues, shape);
    const y = tf.tensor(yValues, shape);
    await Promise.all([dy.data(), y.data()]);
    for (const activation of ['relu', 'linear']) {
      const before = dispatches();
      const [dz, db] = tf.engine().runKernel(ACTIVATION_BIAS_GRAD_KERNEL, { dy, y }, { activation }) as tf.Tensor[];
      assert.equal(dispatches() - before, 1, `${activation} [${shape}]: one dispatch`);
      assert.deepEqual(dz.shape, shape);
      assert.deepEqual(db.shape, [cols]);
      const wantDz = activation === 'relu' ? dyValues.map((g, i) => (yValues[i] > 0 ? g : 0)) : dyValues;
      assert.deepEqual(Array.from(await dz.data()), Array.from(wantDz), `${activation} [${shape}] dz`);
      const gotDb = await db.data();
      for (let c = 0; c < cols; c++) {
        let sum = 0;
        let magnitude = 0;
        for (let r = c; r < n; r += cols) {
          sum += wantDz[r];
          magnitude += Math.abs(wantDz[r]);
        }
        // A float32 sum of m terms is within ~m eps of the sum of their magnitudes.
        assert.ok(Math.abs(gotDb[c] - sum) <= (n / cols) * 1.2e-7 * magnitude + 1e-7, `${activation} [${shape}] db[${c}]: ${gotDb[c]} vs ${sum}`);
      }
      tf.dispose([dz, db]);
    }
    tf.dispose([dy, y]);
  }
  const dy = tf.ones([2, 3]);
  assert.throws(() => tf.engine().runKernel(ACTIVATION_BIAS_GRAD_KERNEL, { dy, y: tf.ones([3, 2]) }, { activation: 'relu' }), /differ/);
  assert.throws(() => tf.engine().runKernel(ACTIVATION_BIAS_GRAD_KERNEL, { dy, y: dy }, { activation: 'gelu' }), /not fused/);
  dy.dispose();
});
