import type { DataSplits } from './dataset.js';
import { DataError } from './errors.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadMnist } from './mnist.js';

export type DatasetName = 'mnist' | 'fashion-mnist';
export const DATASETS: readonly DatasetName[] = ['mnist', 'fashion-mnist'];

/** `seed` only affects Fashion-MNIST, whose train/test split is ours; MNIST uses the official split. */
export function loadDataset(name: DatasetName, opts: { dataDir?: string; seed?: number } = {}): DataSplits {
  switch (name) {
    case 'mnist':
      return loadMnist(opts.dataDir);
    case 'fashion-mnist':
      return loadFashionMnist(opts.dataDir, opts.seed);
    default:
      // Reachable from untyped callers (CLI strings, JSON configs).
      throw new DataError(`unknown dataset '${String(name)}' (expected one of: ${DATASETS.join(', ')})`);
  }
}

export {
  type Batch,
  type BatchOptions,
  type DataSplits,
  type ImageDataset,
  batches,
  batchesFrom,
  makeDataset,
  numBatches,
  subset,
} from './dataset.js';
export { DataError } from './errors.js';
export { loadFashionMnist } from './fashion-mnist.js';
export { loadMnist } from './mnist.js';
export { Rng, mixSeed, permutation } from './random.js';
