/** The IDX format of MNIST (browser-safe: parsing only; `sll/node` reads the files). */
import { makeDataset, type InMemoryDataset } from './dataset.js';
import { DataError } from './errors.js';

const UNSIGNED_BYTE = 0x08;

/** An IDX file's contents: its dimensions and its unsigned bytes, row-major. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Parses an IDX file (http://yann.lecun.com/exdb/mnist/) of unsigned bytes; `what` names the source in errors. */
export function parseIdx(buf: Uint8Array, what: string): IdxArray {
  if (buf.length < 4) throw new DataError(`${what}: truncated: expected at least 4 header bytes, got ${buf.length}`);
  const ndims = buf[3];
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== UNSIGNED_BYTE || ndims === 0) {
    throw new DataError(
      `${what}: bad magic 0x${hex(buf.subarray(0, 4))} (expected 0x0000080N: unsigned bytes, N >= 1 dimensions)`,
    );
  }
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new DataError(`${what}: truncated: expected at least ${header} header bytes, got ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = header + dims.reduce((a, b) => a * b, 1);
  if (buf.length < expected) throw new DataError(`${what}: truncated: expected ${expected} bytes, got ${buf.length}`);
  if (buf.length > expected) throw new DataError(`${what}: trailing data: expected ${expected} bytes, got ${buf.length}`);
  // A plain Uint8Array view (not a Buffer) so callers get the documented type without a copy.
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, expected - header) };
}

/** MNIST's per-channel mean and std on the 0..1 scale: the normalisation every MNIST data set records. */
export const MNIST_NORMALIZATION = { mean: [0.1307], std: [0.3081] } as const;

/**
 * An MNIST split from its two parsed IDX files (images N x 28 x 28, labels N), checked against each other;
 * `what` names the files in errors. The bytes may come from disk (`loadMnist` of `sll/node`) or the network.
 */
export function mnistFromIdx(images: IdxArray, labels: IdxArray, name: string, what: { images: string; labels: string }): InMemoryDataset {
  const [n, h, w] = images.dims;
  if (images.dims.length !== 3 || h !== 28 || w !== 28) {
    throw new DataError(`${what.images}: expected dims [N, 28, 28], got [${images.dims}]`);
  }
  if (labels.dims.length !== 1) throw new DataError(`${what.labels}: expected dims [N], got [${labels.dims}]`);
  if (n === 0) throw new DataError(`${what.images}: holds no images`);
  if (labels.dims[0] !== n) {
    throw new DataError(`${name}: ${n} images (${what.images}) but ${labels.dims[0]} labels (${what.labels})`);
  }
  return makeDataset({
    name,
    pixels: images.data,
    labels: Int32Array.from(labels.data),
    shape: [28, 28, 1],
    numClasses: 10,
    mean: [...MNIST_NORMALIZATION.mean],
    std: [...MNIST_NORMALIZATION.std],
  });
}
