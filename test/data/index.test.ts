import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DATASETS, DataError, type DatasetName, loadDataset } from '../../src/data/index.js';
import { tempDir } from './helpers.js';

const root = tempDir();

test('DATASETS lists every loadable data set name', () => {
  assert.deepEqual(DATASETS, ['mnist', 'fashion-mnist']);
});

test('loadDataset dispatches to the loader of the named data set, passing dataDir', () => {
  const dir = join(root, 'absent');
  assert.throws(() => loadDataset('mnist', { dataDir: dir }), (e: Error) => e instanceof DataError && e.message.includes(join(dir, 'train-images-idx3-ubyte')));
  assert.throws(() => loadDataset('fashion-mnist', { dataDir: dir, seed: 1 }), (e: Error) => e instanceof DataError && e.message.includes(join(dir, '0.json')));
});

test('loadDataset rejects an unknown name (from untyped callers) with the valid names', () => {
  assert.throws(() => loadDataset('cifar10' as DatasetName), (e: Error) => e instanceof DataError && /unknown dataset 'cifar10' \(expected one of: mnist, fashion-mnist\)/.test(e.message));
});
