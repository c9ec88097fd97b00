import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { type BatchOptions, batches, batchesFrom } from '../../src/data/batches.js';
import { type ImageDataset, makeDataset } from '../../src/data/dataset.js';
import { subset } from '../../src/data/subset.js';
import { DataError } from '../../src/data/errors.js';
import { checkImageHeader, decodeImage, resizeImage } from '../../src/data/image.js';
import { listImageFolder, loadImageFolder } from '../../src/data/imagefolder.js';
import { loadDataset } from '../../src/data/load.js';
import { tempDir } from './helpers.js';

const base = tempDir();
const { PNG } = pngjs;

type Rgb = [number, number, number];

/** RGBA bytes of a w x h image whose pixel (i, j) is f(i, j). */
function rgba(w: number, h: number, f: (i: number, j: number) => [number, number, number, number]): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) data.set(f(i, j), (i * w + j) * 4);
  return data;
}

const jpegOf = (w: number, h: number, f: (i: number, j: number) => Rgb, quality = 95) =>
  jpeg.encode({ width: w, height: h, data: rgba(w, h, (i, j) => [...f(i, j), 255]) }, quality).data;

function pngOf(w: number, h: number, f: (i: number, j: number) => [number, number, number, number], colorType: 2 | 6 = 2): Buffer {
  const png = new PNG({ width: w, height: h });
  png.data = rgba(w, h, f);
  return PNG.sync.write(png, { colorType });
}

function grayPngOf(w: number, h: number, f: (i: number, j: number) => number): Buffer {
  const png = new PNG({ width: w, height: h, colorType: 0, inputColorType: 0 });
  png.data = Buffer.from(Array.from({ length: w * h }, (_, k) => f(Math.floor(k / w), k % w)));
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0 });
}

function put(path: string, content: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

const CAT: Rgb = [10, 200, 30];
const CAT_JPEG: Rgb = [120, 60, 200];
const checker = (i: number, j: number) => ((i + j) % 2 === 0 ? 40 : 200);

/** A small tree: classes ant, cat, dog in train/; ant and dog in val/; plus files that must be skipped. */
function tree(name: string): string {
  const root = join(base, name);
  put(join(root, 'train/cat/a.png'), pngOf(40, 30, () => [...CAT, 255]));
  put(join(root, 'train/cat/b.jpg'), jpegOf(17, 23, () => CAT_JPEG));
  put(join(root, 'train/cat/notes.txt'), 'not an image');
  put(join(root, 'train/cat/.hidden.png'), 'skipped');
  put(join(root, 'train/ant/x.PNG'), grayPngOf(9, 5, () => 77));
  put(join(root, 'train/ant/y.jpeg'), jpegOf(64, 48, (i, j) => [(i * 5) % 256, (j * 3) % 256, 128]));
  put(join(root, 'train/dog/checker.png'), grayPngOf(2, 2, checker));
  put(join(root, 'train/dog/rgba.png'), pngOf(6, 6, () => [200, 100, 50, 51], 6));
  put(join(root, 'train/.cache/z.png'), 'skipped');
  put(join(root, 'val/ant/v1.png'), pngOf(3, 7, () => [1, 2, 3, 255]));
  put(join(root, 'val/dog/v2.jpg'), jpegOf(31, 8, () => [90, 90, 90]));
  put(join(root, 'val/dog/v3.jpg'), jpegOf(8, 31, () => [30, 60, 90]));
  return root;
}

const dataError = (re: RegExp) => (e: Error) => e instanceof DataError && re.test(e.message);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** All images of ds as one byte array. */
function readAll(ds: ImageDataset): Uint8Array {
  const [h, w, c] = ds.shape;
  const out = new Uint8Array(ds.size * h * w * c);
  ds.readPixels(Array.from({ length: ds.size }, (_, i) => i), out);
  return out;
}

/** The pixels of image n as [r, g, b] triples. */
function rgbOf(all: Uint8Array, n: number, s: number): Rgb[] {
  return Array.from({ length: s * s }, (_, p) => [...all.subarray((n * s * s + p) * 3, (n * s * s + p) * 3 + 3)] as Rgb);
}

const root = tree('main');

test('listImageFolder: sorted class folders of train/, images by class then path, other files skipped', () => {
  const index = listImageFolder(root);
  assert.deepEqual(index.classes, ['ant', 'cat', 'dog']);
  const rel = (files: string[]) => files.map((f) => f.slice(root.length + 1));
  assert.deepEqual(rel(index.train.files), ['train/ant/x.PNG', 'train/ant/y.jpeg', 'train/cat/a.png', 'train/cat/b.jpg', 'train/dog/checker.png', 'train/dog/rgba.png']);
  assert.deepEqual([...index.train.labels], [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(rel(index.val.files), ['val/ant/v1.png', 'val/dog/v2.jpg', 'val/dog/v3.jpg']);
  assert.deepEqual([...index.val.labels], [0, 2, 2]);
  assert.deepEqual(index.skipped, [{ path: join(root, 'train/cat/notes.txt'), reason: 'not a .jpg, .jpeg or .png file' }], 'hidden entries are not listed');
});

test('what an image folder holds and does not load is told once, by reason, not passed over in silence', () => {
  const r = tree('skipped');
  put(join(r, 'train/cat/c.gif'), 'GIF89a');
  put(join(r, 'val/dog/d.webp'), 'RIFF');
  symlinkSync(join(r, 'nowhere.png'), join(r, 'train/dog/broken.png'));
  put(join(r, 'train/ant/1/2/3/4/5/deep.png'), pngOf(2, 2, () => [1, 2, 3, 255]));
  put(join(r, 'train/ant/1/2/3/4/ok.png'), pngOf(2, 2, () => [1, 2, 3, 255]));
  const warnings: string[] = [];
  const { train } = loadImageFolder(r, { imageSize: 4, warn: (m) => warnings.push(m) });
  assert.equal(train.size, 7, 'the image 4 folders down is loaded');
  assert.equal(warnings.length, 1);
  const [notice] = warnings;
  assert.match(notice, /^image folder: 5 entries not loaded: /);
  assert.match(notice, new RegExp(`3 not a \\.jpg, \\.jpeg or \\.png file \\(e\\.g\\. ${esc(join(r, 'train/cat/c.gif'))}\\)`));
  assert.match(notice, new RegExp(`1 a broken link or not a regular file \\(${esc(join(r, 'train/dog/broken.png'))}\\)`));
  assert.match(notice, new RegExp(`1 more than 4 folders below its class folder \\(${esc(join(r, 'train/ant/1/2/3/4/5'))}\\)`));
  const quiet: string[] = [];
  loadImageFolder(tree('clean-skips'), { warn: (m) => quiet.push(m) });
  assert.deepEqual(quiet.length, 1, 'the tree\'s notes.txt');
});

test('loaders given no path, null options or bad numbers say so', () => {
  assert.throws(() => loadImageFolder(null as unknown as string), dataError(/loadImageFolder needs the path of its data folder, got null/));
  assert.throws(() => listImageFolder(''), dataError(/listImageFolder needs the path of its data folder, got an empty string/));
  assert.equal(loadImageFolder(root, null as unknown as undefined).train.size, 6, 'null options are the defaults');
  assert.throws(() => loadImageFolder(root, { cacheMaxBytes: -1 }), /cacheMaxBytes must be a number of bytes >= 0, got -1/);
  assert.throws(() => loadImageFolder(root, { workers: 1.5 }), /workers must be an integer >= 0, got 1.5/);
  assert.throws(() => loadDataset('cifar10', null), dataError(/--dataset cifar10 needs --data-dir DIR/));
  const ds = loadImageFolder(root, { imageSize: 2 }).train;
  assert.throws(() => subset(ds, 2, NaN), /subset: seed must be an integer, got NaN/);
});

test('loadImageFolder: streaming sets of S x S x 3 images with ImageNet statistics', () => {
  const { train, test: val, classes } = loadImageFolder(root, { imageSize: 8 });
  assert.deepEqual(classes, ['ant', 'cat', 'dog']);
  assert.equal(train.name, 'imagefolder/train');
  assert.equal(val.name, 'imagefolder/val');
  assert.equal(train.pixels, undefined);
  assert.deepEqual(train.shape, [8, 8, 3]);
  assert.deepEqual(val.shape, [8, 8, 3]);
  assert.equal(train.numClasses, 3);
  assert.equal(val.numClasses, 3);
  assert.equal(train.size, 6);
  assert.equal(val.size, 3);
  assert.deepEqual(train.mean, [0.485, 0.456, 0.406]);
  assert.deepEqual(train.std, [0.229, 0.224, 0.225]);
  assert.deepEqual(loadImageFolder(root).train.shape, [64, 64, 3]);
});

test('decoded and resized pixels: constant colours stay exact (PNG) or close (JPEG), gray and RGBA become RGB', () => {
  const s = 8;
  const { train, test: val } = loadImageFolder(root, { imageSize: s });
  const px = readAll(train);
  const same = (n: number, want: Rgb) => rgbOf(px, n, s).forEach((p) => assert.deepEqual(p, want));
  same(0, [77, 77, 77]); // grayscale PNG 9x5, upscaled and squashed
  same(2, CAT); // RGB PNG 40x30, shrunk
  same(5, [40, 20, 10]); // RGBA PNG (200, 100, 50) at alpha 51/255: composited over black
  for (const p of rgbOf(px, 3, s)) p.forEach((v, ch) => assert.ok(Math.abs(v - CAT_JPEG[ch]) <= 3, `JPEG pixel ${p} far from ${CAT_JPEG}`));
  const v = readAll(val);
  rgbOf(v, 0, s).forEach((p) => assert.deepEqual(p, [1, 2, 3]));
  for (const n of [1, 2]) for (const p of rgbOf(v, n, s)) assert.ok(Math.abs(p[0] - (n === 1 ? 90 : 30)) <= 3, `${p}`);
});

test('a 2x2 checker resized stays within its values, keeps its corners when enlarged and averages when shrunk', () => {
  for (const s of [1, 2, 3, 8, 13]) {
    const px = readAll(loadImageFolder(root, { imageSize: s }).train);
    const img = rgbOf(px, 4, s);
    for (const p of img) {
      assert.ok(p[0] >= 40 && p[0] <= 200, `value ${p[0]} outside 40..200 at size ${s}`);
      assert.ok(p[0] === p[1] && p[1] === p[2]);
    }
    if (s === 1) assert.deepEqual(img[0], [120, 120, 120]);
    if (s === 2) assert.deepEqual(img.map((p) => p[0]), [40, 200, 200, 40]);
    if (s >= 2) assert.deepEqual([img[0][0], img[s - 1][0], img[s * (s - 1)][0], img[s * s - 1][0]], [40, 200, 200, 40]);
    const mean = img.reduce((a, p) => a + p[0], 0) / img.length;
    if (s % 2 === 0) assert.ok(Math.abs(mean - 120) < 1, `mean ${mean} at size ${s}`);
  }
});

test('resizeImage: area average when shrinking, bilinear when enlarging, identity at the same size', () => {
  const ramp = { width: 4, height: 1, channels: 1, data: Uint8Array.from([0, 100, 200, 255]) };
  assert.deepEqual([...resizeImage(ramp, 2, 1)], [50, 228]);
  assert.deepEqual([...resizeImage(ramp, 1, 1)], [139]);
  // 4 -> 3: spans [0, 4/3), [4/3, 8/3), [8/3, 4).
  assert.deepEqual([...resizeImage(ramp, 3, 1)], [25, 150, 241]);
  const two = { width: 2, height: 1, channels: 1, data: Uint8Array.from([0, 200]) };
  // 2 -> 4: centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
  assert.deepEqual([...resizeImage(two, 4, 1)], [0, 50, 150, 200]);
  assert.deepEqual(resizeImage(ramp, 4, 1), ramp.data);
  assert.throws(() => resizeImage(ramp, 0, 1), RangeError);
});

test('streaming batches equal the batches of the same images held in memory', () => {
  const { train } = loadImageFolder(root, { imageSize: 6 });
  const mem = makeDataset({ ...train, pixels: readAll(train) });
  for (const opts of [
    { batchSize: 4 },
    { batchSize: 4, shuffle: true, seed: 2, epoch: 1, augment: { cropPadding: 1, flip: true } },
    { batchSize: 6, shuffle: true, seed: 5, augment: { cropPadding: 2 } },
  ] as BatchOptions[]) {
    assert.deepEqual([...batches(train, opts)], [...batches(mem, opts)]);
    assert.deepEqual([...batchesFrom(train, opts, 1)], [...batchesFrom(mem, opts, 1)]);
  }
  const sub = subset(train, 3, 1);
  assert.equal(sub.pixels, undefined);
  assert.deepEqual(readAll(sub), subset(mem, 3, 1).pixels);
  assert.deepEqual([...batches(sub, { batchSize: 2, shuffle: true })], [...batches(subset(mem, 3, 1), { batchSize: 2, shuffle: true })]);
});

test('images are read from disk when a batch asks for them, not at load time', () => {
  const r = tree('lazy');
  const { train } = loadImageFolder(r, { imageSize: 4 });
  put(join(r, 'train/cat/a.png'), pngOf(5, 5, () => [1, 1, 1, 255]));
  assert.deepEqual(rgbOf(readAll(train), 2, 4)[0], [1, 1, 1]);
  const bad = join(r, 'train/cat/a.png');
  put(bad, 'this is not a PNG');
  assert.throws(() => readAll(train), dataError(new RegExp(`^${esc(bad)}: not a JPEG or PNG image$`)));
  // Batches before the one holding the bad image are fine; the bad one names the file.
  const it = batches(train, { batchSize: 2 });
  assert.equal(it.next().value?.n, 2);
  assert.throws(() => it.next(), dataError(new RegExp(esc(bad))));
  rmSync(bad);
  assert.throws(() => readAll(train), dataError(new RegExp(`^cannot read image ${esc(bad)}: `)));
});

test('corrupt images: truncated JPEG and PNG, garbage with an image name, all name the file', () => {
  const r = tree('corrupt');
  const cases: [string, Uint8Array | string][] = [
    ['train/ant/y.jpeg', jpegOf(64, 48, () => [1, 2, 3]).subarray(0, 200)],
    ['train/ant/x.PNG', grayPngOf(9, 5, () => 77).subarray(0, 40)],
    ['train/ant/x.PNG', jpegOf(4, 4, () => [1, 2, 3]).subarray(0, 3)],
    ['train/ant/x.PNG', ''],
  ];
  for (const [file, content] of cases) {
    const path = join(r, file);
    const keep = file.endsWith('PNG') ? grayPngOf(9, 5, () => 77) : jpegOf(64, 48, (i, j) => [i, j, 1]);
    put(path, content);
    // Found at load, by the header and end-marker check, before any batch.
    assert.throws(() => loadImageFolder(r, { imageSize: 4 }), dataError(new RegExp(`^${esc(path)}: `)), `case ${file}/${content.length}`);
    // Unchecked, the decoder finds it when its batch comes.
    const { train } = loadImageFolder(r, { imageSize: 4, validate: false });
    assert.throws(() => [...batches(train, { batchSize: 6 })], dataError(new RegExp(`^${esc(path)}: `)), `case ${file}/${content.length}`);
    put(path, keep);
  }
  assert.throws(() => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0, 1, 2]), 'q.jpg'), dataError(/^q\.jpg: corrupt or unsupported image/));
});

test('the load-time check reads headers and end markers: sizes of whole files, every damaged file named in one error', () => {
  const r = tree('headers');
  const check = (buf: Uint8Array) => checkImageHeader(buf.length, (p, n) => buf.subarray(p, p + n), 'f');
  assert.deepEqual(check(jpegOf(17, 23, () => CAT_JPEG)), { width: 17, height: 23 });
  assert.deepEqual(check(pngOf(40, 30, () => [...CAT, 255])), { width: 40, height: 30 });
  assert.deepEqual(check(grayPngOf(9, 5, () => 77)), { width: 9, height: 5 });
  // A JPEG with a large APP segment before its frame header (as EXIF data puts there).
  const plain = jpegOf(6, 7, () => CAT_JPEG);
  const app1 = new Uint8Array(4 + 30000);
  app1.set([0xff, 0xe1, (30002 >> 8) & 0xff, 30002 & 0xff]);
  const withExif = new Uint8Array([...plain.subarray(0, 2), ...app1, ...plain.subarray(2)]);
  assert.deepEqual(check(withExif), { width: 6, height: 7 });
  const jpg = jpegOf(64, 48, (i, j) => [i, j, 1]);
  assert.throws(() => check(jpg.subarray(0, jpg.length - 10)), dataError(/^f: truncated JPEG: no end-of-image marker$/));
  const png = pngOf(40, 30, () => [...CAT, 255]);
  assert.throws(() => check(png.subarray(0, png.length - 20)), dataError(/^f: truncated PNG: it does not end with its IEND chunk$/));
  assert.throws(() => check(new TextEncoder().encode('hello, I am text')), dataError(/^f: not a JPEG or PNG image$/));
  assert.throws(() => check(new Uint8Array(0)), dataError(/^f: empty file/));
  const badVal = join(r, 'val/ant/bad.png');
  const badTrain = join(r, 'train/cat/c.jpg');
  put(badVal, 'a text file named .png');
  put(badTrain, jpg.subarray(0, 300));
  assert.throws(() => loadImageFolder(r), dataError(new RegExp(`^2 damaged images \\(fix or remove them\\):\n  ${esc(badTrain)}: truncated JPEG.*\n  ${esc(badVal)}: not a JPEG or PNG image$`)));
});

test('bad trees: missing root, train or val, empty class folders, val classes not in train', () => {
  const missing = join(base, 'nope');
  assert.throws(() => loadImageFolder(missing), dataError(new RegExp(`^image folder root not found: ${esc(missing)}$`)));
  const r = tree('bad');
  rmSync(join(r, 'val'), { recursive: true });
  assert.throws(() => loadImageFolder(r), dataError(new RegExp(`^val folder not found: ${esc(join(r, 'val'))}`)));
  const noTrain = join(base, 'no-train');
  put(join(noTrain, 'val/a/x.png'), pngOf(2, 2, () => [0, 0, 0, 255]));
  assert.throws(() => loadImageFolder(noTrain), dataError(new RegExp(`^train folder not found: ${esc(join(noTrain, 'train'))}`)));

  const e = tree('empty-class');
  put(join(e, 'train/bee/readme.txt'), 'no images here');
  assert.throws(() => loadImageFolder(e), dataError(new RegExp(`^empty class folder .*: ${esc(join(e, 'train/bee'))}$`)));
  const ev = tree('empty-val-class');
  mkdirSync(join(ev, 'val/cat'));
  assert.throws(() => loadImageFolder(ev), dataError(new RegExp(`^empty class folder .*: ${esc(join(ev, 'val/cat'))}$`)));

  const z = tree('val-zebra');
  put(join(z, 'val/zebra/z.png'), pngOf(2, 2, () => [0, 0, 0, 255]));
  assert.throws(() => loadImageFolder(z), dataError(new RegExp(`^val class folder not in train/: ${esc(join(z, 'val/zebra'))}$`)));

  const flat = join(base, 'flat');
  put(join(flat, 'train/x.png'), pngOf(2, 2, () => [0, 0, 0, 255]));
  put(join(flat, 'val/x.png'), pngOf(2, 2, () => [0, 0, 0, 255]));
  assert.throws(() => loadImageFolder(flat), dataError(/^no class folders in .*train/));
});

test('the Tiny-ImageNet layout: train/<class>/images/*.JPEG, val/images/ with val_annotations.txt', () => {
  const r = join(base, 'tiny');
  put(join(r, 'train/n02/images/n02_0.JPEG'), jpegOf(16, 16, () => [200, 0, 0]));
  put(join(r, 'train/n02/images/n02_1.JPEG'), jpegOf(16, 16, () => [210, 0, 0]));
  put(join(r, 'train/n02/n02_boxes.txt'), 'n02_0.JPEG\t0\t0\t10\t10\n');
  put(join(r, 'train/n01/images/n01_0.JPEG'), jpegOf(16, 16, () => [0, 200, 0]));
  put(join(r, 'val/images/val_0.JPEG'), jpegOf(16, 16, () => [0, 0, 200]));
  put(join(r, 'val/images/val_1.JPEG'), jpegOf(16, 16, () => [0, 200, 0]));
  put(join(r, 'val/val_annotations.txt'), 'val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n');
  const { train, test: val, classes } = loadImageFolder(r, { imageSize: 4 });
  assert.deepEqual(classes, ['n01', 'n02']);
  assert.deepEqual([...train.labels], [0, 1, 1]);
  assert.deepEqual([...val.labels], [1, 0]);
  const g = rgbOf(readAll(val), 1, 4)[5];
  assert.ok(g[1] > 190 && g[0] < 10 && g[2] < 10, `${g}`);
  put(join(r, 'val/val_annotations.txt'), 'val_0.JPEG\tn03\t0\t0\t1\t1\n');
  assert.throws(() => loadImageFolder(r), dataError(/val_annotations\.txt: line 1: val class 'n03' is not a class of train\//));
  put(join(r, 'val/val_annotations.txt'), 'val_9.JPEG\tn01\t0\t0\t1\t1\n');
  assert.throws(() => loadImageFolder(r), dataError(/line 1: image not found: .*val_9\.JPEG/));
  put(join(r, 'val/val_annotations.txt'), 'val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\nval_0.JPEG\tn01\n');
  assert.throws(() => loadImageFolder(r), dataError(/line 3: val_0\.JPEG is listed a second time/));
  put(join(r, 'val/val_annotations.txt'), 'val_0.JPEG\tn02\t0\t0\t1\t1\n');
  assert.throws(() => loadImageFolder(r), dataError(/lists no class for 1 image\(s\) of .*images, e\.g\. val_1\.JPEG/));
});

test('a link inside a class folder back to a folder above it is refused (its images would count again, mislabelled)', () => {
  const r = tree('link-loop');
  symlinkSync('..', join(r, 'train/cat/loop'));
  assert.throws(() => loadImageFolder(r), dataError(/train\/cat\/loop links back to a folder above it/));
  rmSync(join(r, 'train/cat/loop'));
  symlinkSync(join(r, 'train/dog'), join(r, 'train/cat/dogs'));
  assert.equal(loadImageFolder(r).train.size, 8, 'a link to a folder elsewhere is followed');
});

test('a JPEG with data after its end-of-image marker (a phone\'s trailer) is read', () => {
  const r = tree('jpeg-trailer');
  const file = join(r, 'train/cat/b.jpg');
  writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.alloc(100, 7)]));
  const { train } = loadImageFolder(r, { imageSize: 4 });
  assert.equal(train.size, 6);
});

test('loadDataset: imagefolder needs dataDir, passes imageSize (default 64) and rejects a bad one', () => {
  assert.deepEqual(loadDataset('imagefolder', { dataDir: root, imageSize: 5 }).train.shape, [5, 5, 3]);
  assert.deepEqual(loadDataset('imagefolder', { dataDir: root }).test.shape, [64, 64, 3]);
  assert.throws(() => loadDataset('imagefolder'), dataError(/^--dataset imagefolder needs --data-dir DIR/));
  assert.throws(() => loadDataset('imagefolder', { dataDir: root, imageSize: 0 }), RangeError);
  assert.throws(() => loadDataset('imagefolder', { dataDir: root, imageSize: 2.5 }), RangeError);
});
