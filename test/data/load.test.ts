import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataError } from '../../src/data/errors.js';
import { DATASETS, type DatasetName, loadDataset } from '../../src/data/load.js';
import { tempDir } from './helpers.js';

const root = tempDir();

test('DATASETS lists every loadable data set name', () => {
  assert.deepEqual(DATASETS, ['mnist', 'fashion-mnist', 'cifar10', 'cifar100', 'imagefolder']);
});

test('loadDataset dispatches to the loader of the named data set, passing dataDir', () => {
  const dir = join(root, 'absent');
  assert.throws(() => loadDataset('mnist', { dataDir: dir }), (e: Error) => e instanceof DataError && e.message.includes(join(dir, 'train-images-idx3-ubyte')));
  assert.throws(() => loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }), (e: Error) => e instanceof DataError && e.message.includes(join(dir, '0.json')));
  assert.throws(() => loadDataset('cifar10', { dataDir: dir }), (e: Error) => e instanceof DataError && e.message === `CIFAR-10 data directory not found: ${dir}`);
  assert.throws(() => loadDataset('cifar100', { dataDir: dir }), (e: Error) => e instanceof DataError && e.message === `CIFAR-100 data directory not found: ${dir}`);
  assert.throws(() => loadDataset('imagefolder', { dataDir: dir }), (e: Error) => e instanceof DataError && e.message === `image folder root not found: ${dir}`);
});

test('cifar10, cifar100 and imagefolder need a dataDir', () => {
  for (const name of ['cifar10', 'cifar100', 'imagefolder'] as const) {
    assert.throws(() => loadDataset(name, { seed: 1 }), (e: Error) => e instanceof DataError && e.message.startsWith(`--dataset ${name} needs --data-dir DIR (`));
  }
  assert.throws(() => loadDataset('cifar10'), (e: Error) => e.message === '--dataset cifar10 needs --data-dir DIR (the folder with data_batch_1.bin ...)');
});

test('loadDataset rejects an unknown name (from untyped callers) with the valid names', () => {
  assert.throws(
    () => loadDataset('svhn' as DatasetName),
    (e: Error) => e instanceof DataError && /unknown dataset 'svhn' \(expected one of: mnist, fashion-mnist, cifar10, cifar100, imagefolder\)/.test(e.message),
  );
});
