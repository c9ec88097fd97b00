import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DataError } from '../../src/data/errors.js';
import { decodeImage, resizeImage } from '../../src/data/image.js';
import { decodeImages, imageCacheKey, readImageCache } from '../../src/data/image-cache.js';
import { listImageFolder, loadImageFolder } from '../../src/data/imagefolder.js';
import { loadDataset } from '../../src/data/load.js';
import { Rng } from '../../src/data/random.js';
import { tempDir } from './helpers.js';

const base = tempDir();
// Nothing of these tests lands in the real ~/.cache.
process.env.XDG_CACHE_HOME = join(base, 'xdg');
const S = 8;

/** Seeded noise, so that every file, and every byte of its resized pixels, is its own. */
function rgba(w: number, h: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const data = Buffer.alloc(w * h * 4);
  for (let p = 0; p < data.length; p++) data[p] = p % 4 === 3 ? 255 : rng.int(256);
  return data;
}
const jpegOf = (w: number, h: number, seed: number) => jpeg.encode({ width: w, height: h, data: rgba(w, h, seed) }, 90).data;
/** deflateLevel 0 stores the pixels: the file's length then depends on its size alone. */
function pngOf(w: number, h: number, seed: number, deflateLevel = 6): Buffer {
  const png = new pngjs.PNG({ width: w, height: h });
  png.data = rgba(w, h, seed);
  return pngjs.PNG.sync.write(png, { colorType: 2, deflateLevel });
}

function put(path: string, content: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

/** Three classes of JPEGs and PNGs of assorted sizes in train/, two classes in val/. */
function tree(name: string): string {
  const root = join(base, name);
  let seed = 0;
  for (const [split, classes, per] of [
    ['train', ['ant', 'bee', 'cat'], 7],
    ['val', ['ant', 'cat'], 3],
  ] as const) {
    for (const c of classes) {
      for (let i = 0; i < per; i++) {
        seed++;
        const [w, h] = [5 + ((seed * 7) % 30), 4 + ((seed * 11) % 25)];
        put(join(root, split, c, i % 3 === 0 ? `${i}.png` : `${i}.jpg`), i % 3 === 0 ? pngOf(w, h, seed) : jpegOf(w, h, seed));
      }
    }
  }
  return root;
}

/** Every file decoded and resized on this thread, straight from the image code: the reference. */
function direct(files: readonly string[], size = S): Uint8Array {
  const stride = size * size * 3;
  const out = new Uint8Array(files.length * stride);
  files.forEach((f, i) => resizeImage(decodeImage(readFileSync(f), f), size, size, out.subarray(i * stride, (i + 1) * stride)));
  return out;
}

const cached = (root: string, opts: Parameters<typeof loadImageFolder>[1] = {}) => loadImageFolder(root, { imageSize: S, cache: true, ...opts });
const cacheFile = (root: string, split = 'train') => join(root, '.sll-cache', `${split}-${S}.pixels`);
const dataError = (re: RegExp) => (e: Error) => e instanceof DataError && re.test(e.message);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Checks that `root` loads (cached) to exactly what its files decode to now. */
function assertFresh(root: string, what: string): void {
  const index = listImageFolder(root);
  const { train, test: val } = cached(root);
  assert.equal(train.size, index.train.files.length, what);
  assert.deepEqual(train.labels, index.train.labels, what);
  assert.ok(Buffer.from(train.pixels!).equals(direct(index.train.files)), `${what}: train pixels`);
  assert.ok(Buffer.from(val.pixels!).equals(direct(index.val.files)), `${what}: val pixels`);
}

test('cached splits hold exactly the pixels of a direct decode and resize, in memory, and match the streaming sets', () => {
  const root = tree('exact');
  const index = listImageFolder(root);
  const { train, test: val, classes } = cached(root, { workers: 2 });
  assert.deepEqual(classes, ['ant', 'bee', 'cat']);
  assert.ok(train.pixels && val.pixels, 'cached splits are in-memory sets');
  assert.deepEqual(train.shape, [S, S, 3]);
  assert.deepEqual([train.size, val.size], [21, 6]);
  assert.ok(Buffer.from(train.pixels).equals(direct(index.train.files)));
  assert.ok(Buffer.from(val.pixels).equals(direct(index.val.files)));
  assert.ok(existsSync(cacheFile(root)) && existsSync(cacheFile(root, 'val')), 'the cache lives beside the data');
  // The second load reads the cache: the same sets.
  const again = cached(root);
  assert.ok(Buffer.from(again.train.pixels!).equals(train.pixels));
  assert.deepEqual(again.train.labels, train.labels);
  const streaming = loadImageFolder(root, { imageSize: S });
  const out = new Uint8Array(train.pixels.length);
  streaming.train.readPixels(Array.from({ length: train.size }, (_, i) => i), out);
  assert.ok(Buffer.from(out).equals(train.pixels));
  assert.deepEqual([train.mean, train.std], [streaming.train.mean, streaming.train.std]);
});

test('worker-decoded pixels equal pixels decoded on this thread, damaged files reported alike, and the workers do run', async () => {
  const root = tree('workers');
  const files = listImageFolder(root).train.files;
  const bad = files[4];
  put(bad, Buffer.from('garbage, not an image'));
  // Thread ids count up from one process-wide sequence: the cold pass's threads come after this one's.
  const mark = new Worker('', { eval: true });
  const after = mark.threadId;
  await mark.terminate();
  let started = 0;
  const count = (w: Worker) => void (w.threadId > after && started++);
  process.on('worker', count);
  try {
    const threads = decodeImages(files, S, 3);
    const here = decodeImages(files, S, 0);
    for (let i = 0; i < 50 && started < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(started, 3, 'decodeImages(files, size, 3) starts 3 worker threads');
    assert.ok(Buffer.from(threads.pixels).equals(here.pixels));
    assert.deepEqual(threads.damaged, [4]);
    assert.deepEqual(here.damaged, [4]);
    const good = files.filter((f) => f !== bad);
    const stride = S * S * 3;
    const without = Buffer.concat([threads.pixels.subarray(0, 4 * stride), threads.pixels.subarray(5 * stride)]);
    assert.ok(without.equals(direct(good)));
  } finally {
    process.off('worker', count);
  }
  assert.throws(() => decodeImages(files, S, -1), RangeError);
});

test('an unchanged source (paths, sizes, modification times) is served from the cache, not decoded again', () => {
  const root = tree('hit');
  const file = listImageFolder(root).train.files[2];
  const t = 1_700_000_000;
  put(file, pngOf(12, 10, 1, 0));
  utimesSync(file, t, t);
  const before = cached(root).train.pixels!;
  // Other pixels, same length, same time: only a cache hit can still give the old pixels.
  const length = statSync(file).size;
  put(file, pngOf(12, 10, 2, 0));
  utimesSync(file, t, t);
  assert.equal(statSync(file).size, length);
  assert.ok(Buffer.from(cached(root).train.pixels!).equals(before), 'served from the cache');
  // Touched: the cache is stale and rebuilt from the new bytes.
  utimesSync(file, t + 1, t + 1);
  const after = cached(root).train.pixels!;
  assert.ok(!Buffer.from(after).equals(before));
  assert.ok(Buffer.from(after).equals(direct(listImageFolder(root).train.files)));
});

test('the cache is rebuilt when a file changes, is added, removed or renamed, and when the image size changes', () => {
  const root = tree('invalidate');
  assertFresh(root, 'first build');
  const [a, b] = listImageFolder(root).train.files;
  put(a, pngOf(12, 9, 4242));
  assertFresh(root, 'changed file');
  put(join(root, 'train/bee/new.jpg'), jpegOf(20, 10, 77));
  assertFresh(root, 'added file');
  rmSync(b);
  assertFresh(root, 'removed file');
  const valFile = listImageFolder(root).val.files[0];
  const moved = join(dirname(valFile), 'z-renamed.jpg');
  writeFileSync(moved, readFileSync(valFile));
  rmSync(valFile);
  assertFresh(root, 'renamed file');
  const big = loadImageFolder(root, { imageSize: 5, cache: true }).train;
  assert.ok(Buffer.from(big.pixels!).equals(direct(listImageFolder(root).train.files, 5)));
  assert.ok(existsSync(join(root, '.sll-cache', 'train-5.pixels')) && existsSync(cacheFile(root)), 'one cache file per image size');
});

test('a damaged cache file (truncated, empty, a flipped pixel, header or checksum bit) is detected and rebuilt, never trusted', () => {
  const root = tree('damaged');
  const index = listImageFolder(root);
  cached(root);
  const file = cacheFile(root);
  const good = readFileSync(file);
  const key = imageCacheKey(root, 'train', index.train.files, S);
  assert.ok(readImageCache(key), 'the intact file is read');
  const flip = (at: number) => {
    const b = Buffer.from(good);
    b[at] ^= 0x10;
    return b;
  };
  for (const [what, damaged] of [
    ['truncated', good.subarray(0, good.length - 100)],
    ['cut inside the header', good.subarray(0, 50)],
    ['empty', Buffer.alloc(0)],
    ['one pixel bit flipped', flip(96 + 1000)],
    ['last pixel bit flipped', flip(good.length - 1)],
    ['a count bit flipped', flip(12)],
    ['a checksum bit flipped', flip(70)],
    ['a byte appended', Buffer.concat([good, Buffer.from([0])])],
  ] as const) {
    writeFileSync(file, damaged);
    assert.equal(readImageCache(key), null, `${what}: not trusted`);
    assertFresh(root, what);
    assert.ok(readFileSync(file).equals(good), `${what}: rebuilt`);
  }
});

test('a data folder that cannot be written keeps its cache in $XDG_CACHE_HOME/sll, one folder per data set', (t) => {
  const perRoot = (root: string) => `${basename(root)}-${createHash('sha256').update(resolve(root)).digest('hex').slice(0, 12)}`;
  const fallback = (root: string) => join(base, 'xdg', 'sll', 'imagefolder', perRoot(root), `train-${S}.pixels`);
  // A file where the cache folder would go blocks it, as a read-only folder does, even for root.
  const blocked = tree('blocked');
  writeFileSync(join(blocked, '.sll-cache'), 'not a folder');
  assertFresh(blocked, 'blocked');
  assert.ok(existsSync(fallback(blocked)), fallback(blocked));
  assert.equal(readFileSync(join(blocked, '.sll-cache'), 'utf8'), 'not a folder');
  const key = imageCacheKey(blocked, 'train', listImageFolder(blocked).train.files, S);
  assert.ok(readImageCache(key), 'later loads find it there');

  const readOnly = tree('read-only');
  chmodSync(readOnly, 0o555);
  t.after(() => chmodSync(readOnly, 0o755));
  try {
    writeFileSync(join(readOnly, 'probe'), '');
    rmSync(join(readOnly, 'probe'));
    t.diagnostic('chmod does not stop this user (root) writing: the blocked folder above stands for a read-only one');
    return;
  } catch {
    // A read-only folder indeed.
  }
  assertFresh(readOnly, 'read-only');
  assert.ok(existsSync(fallback(readOnly)));
  assert.ok(!existsSync(join(readOnly, '.sll-cache')));
});

test('an explicit cacheDir holds the caches (one folder per data set) and nothing goes beside the data; loadDataset passes it', () => {
  const dir = join(base, 'explicit-cache');
  const root = tree('explicit');
  const { train } = cached(root, { cacheDir: dir });
  assert.ok(!existsSync(join(root, '.sll-cache')));
  const [perRoot] = readdirSync(dir);
  assert.match(perRoot, /^explicit-[0-9a-f]{12}$/);
  assert.deepEqual(readdirSync(join(dir, perRoot)).sort(), [`train-${S}.pixels`, `val-${S}.pixels`]);
  assert.ok(Buffer.from(train.pixels!).equals(direct(listImageFolder(root).train.files)));
  const other = tree('explicit-2');
  cached(other, { cacheDir: dir });
  assert.equal(readdirSync(dir).length, 2);

  const viaLoad = tree('via-load');
  const viaDir = join(base, 'via-load-cache');
  const splits = loadDataset('imagefolder', { dataDir: viaLoad, imageSize: S, cacheDir: viaDir });
  assert.ok(splits.train.pixels, 'loadDataset caches image folders');
  assert.equal(readdirSync(viaDir).length, 1);
  assert.ok(!existsSync(join(viaLoad, '.sll-cache')));
  // A cache folder that cannot be made is the caller's mistake: said, not skipped.
  const notDir = join(base, 'a-file');
  writeFileSync(notDir, '');
  const fresh = tree('explicit-bad');
  assert.throws(() => cached(fresh, { cacheDir: join(notDir, 'cache') }), dataError(new RegExp(`^cannot write the image cache ${esc(join(notDir, 'cache'))}`)));
});

test('damaged images stop a cached load before any step, named as without the cache, and leave no cache behind', () => {
  const root = tree('bad-images');
  const files = listImageFolder(root).train.files;
  // A PNG whole in structure (header, IEND) but with a corrupt chunk: only decoding finds it.
  const png = pngOf(10, 10, 5);
  png[40] ^= 0xff;
  put(files[0], png);
  assert.throws(() => cached(root, { workers: 2 }), dataError(new RegExp(`^${esc(files[0])}: corrupt or unsupported image`)));
  assert.ok(!existsSync(cacheFile(root)));
  put(files[3], png);
  assert.throws(() => cached(root), dataError(new RegExp(`^2 damaged images \\(fix or remove them\\):\n  ${esc(files[0])}: corrupt.*\n  ${esc(files[3])}: corrupt`)));
  // Truncated: found by the load-time header check, before any decoding.
  const jpg = jpegOf(30, 20, 1);
  put(files[0], jpg.subarray(0, jpg.length - 10));
  assert.throws(() => cached(root), dataError(new RegExp(`^${esc(files[0])}: truncated JPEG: no end-of-image marker$`)));
  assert.ok(!existsSync(cacheFile(root)));
});

test('a split whose pixels exceed cacheMaxBytes streams as without the cache, and writes none', () => {
  const root = tree('too-big');
  const { train, test: val } = cached(root, { cacheMaxBytes: 6 * S * S * 3 });
  assert.equal(train.pixels, undefined, '21 images > the limit: streamed');
  assert.ok(val.pixels, '6 images fit');
  assert.ok(!existsSync(cacheFile(root)) && existsSync(cacheFile(root, 'val')));
  const out = new Uint8Array(train.size * S * S * 3);
  train.readPixels(Array.from({ length: train.size }, (_, i) => i), out);
  assert.ok(Buffer.from(out).equals(direct(listImageFolder(root).train.files)));
});

test('the worker script is compiled beside the cache module, where decodeImages looks for it', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  assert.ok(existsSync(join(here, '..', '..', 'src', 'data', 'image-decode-worker.js')));
});
