/**
 * npm run bench:data [-- --json] [--images N] [--repeats R] [--source WxH]
 * How fast the training split of an image folder is read, against the same images in a binary layout.
 * In a temporary folder: N training images (default 2560, 10 classes; N/5 validation images) as real
 * files, 4 in 5 JPEG and 1 in 5 PNG, of about --source pixels (default 160x120, the short side of
 * Imagenette-160), and the same images resized to 32x32 in CIFAR-10's binary layout (data_batch_1..5.bin,
 * test_batch.bin), which loadCifar10 reads into memory. Rows:
 *   binary:            loadCifar10, then an epoch;
 *   folder cold:       loadImageFolder with the cache and none on disk (checks the files, decodes them in
 *                      worker threads, writes the cache), then the first epoch;
 *   folder cached:     loadImageFolder again (reads the cache), then an epoch;
 *   folder streaming:  loadImageFolder without the cache (the path before the cache): every epoch decodes.
 * An epoch reads every image once, in batches of 128 in a shuffled order, through readPixels, and again
 * through batchSource (the tensors training takes: normalised, on tfjs's cpu backend). In memory an epoch
 * takes milliseconds, so its time is the median of 5 readPixels passes and of 3 batchSource passes;
 * streaming, which decodes every image each pass, has one readPixels pass. Rows alternate and rotate
 * their order; the table gives the median of R repeats (default 3). The target: a cached epoch within
 * 1.5x of the binary layout's.
 * Prints the table, then one JSON object on a line: {images, val_images, size, source, cores, workers,
 * repeats, rows: [...], cold_decoded_images_per_s, ratio_cached_vs_binary_epoch,
 * ratio_cached_vs_binary_batch_source, ratio_cached_vs_binary_load_and_epoch}.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { loadCifar10 } from '../src/data/cifar.js';
import type { ImageDataset } from '../src/data/dataset.js';
import { decodeImages, defaultWorkers } from '../src/data/image-cache.js';
import { listImageFolder, loadImageFolder } from '../src/data/imagefolder.js';
import { Rng, permutation } from '../src/data/random.js';
import { batchSource } from '../src/data/source.js';
import { benchArgs, fail, intFlag } from './args.js';

const { values } = benchArgs(() =>
  parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    images: { type: 'string', default: '2560' },
    repeats: { type: 'string', default: '3' },
    source: { type: 'string', default: '160x120' },
  },
}),
);
const n = intFlag('images', values.images, 10);
const repeats = intFlag('repeats', values.repeats);
const [srcW, srcH] = values.source!.split('x').map(Number);
if (!(Number.isInteger(srcW) && Number.isInteger(srcH) && srcW > 0 && srcH > 0)) fail(`--source must be WxH (e.g. 160x120), got ${values.source}`);
const CLASSES = 10;
const SIZE = 32;
const BATCH = 128;
const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const seconds = (t0: number) => (performance.now() - t0) / 1000;

/** A photo-like image: a smooth two-colour gradient of the class, with a little noise (JPEGs of noise are unrealistically slow). */
function picture(w: number, h: number, cls: number, rng: Rng): Buffer {
  const data = Buffer.alloc(w * h * 4);
  const a = [(cls * 97) % 256, (cls * 57) % 256, (cls * 151) % 256];
  const b = [rng.int(256), rng.int(256), rng.int(256)];
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const t = (i / h + j / w) / 2;
      for (let c = 0; c < 3; c++) data[(i * w + j) * 4 + c] = Math.max(0, Math.min(255, Math.round(a[c] * (1 - t) + b[c] * t + rng.int(17) - 8)));
      data[(i * w + j) * 4 + 3] = 255;
    }
  }
  return data;
}

function writeFolder(root: string, split: string, count: number, seed: number): void {
  const rng = new Rng(seed);
  for (let k = 0; k < count; k++) {
    const cls = k % CLASSES;
    // Sizes vary a little, as a photo collection's do.
    const w = srcW + rng.int(Math.ceil(srcW / 3));
    const h = srcH + rng.int(Math.ceil(srcH / 3));
    const data = picture(w, h, cls, rng);
    const dir = path.join(root, split, `class${cls}`);
    fs.mkdirSync(dir, { recursive: true });
    if (k % 5 === 4) {
      const png = new pngjs.PNG({ width: w, height: h });
      png.data = data;
      fs.writeFileSync(path.join(dir, `${k}.png`), pngjs.PNG.sync.write(png, { colorType: 2 }));
    } else {
      fs.writeFileSync(path.join(dir, `${k}.jpg`), jpeg.encode({ width: w, height: h, data }, 90).data);
    }
  }
}

/** The split's images resized to 32x32 as CIFAR-10 records (label byte, then the red, green and blue planes). */
function cifarRecords(files: string[], labels: Int32Array): Buffer[] {
  const { pixels, damaged } = decodeImages(files, SIZE);
  if (damaged.length > 0) throw new Error(`the generated ${files[damaged[0]]} does not decode`);
  const plane = SIZE * SIZE;
  return files.map((_, i) => {
    const rec = Buffer.alloc(1 + 3 * plane);
    rec[0] = labels[i];
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) rec[1 + c * plane + p] = pixels[(i * plane + p) * 3 + c];
    return rec;
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-bench-data-'));
const folder = path.join(dir, 'folder');
const binary = path.join(dir, 'binary');
try {
  log(`writing ${n} + ${Math.ceil(n / 5)} images of about ${srcW}x${srcH} to ${folder} ...`);
  const t0 = performance.now();
  writeFolder(folder, 'train', n, 1);
  writeFolder(folder, 'val', Math.ceil(n / 5), 2);
  const index = listImageFolder(folder);
  fs.mkdirSync(binary);
  const train = cifarRecords(index.train.files, index.train.labels);
  const per = Math.ceil(train.length / 5);
  for (let b = 0; b < 5; b++) fs.writeFileSync(path.join(binary, `data_batch_${b + 1}.bin`), Buffer.concat(train.slice(b * per, (b + 1) * per)));
  fs.writeFileSync(path.join(binary, 'test_batch.bin'), Buffer.concat(cifarRecords(index.val.files, index.val.labels)));
  log(`written in ${seconds(t0).toFixed(1)} s`);
  await tf.setBackend('cpu');

  /** Every image once, in batches of BATCH in a shuffled order, through readPixels: the median of `passes`. */
  function readEpoch(ds: ImageDataset, seed: number, passes: number): number {
    const order = permutation(ds.size, seed);
    const out = new Uint8Array(BATCH * SIZE * SIZE * 3);
    const times = Array.from({ length: passes }, () => {
      const t = performance.now();
      for (let start = 0; start < ds.size; start += BATCH) ds.readPixels(order.subarray(start, start + BATCH), out);
      return seconds(t);
    });
    return median(times);
  }
  /** Every image once through batchSource, the normalised tensors a training step takes: the median of `passes`. */
  async function sourceEpoch(ds: ImageDataset, seed: number, passes: number): Promise<number> {
    const times: number[] = [];
    for (let p = 0; p < passes; p++) {
      const t = performance.now();
      for await (const b of batchSource(ds).batches({ batchSize: BATCH, shuffle: true, seed, epoch: p })) tf.dispose([b.x, b.labels]);
      times.push(seconds(t));
    }
    return median(times);
  }

  const cache = path.join(folder, '.sll-cache');
  const ROWS: { name: string; load: () => ImageDataset; streams: boolean }[] = [
    { name: 'binary', load: () => loadCifar10(binary).train, streams: false },
    {
      name: 'folder cold',
      load: () => {
        fs.rmSync(cache, { recursive: true, force: true });
        return loadImageFolder(folder, { imageSize: SIZE, cache: true }).train;
      },
      streams: false,
    },
    { name: 'folder cached', load: () => loadImageFolder(folder, { imageSize: SIZE, cache: true }).train, streams: false },
    { name: 'folder streaming', load: () => loadImageFolder(folder, { imageSize: SIZE }).train, streams: true },
  ];
  const times = new Map(ROWS.map((r) => [r.name, { load: [] as number[], epoch: [] as number[], source: [] as number[] }]));
  // The cached row needs a cache: built here once, outside the timings.
  loadImageFolder(folder, { imageSize: SIZE, cache: true });
  for (let r = 0; r < repeats; r++) {
    // Rotated so that no row always runs first, or after the same one: the machine is shared and noisy.
    for (const row of [...ROWS.slice(r % ROWS.length), ...ROWS.slice(0, r % ROWS.length)]) {
      const t = performance.now();
      const ds = row.load();
      const load = seconds(t);
      const epoch = readEpoch(ds, r, row.streams ? 1 : 5);
      const source = row.streams ? NaN : await sourceEpoch(ds, r, 3);
      const m = times.get(row.name)!;
      m.load.push(load);
      m.epoch.push(epoch);
      m.source.push(source);
      log(`repeat ${r + 1}/${repeats} ${row.name}: load ${load.toFixed(3)} s, epoch ${epoch.toFixed(3)} s${Number.isNaN(source) ? '' : `, batchSource epoch ${source.toFixed(3)} s`}`);
    }
  }

  const rows = ROWS.map(({ name }) => {
    const m = times.get(name)!;
    const load = median(m.load);
    const epoch = median(m.epoch);
    const source = median(m.source);
    return {
      name,
      load_s: load,
      epoch_s: epoch,
      batch_source_epoch_s: Number.isNaN(source) ? null : source,
      epoch_images_per_s: n / epoch,
      batch_source_images_per_s: Number.isNaN(source) ? null : n / source,
      first_pass_images_per_s: n / (load + epoch),
    };
  });
  const row = (name: string) => rows.find((x) => x.name === name)!;
  const bin = row('binary');
  const hot = row('folder cached');
  const nVal = index.val.files.length;
  const result = {
    images: n,
    val_images: nVal,
    size: SIZE,
    source: `${srcW}x${srcH}`,
    cores: os.availableParallelism(),
    workers: defaultWorkers(n),
    repeats,
    rows,
    cold_decoded_images_per_s: (n + nVal) / row('folder cold').load_s,
    ratio_cached_vs_binary_epoch: hot.epoch_s / bin.epoch_s,
    ratio_cached_vs_binary_batch_source: hot.batch_source_epoch_s! / bin.batch_source_epoch_s!,
    ratio_cached_vs_binary_load_and_epoch: (hot.load_s + hot.epoch_s) / (bin.load_s + bin.epoch_s),
  };
  const fmt = (v: number | null, d: number, w: number) => (v === null ? '-' : v.toFixed(d)).padStart(w);
  const table = [
    `${n} training images of about ${srcW}x${srcH} (4/5 JPEG, 1/5 PNG) read at ${SIZE}x${SIZE}, batches of ${BATCH}, ` +
      `${result.workers} decoding workers on ${result.cores} cores, median of ${repeats}`,
    'layout              load s  epoch s  epoch img/s  batchSource s  batchSource img/s  load+epoch img/s',
    ...rows.map(
      (x) =>
        `${x.name.padEnd(18)}${fmt(x.load_s, 3, 8)}${fmt(x.epoch_s, 3, 9)}${fmt(x.epoch_images_per_s, 0, 13)}` +
        `${fmt(x.batch_source_epoch_s, 3, 15)}${fmt(x.batch_source_images_per_s, 0, 19)}${fmt(x.first_pass_images_per_s, 0, 18)}`,
    ),
    `cold pass: ${n + nVal} images (train and val) checked, decoded and cached in ${row('folder cold').load_s.toFixed(1)} s, ` +
      `${result.cold_decoded_images_per_s.toFixed(0)} images/s; streaming decodes ${row('folder streaming').epoch_images_per_s.toFixed(0)} images/s`,
    `cached / binary: epoch ${result.ratio_cached_vs_binary_epoch.toFixed(2)}x, batchSource epoch ` +
      `${result.ratio_cached_vs_binary_batch_source.toFixed(2)}x, load + epoch ${result.ratio_cached_vs_binary_load_and_epoch.toFixed(2)}x (target: epoch <= 1.5x)`,
  ];
  if (values.json) console.error(table.join('\n'));
  else console.log(table.join('\n'));
  console.log(JSON.stringify(result));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
