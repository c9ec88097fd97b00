/** The ViT: its math against float64 references, SLL^{i+} locality, a short run that learns, save and reload. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../src/backend.js';
import { Rng } from '../../src/data/random.js';
import { loadModel, registerFileSystem, saveModel } from '../../src/io/model-files.js';
import { unitVariables } from '../../src/models/network.js';
import { gelu, layerNorm, selfAttention } from '../../src/models/transformer-ops.js';
import { stopGradient } from '../../src/objectives/stop-gradient.js';
import { unitLoss } from '../../src/objectives/unit-loss.js';
import { runTraining } from '../../src/recipe/run.js';
import { disposeHeaded } from '../../src/train/model.js';
import { predict } from '../../src/train/predict.js';
import { batch, sllTrainer, smallModel, trainerOf, unitWeights } from '../train/helpers.js';

before(async () => {
  await useBackend('cpu');
  registerFileSystem();
});

/** n values in [-2, 2), seeded. */
function values(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 4 * rng.next() - 2);
}

/** d(sum(f(x) * g))/dx by central differences of a float64 function, for every entry of x. */
function numericGradient(f: (x: number[]) => number[], x: number[], g: number[], eps = 1e-5): number[] {
  return x.map((_, i) => {
    const up = [...x];
    const down = [...x];
    up[i] += eps;
    down[i] -= eps;
    const fu = f(up);
    const fd = f(down);
    return fu.reduce((s, v, k) => s + (v - fd[k]) * g[k], 0) / (2 * eps);
  });
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

/** Float64 LayerNorm of rows of length d. */
function layerNorm64(x: number[], gamma: number[], beta: number[], d: number, eps = 1e-6): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / d; r++) {
    const row = x.slice(r * d, (r + 1) * d);
    const mean = row.reduce((a, b) => a + b, 0) / d;
    const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
    row.forEach((v, j) => out.push(((v - mean) / Math.sqrt(variance + eps)) * gamma[j] + beta[j]));
  }
  return out;
}

/** erf by its Taylor series (float64, |x| <= 3 here). */
function erf64(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

test('layerNorm matches a float64 reference, values and gradients for x, gamma and beta', () => {
  const [rows, d] = [3, 5];
  const x = values(rows * d, 1);
  const gamma = values(d, 2);
  const beta = values(d, 3);
  const g = values(rows * d, 4);
  const got = tf.tidy(() => layerNorm(tf.tensor2d(x, [rows, d]), tf.tensor1d(gamma), tf.tensor1d(beta)).dataSync());
  close(got, layerNorm64(x, gamma, beta, d), 1e-5, 'LN(x)');
  const grads = tf.tidy(() =>
    tf.grads((a, b, c) => tf.sum(tf.mul(layerNorm(a, b as tf.Tensor1D, c as tf.Tensor1D), tf.tensor2d(g, [rows, d]))))([
      tf.tensor2d(x, [rows, d]),
      tf.tensor1d(gamma),
      tf.tensor1d(beta),
    ]).map((t) => Array.from(t.dataSync())),
  );
  close(grads[0], numericGradient((v) => layerNorm64(v, gamma, beta, d), x, g), 1e-3, 'dL/dx');
  close(grads[1], numericGradient((v) => layerNorm64(x, v, beta, d), gamma, g), 1e-3, 'dL/dgamma');
  close(grads[2], numericGradient((v) => layerNorm64(x, gamma, v, d), beta, g), 1e-3, 'dL/dbeta');
});

test('gelu matches x Phi(x) in float64, values and gradient', () => {
  const x = values(40, 5).map((v) => 1.5 * v);
  const g = values(40, 6);
  const gelu64 = (v: number[]) => v.map((a) => 0.5 * a * (1 + erf64(a / Math.SQRT2)));
  close(tf.tidy(() => gelu(tf.tensor1d(x)).dataSync()), gelu64(x), 1e-5, 'GELU');
  const grad = tf.tidy(() => tf.grad((a) => tf.sum(tf.mul(gelu(a), tf.tensor1d(g))))(tf.tensor1d(x)).dataSync());
  close(grad, numericGradient(gelu64, x, g), 1e-3, 'dGELU');
});

test('self-attention matches a float64 reference of its definition, values and gradients for its weights and input', () => {
  const [b, t, d, heads] = [2, 3, 4, 2];
  const hd = d / heads;
  const x = values(b * t * d, 7);
  const qkv = values(d * 3 * d, 8).map((v) => v / 2);
  const qkvBias = values(3 * d, 9).map((v) => v / 4);
  const proj = values(d * d, 10).map((v) => v / 2);
  const projBias = values(d, 11);
  const g = values(b * t * d, 12);
  /** Attention in float64, as written in the paper: softmax(q k^T / sqrt(d_h)) v per head, concatenated, projected. */
  const reference = (xv: number[], qkvW: number[], qkvB: number[], projW: number[]): number[] => {
    const out: number[] = [];
    for (let n = 0; n < b; n++) {
      // [t, 3d] = x W_qkv + b; columns 0..d-1 are q, d..2d-1 k, 2d..3d-1 v; head h takes columns h*hd..(h+1)*hd-1 of each.
      const z = Array.from({ length: t }, (_, i) => Array.from({ length: 3 * d }, (_, c) => qkvB[c] + xv.slice((n * t + i) * d, (n * t + i + 1) * d).reduce((s, a, j) => s + a * qkvW[j * 3 * d + c], 0)));
      const concat = Array.from({ length: t }, () => new Array<number>(d).fill(0));
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < t; i++) {
          const scores = Array.from({ length: t }, (_, j) => {
            let s = 0;
            for (let e = 0; e < hd; e++) s += z[i][h * hd + e] * z[j][d + h * hd + e];
            return s / Math.sqrt(hd);
          });
          const m = Math.max(...scores);
          const ex = scores.map((s) => Math.exp(s - m));
          const total = ex.reduce((a, c) => a + c, 0);
          for (let e = 0; e < hd; e++) concat[i][h * hd + e] = ex.reduce((s, w, j) => s + (w / total) * z[j][2 * d + h * hd + e], 0);
        }
      }
      for (let i = 0; i < t; i++) for (let c = 0; c < d; c++) out.push(projBias[c] + concat[i].reduce((s, a, j) => s + a * projW[j * d + c], 0));
    }
    return out;
  };
  // The reference's W_qkv [D, 3D] is [W_q W_k W_v] side by side.
  const run = (xt: tf.Tensor, qkvT: tf.Tensor, projT: tf.Tensor) => {
    const [q, k, v] = tf.split(qkvT as tf.Tensor2D, 3, 1) as tf.Tensor2D[];
    const [qBias, kBias, vBias] = tf.split(tf.tensor1d(qkvBias), 3) as tf.Tensor1D[];
    return selfAttention(xt as tf.Tensor3D, heads, { q, qBias, k, kBias, v, vBias, proj: projT as tf.Tensor2D, projBias: tf.tensor1d(projBias) });
  };
  const inputs = () => [tf.tensor3d(x, [b, t, d]), tf.tensor2d(qkv, [d, 3 * d]), tf.tensor2d(proj, [d, d])];
  close(tf.tidy(() => run(...(inputs() as [tf.Tensor, tf.Tensor, tf.Tensor])).dataSync()), reference(x, qkv, qkvBias, proj), 1e-5, 'MHSA(x)');
  const grads = tf.tidy(() =>
    tf.grads((a, q, p) => tf.sum(tf.mul(run(a, q, p), tf.tensor3d(g, [b, t, d]))))(inputs()).map((tensor) => Array.from(tensor.dataSync())),
  );
  close(grads[0], numericGradient((v) => reference(v, qkv, qkvBias, proj), x, g), 1e-3, 'dL/dx');
  close(grads[1], numericGradient((v) => reference(x, v, qkvBias, proj), qkv, g), 1e-3, 'dL/dW_qkv');
  close(grads[2], numericGradient((v) => reference(x, qkv, qkvBias, v), proj, g), 1e-3, 'dL/dW_proj');
});

const vit = { model: 'vit' as const, width: 16, heads: 2, patchSize: 3, mlpRatio: 2, layers: 4, keep: 0.5, optimizer: 'sgd' as const, momentum: 0, lr: 0.05, lrSchedule: 'constant' as const };

test('SLL^{2+} on a ViT: a unit of two blocks updates as plain backprop of that unit on its local loss', () => {
  const m = smallModel({ ...vit, unitLayers: 2 });
  const { model } = m;
  assert.deepEqual(model.network.units.map((u) => u.layers.map((l) => l.getClassName())), [
    ['SllPatchEmbedding', 'SllTransformerBlock', 'SllTransformerBlock'],
    ['SllTransformerBlock', 'SllTransformerBlock'],
  ]);
  const { x, labels } = batch(1);
  const unit = model.network.units[0];
  const variables = unitVariables(unit);
  const before = variables.map((v) => v.dataSync().slice());
  // The unit's local loss, by hand: sg(x) through both blocks, its head with step 0's mask, eq. (5) without a parent.
  const { grads } = tf.variableGrads(() => {
    const h = unit.layers.reduce<tf.Tensor>((a, l) => l.apply(a, { training: true }) as tf.Tensor, stopGradient(x));
    return unitLoss(model.heads[0].project(h, 0), tf.oneHot(labels, 4).toFloat() as tf.Tensor2D, null, 1).total;
  }, variables);
  const want = variables.map((v, i) => tf.sub(tf.tensor(before[i], v.shape), tf.mul(grads[v.name], 0.05)).dataSync());
  sllTrainer(m).step(x, labels, 0);
  variables.forEach((v, i) => {
    close(v.dataSync(), want[i], 1e-5, v.name);
    assert.notDeepEqual(v.dataSync(), before[i], `${v.name} trained: gradients reach every block of the unit`);
  });
  tf.dispose(grads);
  disposeHeaded(model);
});

test('SLL^{2+} on a ViT: no gradient crosses a unit boundary (unit 1 trains the same whatever follows it)', () => {
  const deep = smallModel({ ...vit, unitLayers: 2 });
  const shallow = smallModel({ ...vit, layers: 2, unitLayers: 2 });
  for (const v of unitVariables(deep.model.network.units[1])) v.assign(tf.randomNormal(v.shape, 0, 3, 'float32', 5));
  const [a, b] = [sllTrainer(deep), sllTrainer(shallow)];
  for (let step = 0; step < 3; step++) {
    const { x, labels } = batch(step);
    a.step(x, labels, step);
    b.step(x, labels, step);
  }
  assert.deepEqual(unitWeights(deep.model, 0), unitWeights(shallow.model, 0));
  disposeHeaded(deep.model);
  disposeHeaded(shallow.model);
});

for (const method of ['sll', 'bp'] as const) {
  for (const token of ['cls', 'mean'] as const) {
    test(`a ${method} ViT (token ${token}) saves and reloads; its model.json predicts the same probabilities from raw pixels`, async () => {
      const m = smallModel({ ...vit, method, token, layers: 2 });
      const { x, labels } = batch(2);
      trainerOf(m).step(x, labels, 0);
      const model = { ...m.model, normalization: { mean: [0.5], std: [0.25] } };
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-vit-'));
      await saveModel(dir, model);
      const loaded = await loadModel(dir);
      assert.deepEqual(predict(loaded, x).dataSync(), predict(model, x).dataSync());
      const plain = await tf.loadLayersModel(`file://${dir}/model.json`);
      const pixels = tf.add(tf.mul(x, 0.25 * 255), 0.5 * 255);
      close((plain.predict(pixels) as tf.Tensor).dataSync(), predict(model, x).dataSync(), 1e-4, 'probabilities');
      plain.dispose();
      disposeHeaded(loaded);
      disposeHeaded(model);
    });
  }
}

test('a small ViT learns Fashion-MNIST with SLL^{2+} and with BP in a short run', async () => {
  const vitSmall = {
    model: 'vit' as const, dataset: 'fashion-mnist' as const, testLimit: 500, width: 32, heads: 2, patchSize: 7, layers: 4,
    keep: 1, cropPadding: 0, backend: 'native' as const,
  };
  // Chance is 10%; these runs reach about 73% (SLL^{2+}) and 63% (BP, fewer steps).
  const sll = await runTraining({ ...vitSmall, trainLimit: 4000, epochs: 5, unitLayers: 2, lr: 1e-2, token: 'mean' }, null);
  assert.ok(sll.summary.test_accuracy > 0.65, `SLL^{2+}: ${sll.summary.test_accuracy}`);
  assert.equal(sll.summary.unit_test_accuracy.length, 2, 'two units of two blocks');
  const bp = await runTraining({ ...vitSmall, method: 'bp', trainLimit: 3000, epochs: 3, lr: 2e-3 }, null);
  assert.ok(bp.summary.test_accuracy > 0.55, `BP: ${bp.summary.test_accuracy}`);
});
