import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useBackend, BackendError } from '../src/backend.js';

function matMulOn(backend: string, a: number[][], b: number[][], ta: boolean, tb: boolean) {
  tf.setBackend(backend);
  return Array.from(tf.matMul(tf.tensor2d(a), tf.tensor2d(b), ta, tb).dataSync());
}

test('wasm matMul with every transpose combination equals the cpu backend', async () => {
  await useBackend('wasm');
  const rand = (r: number, c: number, s: number) => tf.randomNormal([r, c], 0, 1, 'float32', s).arraySync() as number[][];
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const a = ta ? rand(7, 5, 1) : rand(5, 7, 1);
    const b = tb ? rand(3, 7, 2) : rand(7, 3, 2);
    const wasm = matMulOn('wasm', a, b, ta, tb);
    const cpu = matMulOn('cpu', a, b, ta, tb);
    wasm.forEach((v, i) => assert.ok(Math.abs(v - cpu[i]) < 1e-4, `ta=${ta} tb=${tb} [${i}]`));
  }
  await useBackend('wasm');
  const x = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 3);
  const y = tf.randomNormal([2, 5, 6], 0, 1, 'float32', 4);
  const batched = Array.from(tf.matMul(x, y, false, true).dataSync());
  await useBackend('cpu');
  const reference = Array.from(tf.matMul(x, y, false, true).dataSync());
  assert.ok(batched.every((v, i) => Math.abs(v - reference[i]) < 1e-4), 'batched, transposed');
});

test('gradients through wasm matMul equal the cpu backend', async () => {
  const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, b)));
  const grads = async (backend: 'wasm' | 'cpu') => {
    await useBackend(backend);
    const a = tf.randomNormal([4, 6], 0, 1, 'float32', 5);
    const b = tf.randomNormal([6, 3], 0, 1, 'float32', 6);
    return tf.grads(f)([a, b]).map((g) => Array.from(g.dataSync()));
  };
  const [wa, wb] = await grads('wasm');
  const [ca, cb] = await grads('cpu');
  wa.forEach((v, i) => assert.ok(Math.abs(v - ca[i]) < 1e-3));
  wb.forEach((v, i) => assert.ok(Math.abs(v - cb[i]) < 1e-3));
});

test('an unknown backend is refused with the list of backends', async () => {
  await assert.rejects(useBackend('gpu' as 'cpu'), (e: Error) => e instanceof BackendError && /wasm, cpu/.test(e.message));
});

test('importing sll/node leaves tfjs on its own default (cpu), and useBackend checks its thread count', async () => {
  const node = new URL('../src/node.js', import.meta.url).href;
  const script = `import * as tf from '@tensorflow/tfjs'; await import(${JSON.stringify(node)}); console.log(tf.tensor([2]).dataSync()[0], tf.getBackend());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^2 cpu$/m);
  for (const bad of [0, 1.5, -3]) {
    await assert.rejects(useBackend('cpu', bad), (e: Error) => e instanceof BackendError && /threads must be an integer from 1 to 1024/.test(e.message));
  }
});
