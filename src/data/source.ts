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
  /** The shape of one example (x without its batch axis), when known before reading a batch. */
  readonly exampleShape?: readonly number[] | null;
  /** One epoch of batches. */
  batches(order: BatchOrder): AsyncGenerator<TensorBatch>;
}

/** A tf.data.Dataset element: a batch as `{xs, ys}` or `[xs, ys]`, as tfjs's `fitDataset` takes it. */
export type DatasetBatch = { xs: tf.Tensor; ys: tf.Tensor } | [tf.Tensor, tf.Tensor];

/**
 * Training or validation data, in any of the shapes a tfjs user holds: a `tf.data.Dataset` of batches
 * (`{xs, ys}`), tensors `{x, y}` or `[x, y]` (batched here), or one of our image data sets. Labels `y`
 * are one-hot [N, K] or integer class indices [N] (or [N, 1], as tfjs's sparse losses take them).
 * Tensors are the network's input as they are: a model trained on an image data set, whose saved
 * predictor takes raw pixels, takes them normalised here.
 */
export type TrainingData = tf.data.Dataset<tf.TensorContainer> | { x: tf.Tensor; y: tf.Tensor } | [tf.Tensor, tf.Tensor] | ImageDataset | BatchSource;

/** Options of {@link batchSource}. */
export interface BatchSourceOptions {
  /** K: needed with integer labels from tensors or a tf.data.Dataset; one-hot labels must then be K wide. */
  numClasses?: number;
  /** Image data sets only: random crop and flip of every training batch. */
  augment?: Augmentation | null;
  /**
   * Image data sets only: a trained model's normalisation (its Normalization), which the data set's mean
   * and std must equal, and its class names, which a data set that names its classes must have in label
   * order. Anything else would be scored or trained on inputs the model never saw in that form.
   */
  normalization?: { readonly mean: readonly number[]; readonly std: readonly number[]; readonly classNames?: readonly string[] } | null;
  /** tf.data only: batches per epoch, when the data set is endless or of unknown size. */
  batchesPerEpoch?: number;
}

/**
 * Throws a DataError when `source`'s examples are known not to have `inputShape` (what a model takes), so
 * that data of the wrong shape fail before training rather than at the first step or after an epoch.
 */
export function checkExampleShape(source: BatchSource, inputShape: readonly number[], what: string): void {
  const shape = source.exampleShape;
  if (shape && shape.join() !== inputShape.join()) throw new DataError(`${what}: each example is [${shape}], the model takes [${inputShape}]`);
}

/** A BatchSource over `data`. */
export function batchSource(data: TrainingData, o: BatchSourceOptions = {}): BatchSource {
  const expected = 'data must be a tf.data.Dataset of {xs, ys} batches, tensors {x, y} or [x, y], or an image data set';
  if (data instanceof tf.Tensor) throw new DataError(`${expected}, got one tensor: give the inputs and labels together, e.g. [x, y] (model.fit(x, y) takes them apart)`);
  if (typeof data !== 'object' || data === null) throw new DataError(`${expected}, got ${String(data)}`);
  if (isBatchSource(data)) return data;
  if (o.augment && !('readPixels' in data)) throw new DataError('augment applies to image data sets (it crops and flips their pixels), not to tensors or a tf.data.Dataset');
  if (o.batchesPerEpoch !== undefined && !(data instanceof tf.data.Dataset)) throw new DataError('batchesPerEpoch applies to a tf.data.Dataset');
  if (o.batchesPerEpoch !== undefined && !(Number.isSafeInteger(o.batchesPerEpoch) && o.batchesPerEpoch >= 1)) {
    throw new DataError(`batchesPerEpoch must be an integer >= 1, got ${o.batchesPerEpoch}`);
  }
  if (data instanceof tf.data.Dataset) return datasetSource(data, o);
  const pair = Array.isArray(data) ? data : 'x' in data && 'y' in data ? [data.x, data.y] : null;
  if (pair) {
    const what = (t: unknown) => (Array.isArray(t) ? 'an array' : ArrayBuffer.isView(t) ? 'a typed array' : String(t));
    const names = Array.isArray(data) ? ['data[0]', 'data[1]'] : ['x', 'y'];
    pair.forEach((t, i) => {
      if (!(t instanceof tf.Tensor)) throw new DataError(`${names[i]} must be a tf.Tensor (e.g. ${i === 0 ? 'tf.tensor2d(rows)' : "tf.tensor1d(labels, 'int32')"}), got ${what(t)}`);
    });
    return tensorSource(pair[0], pair[1], o);
  }
  if ('readPixels' in data) {
    if (o.numClasses !== undefined && data.numClasses !== o.numClasses) throw new DataError(`the image data set has ${data.numClasses} classes, expected ${o.numClasses}`);
    const model = o.normalization;
    const [want, have] = [model?.classNames, data.classNames];
    if (want && have && want.some((c, k) => have[k] !== c)) {
      throw new DataError(`the image data set's classes (${have.join(', ')}) are not the model's (${want.join(', ')}), label for label`);
    }
    const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= 1e-6 * Math.max(1, Math.abs(v)));
    if (model && !(same(model.mean, data.mean) && same(model.std, data.std))) {
      throw new DataError(
        `the image data set is normalised with mean [${data.mean}], std [${data.std}]; the model was trained with mean [${model.mean}], std [${model.std}] (make the data set with the model's)`,
      );
    }
    return imageSource(data, o.augment ?? null);
  }
  throw new DataError(expected);
}

function isBatchSource(data: TrainingData): data is BatchSource {
  return typeof (data as BatchSource).batches === 'function' && typeof (data as BatchSource).numBatches === 'function';
}

/** Class indices [n] or [n, 1] (tfjs's sparse form); one-hot labels are [n, K] with K >= 2. */
const isIndexLabels = (y: tf.Tensor) => y.rank === 1 || (y.rank === 2 && y.shape[1] === 1);

/** K of one-hot labels; null for class indices. */
const oneHotWidth = (y: tf.Tensor): number | null => (isIndexLabels(y) ? null : (y.shape[1] ?? null));

/** Integer labels from one-hot [n, K] or index [n] / [n, 1] labels. */
function toLabels(y: tf.Tensor, numClasses: number | null, where = 'y'): tf.Tensor1D {
  return tf.tidy(() => {
    if (y.rank > 2 || y.rank === 0) throw new DataError(`${where}: labels must be one-hot [n, K] or class indices [n], got shape [${y.shape}]`);
    if (isIndexLabels(y)) return tf.cast(tf.reshape(y, [-1]), 'int32') as tf.Tensor1D;
    if (numClasses !== null && y.shape[1] !== numClasses) throw new DataError(`${where}: one-hot labels have ${y.shape[1]} classes, expected ${numClasses}`);
    return tf.cast(tf.argMax(y, 1), 'int32') as tf.Tensor1D;
  });
}

/** Integer labels of `y`, each checked to be a whole number in 0..numClasses-1 (freed when one is not). */
function checkedLabels(y: tf.Tensor, numClasses: number, where: string): tf.Tensor1D {
  const labels = toLabels(y, numClasses, where);
  // Index labels are checked before the cast to int32, which would read 1.7 as 1 and NaN as 0.
  const values = isIndexLabels(y) ? y.dataSync() : labels.dataSync();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isInteger(v) && v >= 0 && v < numClasses) continue;
    labels.dispose();
    const problem = Number.isInteger(v) ? `outside 0..${numClasses - 1}` : 'is not a whole number (a class index)';
    throw new DataError(`${where}: label ${Number(v.toPrecision(7))} at index ${i} ${problem}`);
  }
  return labels;
}

function tensorSource(x: tf.Tensor, y: tf.Tensor, o: BatchSourceOptions): BatchSource {
  if (x.shape[0] !== y.shape[0]) throw new DataError(`x has ${x.shape[0]} examples, y ${y.shape[0]}`);
  if (x.shape[0] === 0) throw new DataError('x holds no examples');
  const numClasses: number | null = o.numClasses ?? oneHotWidth(y);
  if (numClasses === null) throw new DataError('integer labels need numClasses (or give one-hot labels)');
  checkedLabels(y, numClasses, 'y').dispose();
  const size = x.shape[0];
  return {
    size,
    exampleShape: x.shape.slice(1),
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
  // K: given, or the first one-hot batch's width, which every later batch must then have.
  let known: number | null = o.numClasses ?? null;
  let peeked: Promise<number | null> | null = null;
  const peek = async (): Promise<number | null> => {
    // One-hot labels say K: read it from the first batch (once).
    const [first] = (await ds.take(1).toArray()) as DatasetBatch[];
    if (first === undefined) throw new DataError('the tf.data.Dataset is empty');
    const [, ys] = batchTensors(first, 0);
    const k = oneHotWidth(ys);
    tf.dispose(first as tf.TensorContainer);
    return k;
  };
  return {
    size: null,
    async classes() {
      if (known !== null) return known;
      return (peeked ??= peek());
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
        known ??= oneHotWidth(ys);
        const numClasses = known;
        if (numClasses === null) {
          tf.dispose([xs, ys]);
          throw new DataError('integer labels need numClasses (or give one-hot labels)');
        }
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
    throw new DataError(`batch ${b}: xs holds ${xs.shape[0] ?? 'no'} examples, ys ${ys.shape[0] ?? 'no'} (each element must be a batch: is .batch(n) missing?)`);
  }
  return [xs, ys];
}

function imageSource(ds: ImageDataset, augment: Augmentation | null): BatchSource {
  return {
    size: ds.size,
    exampleShape: ds.shape,
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
