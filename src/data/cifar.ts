/**
 * CIFAR-10 and CIFAR-100 from the "binary version" files (https://www.cs.toronto.edu/~kriz/cifar.html).
 * Each record is the label byte(s), then 3072 pixel bytes: the 1024 red, then 1024 green, then 1024 blue
 * values of a 32x32 image, rows first. We convert to HWC.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DataSplits, type InMemoryDataset, makeDataset } from './dataset.js';
import { DataError, requirePath } from './errors.js';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const IMAGE = 3 * PLANE;

interface CifarSpec {
  /** 'cifar10' | 'cifar100': the --dataset name, also the data set name prefix. */
  id: string;
  title: string;
  /** The folder of the official archive, accepted inside dataDir. */
  folder: string;
  /** A folder or file of the Python version, to hint at the wrong download. */
  pythonVersion: string;
  trainFiles: string[];
  testFiles: string[];
  /** Label bytes before the pixels, and the classes of each; `labelByte` is the one we use. */
  labelRanges: number[];
  labelByte: number;
  mean: number[];
  std: number[];
}

const CIFAR10: CifarSpec = {
  id: 'cifar10',
  title: 'CIFAR-10',
  folder: 'cifar-10-batches-bin',
  pythonVersion: 'cifar-10-batches-py',
  trainFiles: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  testFiles: ['test_batch.bin'],
  labelRanges: [10],
  labelByte: 0,
  mean: [0.4914, 0.4822, 0.4465],
  std: [0.247, 0.2435, 0.2616],
};

const CIFAR100: CifarSpec = {
  id: 'cifar100',
  title: 'CIFAR-100',
  folder: 'cifar-100-binary',
  pythonVersion: 'cifar-100-python',
  trainFiles: ['train.bin'],
  testFiles: ['test.bin'],
  // Coarse (20 superclasses), then fine (100 classes): we train on the fine label.
  labelRanges: [20, 100],
  labelByte: 1,
  mean: [0.5071, 0.4865, 0.4409],
  std: [0.2673, 0.2564, 0.2762],
};

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};
const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

/** dataDir itself when it holds the first file, else its official archive folder when present, else dataDir. */
function resolveDir(spec: CifarSpec, dataDir: string): string {
  if (isFile(dataDir)) throw new DataError(`${spec.title} data directory ${dataDir} is a file: give the folder that holds ${spec.trainFiles[0]} or ${spec.folder}/`);
  if (!isDir(dataDir)) throw new DataError(`${spec.title} data directory not found: ${dataDir}`);
  const first = spec.trainFiles[0];
  if (isFile(join(dataDir, first))) return dataDir;
  const inner = join(dataDir, spec.folder);
  if (isDir(inner)) return inner;
  const python = [join(dataDir, spec.pythonVersion), join(dataDir, first.replace(/\.bin$/, ''))].find((p) => isDir(p) || isFile(p));
  const hint = python
    ? ` (${python} is the Python version; download the binary version)`
    : ` (--data-dir should be the folder with ${first} ..., or the one holding ${spec.folder}/)`;
  throw new DataError(`${spec.title} file not found: ${join(dataDir, first)}${hint}`);
}

/** The records of `files` in `dir`, in file order, as one in-memory data set. */
function readSplit(spec: CifarSpec, dir: string, files: string[], split: string): InMemoryDataset {
  const record = spec.labelRanges.length + IMAGE;
  const paths = files.map((f) => join(dir, f));
  const counts = paths.map((path) => {
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new DataError(`${spec.title} file ${path} is not a regular file`);
      size = st.size;
    } catch (e) {
      if (e instanceof DataError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw new DataError(err.code === 'ENOENT' ? `${spec.title} file not found: ${path}` : `cannot read ${path}: ${err.message}`);
    }
    if (size === 0) throw new DataError(`${path}: empty file (expected ${record}-byte ${spec.title} records)`);
    if (size % record !== 0) {
      throw new DataError(
        `${path}: truncated or not a ${spec.title} binary file: ${size} bytes is not a multiple of the ${record}-byte record size`,
      );
    }
    return size / record;
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(total * IMAGE);
  const labels = new Int32Array(total);
  // Read in chunks of whole records so no file (about 30 MB for CIFAR-10, 150 MB for CIFAR-100 train) is held twice.
  const chunkRecords = 4096;
  const chunk = new Uint8Array(chunkRecords * record);
  let n = 0;
  paths.forEach((path, f) => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new DataError(`cannot read ${path}: ${(e as Error).message}`);
    }
    try {
      for (let r0 = 0; r0 < counts[f]; r0 += chunkRecords) {
        const m = Math.min(chunkRecords, counts[f] - r0);
        const want = m * record;
        let got = 0;
        while (got < want) {
          const k = readSync(fd, chunk, got, want - got, r0 * record + got);
          if (k === 0) throw new DataError(`${path}: truncated: file shrank while reading`);
          got += k;
        }
        for (let r = 0; r < m; r++) {
          const rec = chunk.subarray(r * record, (r + 1) * record);
          spec.labelRanges.forEach((k, b) => {
            if (rec[b] >= k) {
              throw new DataError(
                `${path}: record ${r0 + r}: label ${rec[b]} outside 0..${k - 1}` + (spec.labelRanges.length > 1 ? ` (label byte ${b})` : ''),
              );
            }
          });
          labels[n] = rec[spec.labelByte];
          planarToHwc(rec.subarray(spec.labelRanges.length), pixels.subarray(n * IMAGE, (n + 1) * IMAGE));
          n++;
        }
      }
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`cannot read ${path}: ${(e as Error).message}`);
    } finally {
      closeSync(fd);
    }
  });
  return makeDataset({
    name: `${spec.id}/${split}`,
    pixels,
    labels,
    shape: [SIDE, SIDE, 3],
    numClasses: spec.labelRanges[spec.labelByte],
    mean: spec.mean,
    std: spec.std,
  });
}

/** CHW planes (R plane, G plane, B plane) to interleaved HWC. */
function planarToHwc(src: Uint8Array, dst: Uint8Array): void {
  for (let p = 0; p < PLANE; p++) {
    dst[3 * p] = src[p];
    dst[3 * p + 1] = src[PLANE + p];
    dst[3 * p + 2] = src[2 * PLANE + p];
  }
}

function loadCifar(spec: CifarSpec, dataDir: string, loader: string): DataSplits<InMemoryDataset> {
  const dir = resolveDir(spec, requirePath(dataDir, loader));
  return { train: readSplit(spec, dir, spec.trainFiles, 'train'), test: readSplit(spec, dir, spec.testFiles, 'test') };
}

/**
 * CIFAR-10 (50000 train / 10000 test, 32x32x3, 10 classes) from data_batch_1..5.bin and test_batch.bin
 * in `dataDir` or in `dataDir/cifar-10-batches-bin/`.
 */
export function loadCifar10(dataDir: string): DataSplits<InMemoryDataset> {
  return loadCifar(CIFAR10, dataDir, 'loadCifar10');
}

/**
 * CIFAR-100 (50000 train / 10000 test, 32x32x3) with its 100 fine labels, from train.bin and test.bin
 * in `dataDir` or in `dataDir/cifar-100-binary/`.
 */
export function loadCifar100(dataDir: string): DataSplits<InMemoryDataset> {
  return loadCifar(CIFAR100, dataDir, 'loadCifar100');
}
