import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { InMemoryDataset } from '../../src/data/dataset.js';
import { DataError } from '../../src/data/errors.js';
import { loadFashionMnist, splitFashionMnist } from '../../src/data/fashion-mnist.js';
import { bytes, tempDir } from './helpers.js';

const root = tempDir();
const SMALL = { test: 2, train: 3 };

/** Row r of class k has pixel 0 = k and pixel 1 = r, so every example can be traced to its source row. */
function row(k: number, r: number): number[] {
  const px = Array.from(bytes(784, 100 * k + r));
  px[0] = k;
  px[1] = r;
  return px;
}

/** Writes a fake class-per-file directory; class 0 gets one extra row like the real package. */
function fakeFashion(name: string, edit: (k: number, rows: unknown[]) => unknown = (_, rows) => ({ data: rows })): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (let k = 0; k < 10; k++) {
    const rows = Array.from({ length: k === 0 ? 6 : 5 }, (_, r) => row(k, r));
    const content = edit(k, rows);
    writeFileSync(join(dir, `${k}.json`), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const sources = (ds: InMemoryDataset) =>
  Array.from({ length: ds.size }, (_, i) => `${ds.pixels[i * 784]}/${ds.pixels[i * 784 + 1]}`);

const okDir = fakeFashion('ok');

test('splitFashionMnist takes perClass.test test and perClass.train train rows of each class with matching labels', () => {
  const { train, test: testSet } = splitFashionMnist(okDir, 0, SMALL);
  assert.equal(train.size, 30);
  assert.equal(testSet.size, 20);
  assert.equal(train.name, 'fashion-mnist/train');
  assert.deepEqual(train.shape, [28, 28, 1]);
  assert.deepEqual(train.mean, [0.286]);
  assert.deepEqual(train.std, [0.353]);
  for (const [ds, per] of [[train, 3], [testSet, 2]] as const) {
    for (let i = 0; i < ds.size; i++) {
      assert.equal(ds.pixels[i * 784], ds.labels[i]);
      assert.deepEqual(Array.from(ds.pixels.subarray(i * 784, (i + 1) * 784)), row(ds.labels[i], ds.pixels[i * 784 + 1]));
    }
    for (let k = 0; k < 10; k++) assert.equal(ds.labels.filter((y) => y === k).length, per);
  }
});

test('train and test are disjoint', () => {
  const { train, test: testSet } = splitFashionMnist(okDir, 0, SMALL);
  const trainRows = new Set(sources(train));
  assert.equal(trainRows.size, train.size);
  assert.ok(sources(testSet).every((s) => !trainRows.has(s)));
});

test('the split is deterministic under the seed and changes with it', () => {
  const a = splitFashionMnist(okDir, 5, SMALL);
  const b = splitFashionMnist(okDir, 5, SMALL);
  assert.deepEqual(a.train.pixels, b.train.pixels);
  assert.deepEqual(a.test.pixels, b.test.pixels);
  const c = splitFashionMnist(okDir, 6, SMALL);
  assert.notDeepEqual(sources(a.test), sources(c.test));
});

test('corrupt JSON is rejected with a DataError naming the file', () => {
  const dir = fakeFashion('corrupt', (k, rows) => (k === 3 ? '{"data": [[0, 1' : { data: rows }));
  assert.throws(() => splitFashionMnist(dir, 0, SMALL), (e: Error) => e instanceof DataError && e.message.startsWith(`${join(dir, '3.json')}: invalid JSON`));
});

test('JSON without a data array is rejected', () => {
  const dir = fakeFashion('shape', (k, rows) => (k === 1 ? rows : { data: rows }));
  assert.throws(() => splitFashionMnist(dir, 0, SMALL), /1\.json: expected an object/);
});

for (const [what, bad] of [
  ['783 pixels', Array(783).fill(0)],
  ['a pixel of 256', [...Array(783).fill(0), 256]],
  ['a fractional pixel', [...Array(783).fill(0), 1.5]],
  ['a string pixel', [...Array(783).fill(0), '7']],
] as const) {
  test(`a row with ${what} is rejected naming the file and row`, () => {
    const dir = fakeFashion(`bad-${what.replace(/\W/g, '')}`, (k, rows) => {
      if (k === 7) rows[4] = bad;
      return { data: rows };
    });
    assert.throws(() => splitFashionMnist(dir, 0, SMALL), (e: Error) => e instanceof DataError && e.message === `${join(dir, '7.json')}: row 4 is not 784 integers in 0..255`);
  });
}

test('empty rows (as in the published class-0 file) are skipped, not counted as images', () => {
  const dir = fakeFashion('empty', (k, rows) => ({ data: k === 2 ? [[], ...rows.slice(0, 3), [], ...rows.slice(3)] : rows }));
  const { train, test: testSet } = splitFashionMnist(dir, 0, SMALL);
  assert.equal(train.labels.filter((y) => y === 2).length, 3);
  assert.equal(testSet.labels.filter((y) => y === 2).length, 2);
  const twos = (ds: InMemoryDataset) => sources(ds).filter((s) => s.startsWith('2/'));
  assert.deepEqual([...twos(train), ...twos(testSet)].sort(), ['2/0', '2/1', '2/2', '2/3', '2/4']);
});

test('a class file with too few images is rejected naming the file and the count', () => {
  const dir = fakeFashion('few', (k, rows) => ({ data: k === 9 ? [...rows.slice(0, 4), []] : rows }));
  assert.throws(() => splitFashionMnist(dir, 0, SMALL), (e: Error) => e instanceof DataError && e.message === `${join(dir, '9.json')}: expected at least 5 images, got 4`);
});

test('a missing class file is rejected with a DataError naming the file', () => {
  assert.throws(() => loadFashionMnist(join(root, 'missing')), (e: Error) => e instanceof DataError && e.message.includes(join(root, 'missing', '0.json')));
});

test('the installed fashion-mnist package splits into 60000/10000 with 6000/1000 per class', () => {
  const { train, test: testSet } = loadFashionMnist();
  assert.equal(train.size, 60000);
  assert.equal(testSet.size, 10000);
  for (let k = 0; k < 10; k++) {
    assert.equal(train.labels.filter((y) => y === k).length, 6000);
    assert.equal(testSet.labels.filter((y) => y === k).length, 1000);
  }
  let sum = 0;
  for (const p of train.pixels) sum += p;
  const mean = sum / 255 / train.pixels.length;
  assert.ok(Math.abs(mean - 0.286) < 2e-3, `mean ${mean}`);
});
