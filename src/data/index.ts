/** Data in memory: image data sets, seeded subsets and batches, and sources of tensor batches (browser-safe). */
export { type Augmentation, type Batch, type BatchOptions, type ElasticDistortion, batches, batchesFrom, numBatches } from './batches.js';
export {
  type DataSplits,
  type DatasetInit,
  type ImageDataset,
  type InMemoryDataset,
  type StreamingDatasetInit,
  makeDataset,
  makeStreamingDataset,
  normalizedAs,
} from './dataset.js';
export { DataError } from './errors.js';
export { MNIST_NORMALIZATION, mnistFromIdx, parseIdx, type IdxArray } from './idx.js';
export { Rng, mixSeed, permutation } from './random.js';
export {
  type BatchOrder,
  type BatchSource,
  type BatchSourceOptions,
  type DatasetBatch,
  type TensorBatch,
  type TrainingData,
  batchSource,
} from './source.js';
export { subset } from './subset.js';
