/**
 * The pixel cache of image folders: every image of a split decoded and resized once (by worker threads,
 * in parallel) and kept as one file of raw HWC bytes, so that later runs read the split as fast as a
 * binary layout such as CIFAR's.
 *
 * A cache file is a 96-byte header, then count x height x width x channels bytes (image i at
 * i x height x width x channels):
 *
 *     0 'SLLPIXEL'   8 version   12 count   16 height   20 width   24 channels   28 zero   (u32 LE)
 *    32 sha256 of the source: the format, the size, and every file's path below the root, byte size and
 *       modification time, in order
 *    64 sha256 of the pixels
 *
 * A file whose header does not describe the current source (stale), or whose length or pixel checksum
 * is off (damaged), is not used: the split is decoded again and the file replaced by a rename, so a
 * reader never sees half a file.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, homedir, totalmem } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, threadId } from 'node:worker_threads';
import { DataError } from './errors.js';
import { decodeImage, resizeImage } from './image.js';

const MAGIC = Buffer.from('SLLPIXEL', 'latin1');
const VERSION = 2; // 2: alpha composited over black (decodeImage)
const HEADER = 96;
const CHANNELS = 3;
/** Bytes read (and hashed) per call when loading a cache file. */
const CHUNK = 1 << 26;
/** Images per worker thread below which another thread costs more to start than it saves. */
const IMAGES_PER_WORKER = 64;
/** A cold pass in which no image finishes for this long has lost a worker thread (or met a pathological file). */
const STALL_MS = 120_000;
const WORKER_URL = new URL('./image-decode-worker.js', import.meta.url);

/** Reads an image file, decodes it to RGB and resizes it to size x size into `out`; DataError names the file. */
export function readImageFile(file: string, size: number, out: Uint8Array): void {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read image ${file}: ${(e as Error).message}`);
  }
  resizeImage(decodeImage(buf, file), size, size, out);
}

/** Where the cache of one split lives and what it must hold. */
export interface ImageCacheKey {
  /** Cache files to look in, in order; a rebuilt cache goes to the first that can be written. */
  readonly paths: readonly string[];
  /** True when the caller named the cache folder: failing to write there is an error, not a fallback. */
  readonly explicit: boolean;
  /** sha256 of the source (see the module comment). */
  readonly source: Buffer;
  readonly count: number;
  /** Images are size x size x 3. */
  readonly size: number;
}

/** The user's cache folder for sll: `$XDG_CACHE_HOME/sll`, else `~/.cache/sll`. */
export function userCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sll');
}

/**
 * The key of `files` (one split of the image folder at `root`) resized to size x size. The cache is
 * looked for in `dir` when given (one folder per data set below it), else beside the data
 * (`<root>/.sll-cache/`) and then in {@link userCacheDir}. Every file is stat'ed: a missing one is a
 * DataError naming it.
 */
export function imageCacheKey(root: string, split: string, files: readonly string[], size: number, dir: string | null = null): ImageCacheKey {
  const hash = createHash('sha256').update(`sll image cache ${VERSION}\n${size}x${size}x${CHANNELS}\n`);
  for (const file of files) {
    let st;
    try {
      st = statSync(file, { bigint: true });
    } catch (e) {
      throw new DataError(`cannot read image ${file}: ${(e as Error).message}`);
    }
    hash.update(`${relative(root, file)}\0${st.size}\0${st.mtimeNs}\n`);
  }
  const abs = resolve(root);
  // Named after the folder for a reader of the cache folder, and after its full path so two 'data' folders differ.
  const perRoot = `${basename(abs)}-${createHash('sha256').update(abs).digest('hex').slice(0, 12)}`;
  const name = `${split}-${size}.pixels`;
  const paths = dir !== null ? [join(dir, perRoot, name)] : [join(root, '.sll-cache', name), join(userCacheDir(), 'imagefolder', perRoot, name)];
  return { paths, explicit: dir !== null, source: hash.digest(), count: files.length, size };
}

function header(key: ImageCacheKey, checksum: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  [VERSION, key.count, key.size, key.size, CHANNELS].forEach((v, i) => h.writeUInt32LE(v, 8 + 4 * i));
  key.source.copy(h, 32);
  checksum.copy(h, 64);
  return h;
}

/** The pixels in `path` when it is a whole cache file of `key`'s source; null when missing, stale or damaged. */
function readCacheFile(path: string, key: ImageCacheKey): Uint8Array | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const h = Buffer.alloc(HEADER);
    if (readSync(fd, h, 0, HEADER, 0) !== HEADER) return null;
    // The header first: a stale file is told apart without reading its pixels.
    if (!header(key, h.subarray(64, 96)).equals(h)) return null;
    const bytes = key.count * key.size * key.size * CHANNELS;
    if (fstatSync(fd).size !== HEADER + bytes) return null;
    const pixels = new Uint8Array(bytes);
    const hash = createHash('sha256');
    for (let at = 0; at < bytes; ) {
      const n = readSync(fd, pixels, at, Math.min(CHUNK, bytes - at), HEADER + at);
      if (n === 0) return null;
      hash.update(pixels.subarray(at, at + n));
      at += n;
    }
    return hash.digest().equals(h.subarray(64, 96)) ? pixels : null;
  } catch {
    // Unreadable (a folder in its place, an I/O error): as good as absent, the cache is rebuilt.
    return null;
  } finally {
    closeSync(fd);
  }
}

/** The cached pixels of `key` (count x size x size x 3 bytes), or null when no valid cache file exists. */
export function readImageCache(key: ImageCacheKey): Uint8Array | null {
  for (const path of key.paths) {
    const pixels = readCacheFile(path, key);
    if (pixels) return pixels;
  }
  return null;
}

/** Writes header then pixels to a temporary file beside `path`, flushes it and renames it over `path`. */
function writeAtomic(path: string, head: Uint8Array, pixels: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${threadId}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, head);
      writeFileSync(fd, pixels);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Stores `pixels` as the cache of `key` in the first of its paths that can be written, and returns that
 * path. Without an explicit folder, a folder that cannot be written (read-only data) passes to the next
 * and null means none could (the pixels still serve this run); in an explicit folder it is a DataError.
 */
export function writeImageCache(key: ImageCacheKey, pixels: Uint8Array): string | null {
  const head = header(key, createHash('sha256').update(pixels).digest());
  for (const path of key.paths) {
    try {
      writeAtomic(path, head, pixels);
      return path;
    } catch (e) {
      if (key.explicit) throw new DataError(`cannot write the image cache ${path}: ${(e as Error).message}`);
    }
  }
  return null;
}

/** Per-image states in {@link DecodeJob.state}; 0, pending, is what a fresh SharedArrayBuffer holds. */
const DECODING = 1;
const DONE = 2;
const FAILED = 3;
/** Indices in {@link DecodeJob.state} before the per-image states: the next unclaimed image, and how many have finished. */
const NEXT = 0;
const FINISHED = 1;
const STATES = 2;

/** A cold pass in shared memory, as each worker thread receives it. */
export interface DecodeJob {
  files: readonly string[];
  size: number;
  /** files.length x size x size x 3 bytes: image i at i x size x size x 3. */
  pixels: SharedArrayBuffer;
  /** Int32: the next unclaimed image, the number finished, then each image's state (pending, decoding, done, failed). */
  state: SharedArrayBuffer;
}

/**
 * Claims images of `job` one at a time and decodes each into its place until none is left: what every
 * worker thread of a cold pass runs (image-decode-worker.ts), and this thread when there are none.
 */
export function decodeClaimed(job: DecodeJob): void {
  const state = new Int32Array(job.state);
  const stride = job.size * job.size * CHANNELS;
  for (;;) {
    const i = Atomics.add(state, NEXT, 1);
    if (i >= job.files.length) return;
    Atomics.store(state, STATES + i, DECODING);
    let outcome = DONE;
    try {
      readImageFile(job.files[i], job.size, new Uint8Array(job.pixels, i * stride, stride));
    } catch {
      // The caller decodes failed images again on its own thread for their messages.
      outcome = FAILED;
    }
    Atomics.store(state, STATES + i, outcome);
    Atomics.add(state, FINISHED, 1);
    Atomics.notify(state, FINISHED);
  }
}

/** Worker threads for a cold pass of n images: one per core, fewer for small splits. */
export function defaultWorkers(n: number): number {
  return Math.max(1, Math.min(availableParallelism(), Math.ceil(n / IMAGES_PER_WORKER)));
}

/** Blocks until every image of the job is finished; throws when progress stops (a DataError naming the file being decoded). */
function awaitJob(job: DecodeJob, workers: number): void {
  const state = new Int32Array(job.state);
  const threads = Array.from({ length: workers }, () => {
    const w = new Worker(WORKER_URL, { workerData: job });
    // Delivered only once this thread waits no more, after the stall check below has spoken for a dead worker.
    w.on('error', () => {});
    w.unref();
    return w;
  });
  const n = job.files.length;
  let finished = 0;
  let progressAt = Date.now();
  while (finished < n) {
    // Sleeps without spinning until a worker finishes an image (or a second passes).
    Atomics.wait(state, FINISHED, finished, 1000);
    const now = Atomics.load(state, FINISHED);
    if (now !== finished) {
      finished = now;
      progressAt = Date.now();
    } else if (Date.now() - progressAt > STALL_MS) {
      threads.forEach((w) => void w.terminate());
      const stuck = job.files.filter((_, i) => state[STATES + i] === DECODING);
      if (stuck.length === 0) throw new Error(`image decoding stopped: the worker threads ended with ${n - finished} of ${n} images left`);
      throw new DataError(`image decoding stopped at ${stuck.join(', ')}: no image finished in ${STALL_MS / 1000} s`);
    }
  }
}

/**
 * Decodes and resizes every file to size x size x 3 with `workers` worker threads (default
 * {@link defaultWorkers}; 0: on this thread), which write straight into shared memory while this
 * thread sleeps. Returns the pixels (image i at i x size x size x 3) and the indices of the files that
 * could not be decoded (their bytes are left zero). Run from the TypeScript sources, where the compiled
 * worker script does not exist, it decodes on this thread.
 */
export function decodeImages(files: readonly string[], size: number, workers = defaultWorkers(files.length)): { pixels: Uint8Array; damaged: number[] } {
  if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`workers must be an integer >= 0, got ${workers}`);
  const n = files.length;
  const job: DecodeJob = {
    files,
    size,
    pixels: new SharedArrayBuffer(n * size * size * CHANNELS),
    state: new SharedArrayBuffer(4 * (STATES + n)),
  };
  if (workers === 0 || n === 0 || !existsSync(fileURLToPath(WORKER_URL))) decodeClaimed(job);
  else awaitJob(job, Math.min(workers, n));
  const state = new Int32Array(job.state);
  const damaged: number[] = [];
  for (let i = 0; i < n; i++) if (state[STATES + i] !== DONE) damaged.push(i);
  return { pixels: new Uint8Array(job.pixels), damaged };
}

/** The default bound on a cached split held in memory: a quarter of this machine's memory, at most 4 GiB. */
export function defaultCacheMaxBytes(): number {
  return Math.min(totalmem() / 4, 2 ** 32);
}
