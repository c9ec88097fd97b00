/**
 * Where minibatches come from, in the one shape that training and evaluation read: a BatchSource yields
 * tensors (x, integer labels) per epoch in a seeded order. It is made from what a tfjs user holds (a
 * tf.data.Dataset of batches, or tensors x and y) or from our image data sets (with augmentation).
 */
import * as tf from '@tensorflow/tfjs';
import { batchesFrom, numBatches, type Augmentation } from './batches.js';
import type { ImageDataset } from './dataset.js';
import { DataError } from './errors.js';
import { mixSeed, permutation } from './random.js';

/** A minibatch: inputs x [n, ...inputShape] and integer labels [n]. Whoever takes it disposes it. */
export interface TensorBatch {
  x: tf.Tensor;
  labels: tf.Tensor1D;
  n: number;
}

/** Which batches of an epoch, in which order. */
export interface BatchOrder {
  batchSize: number;
  /** Shuffled by (seed, epoch) when the source can (tensors, image data sets); a tf.data.Dataset keeps its own order. */
  shuffle: boolean;
  seed: number;
  epoch: number;
  /** Skip this many batches first (resuming inside an epoch). */
  startBatch?: number;
}

/** Minibatches of labelled examples, epoch after epoch. */
export interface BatchSource {
  /** Examples per epoch, when known. */
  readonly size: number | null;
  /** K, when the source can tell (image data sets, one-hot labels); null for integer labels without numClasses. */
  classes(): Promise<number | null>;
  /** The image data set behind the source, if any (its normalisation and class names travel with a model). */
  readonly images: ImageDataset | null;
  /** Batches per epoch, when known. */
  numBatches(batchSize: number): number | null;
  /** One epoch of batches. */
  batches(order: BatchOrder): AsyncGenerator<TensorBatch>;
}

/** A tf.data.Dataset element: a batch as `{xs, ys}` or `[xs, ys]`, as tfjs's `fitDataset` takes it. */
export type DatasetBatch = { xs: tf.Tensor; ys: tf.Tensor } | [tf.Tensor, tf.Tensor];

/**
 * Training or validation data, in any of the shapes a tfjs user holds: a `tf.data.Dataset` of batches
 * (`{xs, ys}`), tensors `{x, y}` or `[x, y]` (batched here), or one of our image data sets. Labels `y`
 * are one-hot [N, K] or integer class indices [N].
 */
export type TrainingData = tf.data.Dataset<tf.TensorContainer> | { x: tf.Tensor; y: tf.Tensor } | [tf.Tensor, tf.Tensor] | ImageDataset | BatchSource;

/** Options of {@link batchSource}. */
export interface BatchSourceOptions {
  /** K: needed with integer labels from tensors or a tf.data.Dataset; one-hot labels must then be K wide. */
  numClasses?: number;
  /** Image data sets only: random crop and flip of every training batch. */
  augment?: Augmentation | null;
  /** Image data sets that name their classes: the names they must have, in label order (a trained model's). */
  classNames?: readonly string[];
  /** tf.data only: batches per epoch, when the data set is endless or of unknown size. */
  batchesPerEpoch?: number;
}

/** A BatchSource over `data`. */
export function batchSource(data: TrainingData, o: BatchSourceOptions = {}): BatchSource {
  if (isBatchSource(data)) return data;
  if (o.batchesPerEpoch !== undefined && !(data instanceof tf.data.Dataset)) throw new DataError('batchesPerEpoch applies to a tf.data.Dataset');
  if (o.batchesPerEpoch !== undefined && !(Number.isSafeInteger(o.batchesPerEpoch) && o.batchesPerEpoch >= 1)) {
    throw new DataError(`batchesPerEpoch must be an integer >= 1, got ${o.batchesPerEpoch}`);
  }
  if (data instanceof tf.data.Dataset) return datasetSource(data, o);
  if (Array.isArray(data)) return tensorSource(data[0], data[1], o);
  if ('x' in data && 'y' in data && data.x instanceof tf.Tensor) return tensorSource(data.x, data.y, o);
  if ('readPixels' in data) {
    if (o.numClasses !== undefined && data.numClasses !== o.numClasses) throw new DataError(`the image data set has ${data.numClasses} classes, expected ${o.numClasses}`);
    const [want, have] = [o.classNames, data.classNames];
    if (want && have && want.some((c, k) => have[k] !== c)) {
      throw new DataError(`the image data set's classes (${have.join(', ')}) are not the model's (${want.join(', ')}), label for label`);
    }
    return imageSource(data, o.augment ?? null);
  }
  throw new DataError('data must be a tf.data.Dataset of {xs, ys} batches, tensors {x, y} or [x, y], or an image data set');
}

function isBatchSource(data: TrainingData): data is BatchSource {
  return typeof (data as BatchSource).batches === 'function' && typeof (data as BatchSource).numBatches === 'function';
}

/** Integer labels from one-hot [n, K] or index [n] labels. */
function toLabels(y: tf.Tensor, numClasses: number | null): tf.Tensor1D {
  return tf.tidy(() => {
    if (y.rank === 2) {
      if (numClasses !== null && y.shape[1] !== numClasses) throw new DataError(`one-hot labels have ${y.shape[1]} classes, expected ${numClasses}`);
      return tf.cast(tf.argMax(y, 1), 'int32') as tf.Tensor1D;
    }
    if (y.rank !== 1) throw new DataError(`labels must be one-hot [n, K] or class indices [n], got shape [${y.shape}]`);
    return tf.cast(y, 'int32') as tf.Tensor1D;
  });
}

function checkLabels(labels: tf.Tensor1D, numClasses: number, where: string): void {
  const values = labels.dataSync();
  for (let i = 0; i < values.length; i++) {
    if (values[i] < 0 || values[i] >= numClasses) throw new DataError(`${where}: label ${values[i]} at index ${i} outside 0..${numClasses - 1}`);
  }
}

/** Integer labels of `y`, each checked to lie in 0..numClasses-1 (freed when one does not). */
function checkedLabels(y: tf.Tensor, numClasses: number, where: string): tf.Tensor1D {
  const labels = toLabels(y, numClasses);
  try {
    checkLabels(labels, numClasses, where);
  } catch (e) {
    labels.dispose();
    throw e;
  }
  return labels;
}

function tensorSource(x: tf.Tensor, y: tf.Tensor, o: BatchSourceOptions): BatchSource {
  if (x.shape[0] !== y.shape[0]) throw new DataError(`x has ${x.shape[0]} examples, y ${y.shape[0]}`);
  if (x.shape[0] === 0) throw new DataError('x holds no examples');
  const numClasses: number | null = o.numClasses ?? (y.rank === 2 ? (y.shape[1] as number) : null);
  if (numClasses === null) throw new DataError('integer labels need numClasses (or give one-hot labels)');
  checkedLabels(y, numClasses, 'y').dispose();
  const size = x.shape[0];
  return {
    size,
    classes: async () => numClasses,
    images: null,
    numBatches: (batchSize) => Math.ceil(size / batchSize),
    async *batches(order) {
      if (!(Number.isSafeInteger(order.batchSize) && order.batchSize >= 1)) throw new RangeError(`batchSize must be a positive integer, got ${order.batchSize}`);
      const perm = order.shuffle ? permutation(size, mixSeed(order.seed, order.epoch)) : null;
      for (let start = (order.startBatch ?? 0) * order.batchSize; start < size; start += order.batchSize) {
        const n = Math.min(order.batchSize, size - start);
        yield tf.tidy(() => {
          if (!perm) return { x: tf.slice(x, start, n), labels: toLabels(tf.slice(y, start, n), numClasses), n };
          const index = tf.tensor1d(Int32Array.from(perm.subarray(start, start + n)), 'int32');
          return { x: tf.gather(x, index), labels: toLabels(tf.gather(y, index), numClasses), n };
        });
      }
    },
  };
}

function datasetSource(ds: tf.data.Dataset<tf.TensorContainer>, o: BatchSourceOptions): BatchSource {
  const finite = Number.isFinite(ds.size) && ds.size > 0;
  const perEpoch = o.batchesPerEpoch ?? (finite ? ds.size : null);
  // With batchesPerEpoch, one iterator runs on across epochs (as in tfjs's fitDataset): each epoch takes
  // the next batches of a long or endless data set. Without it, every epoch iterates the data set anew.
  let running: Awaited<ReturnType<typeof ds.iterator>> | null = null;
  return {
    size: null,
    async classes() {
      if (o.numClasses !== undefined) return o.numClasses;
      // One-hot labels say K: read it from the first batch.
      const [first] = (await ds.take(1).toArray()) as DatasetBatch[];
      if (first === undefined) throw new DataError('the tf.data.Dataset is empty');
      const [, ys] = batchTensors(first, 0);
      const k = ys.rank === 2 ? (ys.shape[1] as number) : null;
      tf.dispose(first as tf.TensorContainer);
      return k;
    },
    images: null,
    numBatches: () => perEpoch,
    async *batches(order) {
      const it = o.batchesPerEpoch === undefined ? await ds.iterator() : (running ??= await ds.iterator());
      for (let b = 0; perEpoch === null || b < perEpoch; b++) {
        const next = await it.next();
        if (next.done) {
          if (o.batchesPerEpoch !== undefined) {
            throw new DataError(
              `the tf.data.Dataset ran out after ${b} batches of epoch ${order.epoch + 1} (batchesPerEpoch ${o.batchesPerEpoch}): ` +
                'it must give batchesPerEpoch * epochs batches in all (.repeat() makes it endless)',
            );
          }
          if (b === 0) throw new DataError('the tf.data.Dataset gave no batches');
          return;
        }
        const [xs, ys] = batchTensors(next.value as DatasetBatch, b);
        if (b < (order.startBatch ?? 0)) {
          tf.dispose([xs, ys]);
          continue;
        }
        const numClasses = o.numClasses ?? (ys.rank === 2 ? (ys.shape[1] as number) : null);
        if (numClasses == null) throw new DataError('integer labels need numClasses (or give one-hot labels)');
        let labels: tf.Tensor1D;
        try {
          labels = checkedLabels(ys, numClasses, `batch ${b}`);
        } catch (e) {
          xs.dispose();
          throw e;
        } finally {
          ys.dispose();
        }
        yield { x: xs, labels, n: xs.shape[0] };
      }
    },
  };
}

/** The inputs and labels of a tf.data.Dataset element, checked. */
function batchTensors(element: DatasetBatch, b: number): [tf.Tensor, tf.Tensor] {
  const [xs, ys] = Array.isArray(element) ? element : [element?.xs, element?.ys];
  if (!(xs instanceof tf.Tensor) || !(ys instanceof tf.Tensor)) {
    tf.dispose(element as tf.TensorContainer);
    throw new DataError('each tf.data.Dataset element must be a batch {xs, ys} (or [xs, ys]) of tensors');
  }
  if (xs.rank === 0 || ys.rank === 0 || xs.shape[0] !== ys.shape[0]) {
    tf.dispose([xs, ys]);
    throw new DataError(`batch ${b}: xs holds ${xs.shape[0] ?? 'no'} examples, ys ${ys.shape[0] ?? 'no'}`);
  }
  return [xs, ys];
}

function imageSource(ds: ImageDataset, augment: Augmentation | null): BatchSource {
  return {
    size: ds.size,
    classes: async () => ds.numClasses,
    images: ds,
    numBatches: (batchSize) => numBatches(ds, { batchSize }),
    async *batches(order) {
      const opts = { batchSize: order.batchSize, shuffle: order.shuffle, seed: order.seed, epoch: order.epoch, augment: augment ?? undefined };
      for (const b of batchesFrom(ds, opts, order.startBatch ?? 0)) {
        yield { x: tf.tensor(b.x, [b.n, ...ds.shape]), labels: tf.tensor1d(b.y, 'int32'), n: b.n };
      }
    },
  };
}
