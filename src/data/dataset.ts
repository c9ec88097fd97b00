import { DataError } from './errors.js';

/**
 * A labelled image data set. Images are raw 0..255 bytes, row-major HWC. In-memory sets (makeDataset)
 * hold them all in `pixels`; streaming sets (makeStreamingDataset) have no `pixels` and produce images
 * on demand through `readPixels`, e.g. reading and decoding files. Every set has `readPixels`.
 */
export interface ImageDataset {
  readonly name: string;
  /** In-memory sets: N*H*W*C raw 0..255, row-major HWC per image. Absent on streaming sets. */
  readonly pixels?: Uint8Array;
  /**
   * Writes image indices[k] (H*W*C raw bytes, HWC) to out[k*H*W*C ...] for every k. Indices must be
   * integers in 0..size-1 and out must hold at least indices.length images (RangeError otherwise).
   */
  readPixels(indices: ArrayLike<number>, out: Uint8Array): void;
  /** N labels, each in 0..numClasses-1. */
  readonly labels: Int32Array;
  /** [H, W, C] */
  readonly shape: readonly [number, number, number];
  readonly numClasses: number;
  readonly size: number;
  /** Per-channel normalisation on the 0..1 scale: x = (p/255 - mean[c]) / std[c]. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** The classes' names, label k naming classNames[k], where the data name them (an image folder's class folders). */
  readonly classNames?: readonly string[];
}

/** A data set whose images are all in memory. */
export interface InMemoryDataset extends ImageDataset {
  readonly pixels: Uint8Array;
}

/** A data set's training and test splits. */
export interface DataSplits<D extends ImageDataset = ImageDataset> {
  train: D;
  test: D;
}

/** What makeDataset needs: everything but the derived `size` and `readPixels`. */
export type DatasetInit = Omit<InMemoryDataset, 'size' | 'readPixels'>;

/** What makeStreamingDataset needs: the metadata and a reader of images by index (validated before each call). */
export type StreamingDatasetInit = Omit<ImageDataset, 'size' | 'pixels'>;

const isPosInt = (v: number) => Number.isInteger(v) && v > 0;

type Meta = Omit<ImageDataset, 'size' | 'pixels' | 'readPixels'>;

/** Checks the metadata shared by both kinds of set; returns size. */
function checkMeta(init: Meta, fail: (msg: string) => never): number {
  const { shape, numClasses, labels, mean, std, classNames } = init;
  if (shape.length !== 3 || !shape.every(isPosInt)) fail(`bad shape [${shape}] (expected [H, W, C] of positive integers)`);
  if (!isPosInt(numClasses)) fail(`bad numClasses ${numClasses}`);
  if (classNames !== undefined && classNames.length !== numClasses) fail(`${classNames.length} class names for ${numClasses} classes`);
  const c = shape[2];
  if (mean.length !== c || std.length !== c) fail(`mean/std need ${c} entries, got ${mean.length}/${std.length}`);
  if (!std.every((s) => s > 0)) fail(`std must be positive, got [${std}]`);
  return labels.length;
}

function checkLabels(name: string, labels: Int32Array, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y < 0 || y >= numClasses) throw new DataError(`${name}: label ${y} at index ${i} outside 0..${numClasses - 1}`);
  }
}

/** RangeError unless indices are integers in 0..size-1 and out holds indices.length images of `stride` bytes. */
function checkRead(name: string, size: number, stride: number, indices: ArrayLike<number>, out: Uint8Array): void {
  if (out.length < indices.length * stride) {
    throw new RangeError(`${name}: readPixels of ${indices.length} images needs ${indices.length * stride} bytes, got ${out.length}`);
  }
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= size) throw new RangeError(`${name}: readPixels index ${i} outside 0..${size - 1}`);
  }
}

/** `classNames` as a field, when there are any (a set without names has no such field). */
function named(classNames: readonly string[] | undefined): { classNames?: readonly string[] } {
  return classNames === undefined ? {} : { classNames: Object.freeze([...classNames]) };
}

/** Attaches readPixels as a non-enumerable property (so deepEqual and structuredClone see only the data) and freezes. */
function finish<D extends ImageDataset>(data: Omit<D, 'readPixels'>, read: (indices: ArrayLike<number>, out: Uint8Array) => void): D {
  const [h, w, c] = data.shape;
  const stride = h * w * c;
  const readPixels = (indices: ArrayLike<number>, out: Uint8Array): void => {
    checkRead(data.name, data.size, stride, indices, out);
    read(indices, out);
  };
  Object.defineProperty(data, 'readPixels', { value: readPixels, enumerable: false });
  return Object.freeze(data) as D;
}

/** An in-memory data set from its pixels and labels, checked (DataError names what is inconsistent). */
export function makeDataset(init: DatasetInit): InMemoryDataset {
  const { name, pixels, labels, shape, numClasses, mean, std, classNames } = init;
  const fail = (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  };
  const size = checkMeta(init, fail);
  const [h, w, c] = shape;
  const stride = h * w * c;
  if (pixels.length !== size * stride) {
    fail(`${size} labels need ${size * stride} pixels (${h}x${w}x${c} each), got ${pixels.length}`);
  }
  checkLabels(name, labels, numClasses);
  return finish<InMemoryDataset>({ name, pixels, labels, shape, numClasses, size, mean, std, ...named(classNames) }, (indices, out) => {
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k];
      out.set(pixels.subarray(i * stride, (i + 1) * stride), k * stride);
    }
  });
}

/**
 * A data set whose images come from `init.readPixels` when asked for (batches() asks once per batch), so
 * only the labels live in memory. The reader gets validated indices and a large enough `out`.
 */
export function makeStreamingDataset(init: StreamingDatasetInit): ImageDataset {
  const { name, labels, shape, numClasses, mean, std, classNames, readPixels } = init;
  const size = checkMeta(init, (msg: string): never => {
    throw new DataError(`${name}: ${msg}`);
  });
  checkLabels(name, labels, numClasses);
  if (typeof readPixels !== 'function') throw new DataError(`${name}: readPixels must be a function`);
  return finish<ImageDataset>({ name, labels, shape, numClasses, size, mean, std, ...named(classNames) }, readPixels);
}

/**
 * `ds` normalised with `norm`'s mean and std instead of its own, its images shared: how a model trained
 * on other data (whose Normalization `norm` is) reads this set's raw pixels.
 */
export function normalizedAs(ds: ImageDataset, norm: { readonly mean: readonly number[]; readonly std: readonly number[] }): ImageDataset {
  const { name, labels, shape, numClasses, classNames } = ds;
  const meta = { name, labels, shape, numClasses, mean: [...norm.mean], std: [...norm.std], ...(classNames && { classNames }) };
  return ds.pixels ? makeDataset({ ...meta, pixels: ds.pixels }) : makeStreamingDataset({ ...meta, readPixels: (indices, out) => ds.readPixels(indices, out) });
}
