import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCifar10, loadCifar100 } from '../../src/data/cifar.js';
import { DataError } from '../../src/data/errors.js';
import { loadDataset } from '../../src/data/load.js';
import { bytes, tempDir } from './helpers.js';

const root = tempDir();
const IMAGE = 3072;

interface Rec {
  labels: number[];
  /** 3072 bytes, CHW planes as in the file. */
  planes: Uint8Array;
}

/** Records with label bytes `labels` and deterministic pixels; image (0,1) of record r is R=r+1, G=r+101, B=r+201. */
function records(labelsPerRecord: number[][], seed: number): Rec[] {
  return labelsPerRecord.map((labels, r) => {
    const planes = bytes(IMAGE, seed * 100 + r);
    planes[1] = r + 1;
    planes[1024 + 1] = r + 101;
    planes[2048 + 1] = r + 201;
    return { labels, planes };
  });
}

const fileBytes = (recs: Rec[]) => Buffer.concat(recs.map((r) => Buffer.from([...r.labels, ...r.planes])));

const expectHwc = (planes: Uint8Array) =>
  Uint8Array.from({ length: IMAGE }, (_, k) => planes[(k % 3) * 1024 + Math.floor(k / 3)]);

const dataError = (re: RegExp) => (e: Error) => e instanceof DataError && re.test(e.message);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** CIFAR-10 files in dir: data_batch_i.bin with counts[i-1] records, test_batch.bin with counts[5]. */
function cifar10(dir: string, counts = [2, 3, 1, 2, 2, 3]): { train: Rec[]; test: Rec[] } {
  mkdirSync(dir, { recursive: true });
  const files = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat('test_batch.bin');
  const all = files.map((f, i) => {
    const recs = records(Array.from({ length: counts[i] }, (_, r) => [(3 * i + r) % 10]), i);
    writeFileSync(join(dir, f), fileBytes(recs));
    return recs;
  });
  return { train: all.slice(0, 5).flat(), test: all[5] };
}

test('CIFAR-10: records of all five train files in order, converted to HWC exactly', () => {
  const dir = join(root, 'c10');
  const want = cifar10(dir);
  const { train, test: testSet } = loadCifar10(dir);
  assert.equal(train.name, 'cifar10/train');
  assert.equal(testSet.name, 'cifar10/test');
  assert.deepEqual(train.shape, [32, 32, 3]);
  assert.equal(train.numClasses, 10);
  assert.deepEqual(train.mean, [0.4914, 0.4822, 0.4465]);
  assert.deepEqual(train.std, [0.247, 0.2435, 0.2616]);
  assert.equal(train.size, 10);
  assert.equal(testSet.size, 3);
  assert.deepEqual([...train.labels], [0, 1, 3, 4, 5, 6, 9, 0, 2, 3]);
  assert.deepEqual([...testSet.labels], [5, 6, 7]);
  for (const [ds, recs] of [[train, want.train], [testSet, want.test]] as const) {
    recs.forEach((r, n) => {
      const img = ds.pixels.subarray(n * IMAGE, (n + 1) * IMAGE);
      assert.deepEqual(img, expectHwc(r.planes));
      assert.deepEqual([...img.subarray(3, 6)], [r.planes[1], r.planes[1025], r.planes[2049]]);
    });
  }
  // Pixel (row 0, column 1) of test record 2: R, G, B from the three planes.
  assert.deepEqual([...testSet.pixels.subarray(2 * IMAGE + 3, 2 * IMAGE + 6)], [3, 103, 203]);
  // Pixel (row 1, column 0) is plane offset 32.
  const r0 = want.train[0].planes;
  assert.deepEqual([...train.pixels.subarray(32 * 3, 32 * 3 + 3)], [r0[32], r0[1024 + 32], r0[2048 + 32]]);
});

test('CIFAR-10: dataDir may be the folder holding cifar-10-batches-bin/', () => {
  const parent = join(root, 'c10-parent');
  cifar10(join(parent, 'cifar-10-batches-bin'));
  const a = loadCifar10(parent);
  const b = loadCifar10(join(parent, 'cifar-10-batches-bin'));
  assert.deepEqual(a, b);
  assert.equal(a.train.size, 10);
});

test('CIFAR-10: missing directory and missing files are named', () => {
  const absent = join(root, 'nope');
  assert.throws(() => loadCifar10(absent), dataError(new RegExp(`CIFAR-10 data directory not found: ${esc(absent)}$`)));
  const emptyDir = join(root, 'c10-empty');
  mkdirSync(emptyDir);
  assert.throws(
    () => loadCifar10(emptyDir),
    dataError(new RegExp(`file not found: ${esc(join(emptyDir, 'data_batch_1.bin'))} \\(--data-dir should be the folder with data_batch_1\\.bin`)),
  );
  const dir = join(root, 'c10-missing3');
  cifar10(dir);
  rmSync(join(dir, 'data_batch_3.bin'));
  assert.throws(() => loadCifar10(dir), dataError(new RegExp(`CIFAR-10 file not found: ${esc(join(dir, 'data_batch_3.bin'))}$`)));
  const py = join(root, 'c10-py');
  mkdirSync(join(py, 'cifar-10-batches-py'), { recursive: true });
  assert.throws(() => loadCifar10(py), dataError(/cifar-10-batches-py is the Python version; download the binary version/));
});

test('CIFAR-10: a file that is not whole records is reported as truncated, by name', () => {
  const dir = join(root, 'c10-trunc');
  cifar10(dir);
  const path = join(dir, 'data_batch_2.bin');
  writeFileSync(path, fileBytes(records([[1], [2]], 7)).subarray(0, 3073 + 100));
  assert.throws(() => loadCifar10(dir), dataError(new RegExp(`^${esc(path)}: truncated .*3173 bytes is not a multiple of the 3073-byte record size`)));
});

test('CIFAR-10: a label outside 0..9 names the file and the record', () => {
  const dir = join(root, 'c10-label');
  cifar10(dir);
  const path = join(dir, 'test_batch.bin');
  writeFileSync(path, fileBytes(records([[1], [9], [10]], 3)));
  assert.throws(() => loadCifar10(dir), dataError(new RegExp(`^${esc(path)}: record 2: label 10 outside 0\\.\\.9$`)));
});

function cifar100(dir: string): { train: Rec[]; test: Rec[] } {
  mkdirSync(dir, { recursive: true });
  const train = records([[0, 99], [19, 5], [3, 42], [7, 0]], 1);
  const test = records([[11, 64], [2, 17]], 2);
  writeFileSync(join(dir, 'train.bin'), fileBytes(train));
  writeFileSync(join(dir, 'test.bin'), fileBytes(test));
  return { train, test };
}

test('CIFAR-100: fine labels (the second byte), 100 classes, HWC pixels, its own statistics', () => {
  const parent = join(root, 'c100');
  const want = cifar100(join(parent, 'cifar-100-binary'));
  for (const dir of [parent, join(parent, 'cifar-100-binary')]) {
    const { train, test: testSet } = loadCifar100(dir);
    assert.equal(train.name, 'cifar100/train');
    assert.equal(train.numClasses, 100);
    assert.deepEqual(train.shape, [32, 32, 3]);
    assert.deepEqual([...train.labels], [99, 5, 42, 0]);
    assert.deepEqual([...testSet.labels], [64, 17]);
    assert.deepEqual(train.mean, [0.5071, 0.4865, 0.4409]);
    assert.deepEqual(train.std, [0.2673, 0.2564, 0.2762]);
    want.train.forEach((r, n) => assert.deepEqual(train.pixels.subarray(n * IMAGE, (n + 1) * IMAGE), expectHwc(r.planes)));
    want.test.forEach((r, n) => assert.deepEqual(testSet.pixels.subarray(n * IMAGE, (n + 1) * IMAGE), expectHwc(r.planes)));
  }
});

test('CIFAR-100: truncated files, labels out of range and missing files are reported by name', () => {
  const dir = join(root, 'c100-bad');
  cifar100(dir);
  const train = join(dir, 'train.bin');
  writeFileSync(train, fileBytes(records([[0, 1], [0, 2]], 1)).subarray(0, 2 * 3074 - 1));
  assert.throws(() => loadCifar100(dir), dataError(new RegExp(`^${esc(train)}: truncated .*not a multiple of the 3074-byte record size`)));
  writeFileSync(train, fileBytes(records([[0, 1], [0, 100]], 1)));
  assert.throws(() => loadCifar100(dir), dataError(new RegExp(`^${esc(train)}: record 1: label 100 outside 0\\.\\.99 \\(label byte 1\\)$`)));
  writeFileSync(train, fileBytes(records([[20, 1]], 1)));
  assert.throws(() => loadCifar100(dir), dataError(new RegExp(`^${esc(train)}: record 0: label 20 outside 0\\.\\.19 \\(label byte 0\\)$`)));
  writeFileSync(train, '');
  assert.throws(() => loadCifar100(dir), dataError(new RegExp(`^${esc(train)}: empty file`)));
  const other = join(root, 'c100-no-test');
  mkdirSync(other);
  writeFileSync(join(other, 'train.bin'), fileBytes(records([[0, 1]], 1)));
  assert.throws(() => loadCifar100(other), dataError(new RegExp(`CIFAR-100 file not found: ${esc(join(other, 'test.bin'))}$`)));
  assert.throws(() => loadCifar100(join(root, 'absent')), dataError(/CIFAR-100 data directory not found/));
});

test('loadDataset: cifar10 and cifar100 load from dataDir and need one', () => {
  const dir = join(root, 'c10-ld');
  cifar10(dir);
  const c10 = loadDataset('cifar10', { dataDir: dir, seed: 3, imageSize: 7 });
  assert.deepEqual(c10.train.shape, [32, 32, 3]);
  assert.equal(c10.test.size, 3);
  const c100 = loadDataset('cifar100', { dataDir: join(root, 'c100') });
  assert.equal(c100.train.numClasses, 100);
  assert.throws(() => loadDataset('cifar10'), dataError(/^--dataset cifar10 needs --data-dir DIR \(the folder with data_batch_1\.bin \.\.\.\)$/));
  assert.throws(() => loadDataset('cifar100', {}), dataError(/^--dataset cifar100 needs --data-dir DIR/));
});
