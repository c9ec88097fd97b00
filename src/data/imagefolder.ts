/**
 * Image-folder data sets (Imagenette, Tiny-ImageNet, your own): `root/train/<class>/...` and
 * `root/val/<class>/...` holding .jpg/.jpeg/.png files. Images are either decoded once into a pixel cache
 * and served from memory (image-cache.ts), or read, decoded and resized when a batch asks for them (only
 * the file list and the labels in memory). Every file's header and end marker are checked at load, so a
 * truncated file, or one that is no image, stops the run before its first step; with the cache every file
 * is also decoded whole before it, while a streamed file damaged inside its pixel data stops the run at
 * the batch that reads it (after a checkpoint, when the run writes them).
 */
import { type Dirent, closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { type DataSplits, type ImageDataset, makeDataset, makeStreamingDataset } from './dataset.js';
import { DataError, requirePath } from './errors.js';
import { checkImageHeader } from './image.js';
import { decodeImages, defaultCacheMaxBytes, type ImageCacheKey, imageCacheKey, readImageCache, readImageFile, writeImageCache } from './image-cache.js';

/** ImageNet statistics, on the 0..1 scale. */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
/** ImageNet standard deviations, on the 0..1 scale. */
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

const IMAGE_FILE = /\.(jpe?g|png)$/i;
/** How deep below a class folder images are looked for (Tiny-ImageNet keeps them in <class>/images/); SkipReason says it too. */
const MAX_DEPTH = 4;

/** The image files of one split and their labels. */
export interface ImageFolderSplit {
  /** Image paths: root joined with each file's path below it. */
  files: string[];
  labels: Int32Array;
}

/** Why an entry of an image folder was not loaded. */
export type SkipReason = 'not a .jpg, .jpeg or .png file' | 'a broken link or not a regular file' | 'more than 4 folders below its class folder';

/** An entry of an image folder that is not loaded (hidden entries, whose names start with '.', are not listed). */
export interface SkippedEntry {
  path: string;
  reason: SkipReason;
}

/** An image folder's classes and the files of its train/ and val/ splits. */
export interface ImageFolderIndex {
  root: string;
  /** Sorted names of the class folders of train/; label k is classes[k]. */
  classes: string[];
  train: ImageFolderSplit;
  val: ImageFolderSplit;
  /** What was found below the class folders (or in val/images/) and not loaded, by path. */
  skipped: SkippedEntry[];
}

function readDir(dir: string, what: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new DataError(`${what} not found: ${dir}`);
    if (err.code === 'ENOTDIR') throw new DataError(`${what} is not a directory: ${dir}`);
    throw new DataError(`cannot read ${what} ${dir}: ${err.message}`);
  }
}

const visible = (d: Dirent) => !d.name.startsWith('.');

/** Follows symbolic links: 'dir', 'file' or null (broken link, other). */
function kind(dir: string, d: Dirent): 'dir' | 'file' | null {
  if (d.isDirectory()) return 'dir';
  if (d.isFile()) return 'file';
  if (!d.isSymbolicLink()) return null;
  try {
    const st = statSync(join(dir, d.name));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : null;
  } catch {
    return null;
  }
}

/** Sorted names of the visible sub-folders of dir. */
function subfolders(dir: string, what: string): string[] {
  const entries = readDir(dir, what);
  return entries
    .filter((d) => visible(d) && kind(dir, d) === 'dir')
    .map((d) => d.name)
    .sort();
}

/** The image files under a class folder (sub-folders included), sorted by path; what is not loaded goes to `skipped`. */
function imagesIn(dir: string, skipped: SkippedEntry[], depth = 0, above: readonly string[] = [realpathSync(dir)]): string[] {
  const found: string[] = [];
  for (const d of readDir(dir, 'folder').filter(visible)) {
    const k = kind(dir, d);
    const path = join(dir, d.name);
    if (k === 'file') {
      if (IMAGE_FILE.test(d.name)) found.push(path);
      else skipped.push({ path, reason: 'not a .jpg, .jpeg or .png file' });
    } else if (k === null) {
      skipped.push({ path, reason: 'a broken link or not a regular file' });
    } else if (depth >= MAX_DEPTH) {
      skipped.push({ path, reason: 'more than 4 folders below its class folder' });
    } else {
      // A link to a folder above would count that folder's images again, under this class.
      const real = realpathSync(path);
      if (above.some((a) => real === a || a.startsWith(real + sep))) throw new DataError(`${path} links back to a folder above it (${real})`);
      found.push(...imagesIn(path, skipped, depth + 1, [...above, real]));
    }
  }
  return found.sort();
}

function classSplit(splitDir: string, classes: string[], names: string[], skipped: SkippedEntry[]): ImageFolderSplit {
  const files: string[] = [];
  const labels: number[] = [];
  for (const name of names) {
    const k = classes.indexOf(name);
    const dir = join(splitDir, name);
    const images = imagesIn(dir, skipped);
    if (images.length === 0) throw new DataError(`empty class folder (no .jpg, .jpeg or .png images): ${dir}`);
    files.push(...images);
    labels.push(...images.map(() => k));
  }
  return { files, labels: Int32Array.from(labels) };
}

/** Tiny-ImageNet's val/: images/ plus val_annotations.txt lines "<file>\t<class>\t...". */
function annotatedSplit(valDir: string, annotations: string, classes: string[], skipped: SkippedEntry[]): ImageFolderSplit {
  const imagesDir = join(valDir, 'images');
  const entries = readDir(imagesDir, 'val images folder').filter(visible);
  const present = new Set(entries.map((d) => d.name));
  for (const d of entries) {
    const k = kind(imagesDir, d);
    if (k === null) skipped.push({ path: join(imagesDir, d.name), reason: 'a broken link or not a regular file' });
    else if (k === 'file' && !IMAGE_FILE.test(d.name)) skipped.push({ path: join(imagesDir, d.name), reason: 'not a .jpg, .jpeg or .png file' });
  }
  const files: string[] = [];
  const labels: number[] = [];
  const listed = new Set<string>();
  readFileSync(annotations, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const [file, name] = line.split('\t');
      const where = `${annotations}: line ${i + 1}`;
      if (!file || !name) throw new DataError(`${where}: expected "<file>\\t<class>...", got "${line}"`);
      const k = classes.indexOf(name);
      if (k < 0) throw new DataError(`${where}: val class '${name}' is not a class of train/`);
      if (!present.has(file)) throw new DataError(`${where}: image not found: ${join(imagesDir, file)}`);
      if (listed.has(file)) throw new DataError(`${where}: ${file} is listed a second time`);
      listed.add(file);
      files.push(join(imagesDir, file));
      labels.push(k);
    });
  if (files.length === 0) throw new DataError(`${annotations}: no images listed`);
  const unlisted = [...present].filter((f) => IMAGE_FILE.test(f) && !listed.has(f));
  if (unlisted.length > 0) throw new DataError(`${annotations} lists no class for ${unlisted.length} image(s) of ${imagesDir}, e.g. ${unlisted[0]}`);
  return { files, labels: Int32Array.from(labels) };
}

/**
 * Lists `root/train/<class>/**` and `root/val/<class>/**` images (.jpg, .jpeg, .png, any case; hidden
 * entries skipped). Classes are the sorted folder names of train/; every val class must be one of them
 * (val may lack some). Tiny-ImageNet's val/ (images/ + val_annotations.txt) is accepted too.
 * Examples are ordered by class, then path.
 */
export function listImageFolder(root: string): ImageFolderIndex {
  requirePath(root, 'listImageFolder');
  for (const [dir, what] of [
    [root, 'image folder root'],
    [join(root, 'train'), 'train folder'],
    [join(root, 'val'), 'val folder'],
  ]) {
    if (!existsSync(dir)) {
      throw new DataError(`${what} not found: ${dir}` + (dir === root ? '' : ` (expected ${join(root, '{train,val}', '<class>', '*.jpg')})`));
    }
  }
  const trainDir = join(root, 'train');
  const valDir = join(root, 'val');
  const classes = subfolders(trainDir, 'train folder');
  if (classes.length === 0) throw new DataError(`no class folders in ${trainDir} (expected ${join(trainDir, '<class>', '*.jpg')})`);
  const skipped: SkippedEntry[] = [];
  const train = classSplit(trainDir, classes, classes, skipped);
  const annotations = join(valDir, 'val_annotations.txt');
  let val: ImageFolderSplit;
  if (existsSync(annotations)) {
    val = annotatedSplit(valDir, annotations, classes, skipped);
  } else {
    const valClasses = subfolders(valDir, 'val folder');
    if (valClasses.length === 0) throw new DataError(`no class folders in ${valDir} (expected ${join(valDir, '<class>', '*.jpg')})`);
    const unknown = valClasses.filter((c) => !classes.includes(c));
    if (unknown.length > 0) {
      throw new DataError(`val class folder${unknown.length > 1 ? 's' : ''} not in train/: ${unknown.map((c) => join(valDir, c)).join(', ')}`);
    }
    val = classSplit(valDir, classes, valClasses, skipped);
  }
  return { root, classes, train, val, skipped };
}

/** One notice for what listImageFolder skipped: how many, why, an example of each reason; null when nothing was. */
export function skippedNotice(skipped: readonly SkippedEntry[]): string | null {
  if (skipped.length === 0) return null;
  const byReason = new Map<SkipReason, string[]>();
  for (const { path, reason } of skipped) byReason.set(reason, [...(byReason.get(reason) ?? []), path]);
  const parts = [...byReason].map(([reason, paths]) => `${paths.length} ${reason} (${paths.length > 1 ? 'e.g. ' : ''}${paths[0]})`);
  return `image folder: ${skipped.length} entr${skipped.length === 1 ? 'y' : 'ies'} not loaded: ${parts.join('; ')}`;
}

/** A streaming data set of `files` of `classes` (a count, or the names): each image read, decoded to RGB and resized to size x size when asked for. */
export function imageFilesDataset(
  name: string,
  split: ImageFolderSplit,
  classes: number | readonly string[],
  size: number,
  norm: { mean: readonly number[]; std: readonly number[] } = { mean: IMAGENET_MEAN, std: IMAGENET_STD },
): ImageDataset {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`imageSize must be a positive integer, got ${size}`);
  const { files } = split;
  if (files.length !== split.labels.length) throw new DataError(`${name}: ${files.length} files but ${split.labels.length} labels`);
  const stride = size * size * 3;
  return makeStreamingDataset({
    name,
    labels: split.labels,
    shape: [size, size, 3],
    ...(typeof classes === 'number' ? { numClasses: classes } : { numClasses: classes.length, classNames: classes }),
    mean: norm.mean,
    std: norm.std,
    readPixels(indices, out) {
      for (let k = 0; k < indices.length; k++) readImageFile(files[indices[k]], size, out.subarray(k * stride, (k + 1) * stride));
    },
  });
}

/** How many damaged files one error lists by name. */
const LISTED = 5;

/** Throws one DataError for `total` damaged images, quoting the messages of the first few (`bad`). */
function throwDamaged(bad: readonly string[], total = bad.length): void {
  if (total === 1) throw new DataError(bad[0]);
  if (total > 1) {
    const more = total > LISTED ? `\n  ... and ${total - LISTED} more` : '';
    throw new DataError(`${total} damaged images (fix or remove them):\n  ${bad.slice(0, LISTED).join('\n  ')}${more}`);
  }
}

/**
 * Checks every file (header and end marker, see checkImageHeader) and throws one DataError naming the
 * damaged ones (the first few, and how many in all).
 */
export function validateImages(files: readonly string[]): void {
  const bad: string[] = [];
  for (const file of files) {
    let fd = -1;
    try {
      fd = openSync(file, 'r');
      const size = fstatSync(fd).size;
      const readAt = (position: number, length: number) => {
        const buf = new Uint8Array(Math.max(0, Math.min(length, size - position)));
        const n = readSync(fd, buf, 0, buf.length, position);
        return buf.subarray(0, n);
      };
      checkImageHeader(size, readAt, file);
    } catch (e) {
      bad.push(e instanceof DataError ? e.message : `cannot read image ${file}: ${(e as Error).message}`);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  throwDamaged(bad);
}

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** Images are resized to imageSize x imageSize (default 64). */
  imageSize?: number;
  /** Check every file's header and end marker before training (default true). */
  validate?: boolean;
  /**
   * Decode every image once into the pixel cache and serve the splits from memory (default false: images
   * are decoded when a batch asks for them). `loadDataset` turns it on.
   */
  cache?: boolean;
  /** The folder of the pixel cache; null (default): beside the data, or the user's cache folder when that is read-only. */
  cacheDir?: string | null;
  /** Worker threads that build the cache (default: one per core, fewer for small splits; 0: this thread). */
  workers?: number;
  /**
   * A split whose pixels (count x imageSize x imageSize x 3 bytes) exceed this is not cached but decoded
   * per batch, as without `cache` (default: a quarter of this machine's memory, at most 4 GiB).
   */
  cacheMaxBytes?: number;
  /** Told once what was found and not loaded (see {@link skippedNotice}); default console.warn. */
  warn?: (message: string) => void;
}

/** Decodes `files` with worker threads, stops on damaged ones, and stores the pixels under `key`. */
function buildCache(key: ImageCacheKey, files: readonly string[], size: number, workers: number | undefined): Uint8Array {
  const { pixels, damaged } = decodeImages(files, size, workers);
  if (damaged.length > 0) {
    const scratch = new Uint8Array(size * size * 3);
    // Decoded again here for their messages: a few files, once, on the way to stopping the run.
    const messageOf = (i: number): string => {
      try {
        readImageFile(files[i], size, scratch);
      } catch (e) {
        return (e as Error).message;
      }
      return `${files[i]}: could not be decoded in a worker thread`;
    };
    throwDamaged(damaged.slice(0, LISTED).map(messageOf), damaged.length);
  }
  writeImageCache(key, pixels);
  return pixels;
}

/**
 * `root/{train,val}/<class>/*.{jpg,jpeg,png}` as train/test sets of imageSize x imageSize x 3 images (each
 * image resized to that square, whatever its aspect), normalised with ImageNet statistics. Every file is
 * checked first (`validate: false` skips that). Entries that are not loaded (see listImageFolder) are
 * reported once through `warn`.
 *
 * With `cache`, each split is decoded once, in parallel worker threads, into a cache file of raw pixels
 * (see image-cache.ts for where it lives), rebuilt when a file of the split is added, removed or changed
 * (its size or modification time) and when the file is damaged. The splits are then in-memory data sets,
 * as fast per epoch as a binary layout: the price is their pixels in memory (Imagenette at 64 px: 13k
 * images, 160 MB; Tiny-ImageNet: 1.2 GB), so a split above `cacheMaxBytes` streams instead. A split
 * read from a valid cache is not checked again: building it decoded every file whole.
 */
export function loadImageFolder(root: string, opts: ImageFolderOptions = {}): DataSplits & { classes: string[] } {
  requirePath(root, 'loadImageFolder');
  opts ??= {};
  const size = opts.imageSize ?? 64;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`imageSize must be a positive integer, got ${size}`);
  const maxBytes = opts.cacheMaxBytes ?? defaultCacheMaxBytes();
  if (typeof maxBytes !== 'number' || !(maxBytes >= 0)) throw new RangeError(`cacheMaxBytes must be a number of bytes >= 0, got ${String(maxBytes)}`);
  if (opts.workers !== undefined && !(Number.isInteger(opts.workers) && opts.workers >= 0)) throw new RangeError(`workers must be an integer >= 0, got ${String(opts.workers)}`);
  const index = listImageFolder(root);
  const notice = skippedNotice(index.skipped);
  if (notice) (opts.warn ?? console.warn)(notice);
  const parts = [
    { name: 'imagefolder/train', id: 'train', split: index.train },
    { name: 'imagefolder/val', id: 'val', split: index.val },
  ].map((p) => {
    const cached = opts.cache === true && p.split.files.length * size * size * 3 <= maxBytes;
    const key = cached ? imageCacheKey(root, p.id, p.split.files, size, opts.cacheDir ?? null) : null;
    return { ...p, key, pixels: key && readImageCache(key) };
  });
  if (opts.validate ?? true) {
    validateImages(parts.filter((p) => !p.pixels).flatMap((p) => p.split.files));
  }
  const n = index.classes.length;
  const [train, test] = parts.map(({ name, split, key, pixels }) => {
    if (!key) return imageFilesDataset(name, split, index.classes, size);
    return makeDataset({
      name,
      pixels: pixels ?? buildCache(key, split.files, size, opts.workers),
      labels: split.labels,
      shape: [size, size, 3],
      numClasses: n,
      classNames: index.classes,
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
    });
  });
  return { train, test, classes: index.classes };
}
