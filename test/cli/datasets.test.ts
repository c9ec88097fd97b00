import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-datasets-'));
}

/** A CIFAR-10 binary folder (cifar-10-batches-bin/) with `n` random records per file. */
function cifar10Dir(n: number): string {
  const root = tmp();
  const dir = path.join(root, 'cifar-10-batches-bin');
  fs.mkdirSync(dir);
  const file = (k: number) => {
    const out = Buffer.alloc(n * 3073);
    for (let r = 0; r < n; r++) {
      out[r * 3073] = (r + k) % 10;
      for (let i = 1; i < 3073; i++) out[r * 3073 + i] = (r * 31 + i * 7 + k) % 256;
    }
    return out;
  };
  for (let b = 1; b <= 5; b++) fs.writeFileSync(path.join(dir, `data_batch_${b}.bin`), file(b));
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), file(0));
  return root;
}

/** root/{train,val}/<class>/ with JPEG and PNG images of different sizes. */
function imageFolder(): string {
  const root = tmp();
  const classes = { red: [220, 30, 30], blue: [30, 30, 220] } as const;
  for (const split of ['train', 'val']) {
    for (const [name, [r, g, b]] of Object.entries(classes)) {
      const dir = path.join(root, split, name);
      fs.mkdirSync(dir, { recursive: true });
      for (let k = 0; k < (split === 'train' ? 6 : 2); k++) {
        const [w, h] = [20 + k, 16 + 2 * k];
        const rgba = Buffer.alloc(w * h * 4);
        for (let p = 0; p < w * h; p++) rgba.set([r, g, b, 255], p * 4);
        if (k % 2 === 0) {
          fs.writeFileSync(path.join(dir, `${k}.jpg`), jpeg.encode({ data: rgba, width: w, height: h }, 90).data);
        } else {
          const png = new PNG({ width: w, height: h });
          rgba.copy(png.data);
          fs.writeFileSync(path.join(dir, `${k}.png`), PNG.sync.write(png));
        }
      }
    }
  }
  return root;
}

const vgg = ['--model', 'vgg11', '--width-mult', '0.0625', '--epochs', '1', '--crop-padding', '2', '--flip'];

test('sll train --model vgg11 --dataset cifar10 --data-dir DIR trains on the binary CIFAR-10 format', () => {
  const out = tmp();
  const r = sll('train', ...vgg, '--dataset', 'cifar10', '--data-dir', cifar10Dir(8), '--batch-size', '8', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /data: cifar10, 40 train \/ 8 test examples, shape \[32,32,3\]/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.unit_test_accuracy.length, 8, 'one head per VGG-11 conv unit');
  const e = sll('evaluate', '--model-dir', out);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout.trim().split('\n').at(-1)!).test_accuracy, summary.test_accuracy);
});

test('sll train --dataset imagefolder --data-dir DIR decodes and resizes JPEG and PNG images once (the cache beside them, or in --cache-dir), with BP too', () => {
  const root = imageFolder();
  const cacheDir = tmp();
  const outs: Record<string, string> = {};
  for (const method of ['sll', 'bp']) {
    const cache = method === 'bp' ? ['--cache-dir', cacheDir] : [];
    outs[method] = tmp();
    const r = sll('train', ...vgg, '--method', method, '--dataset', 'imagefolder', '--data-dir', root, '--image-size', '16',
      '--batch-size', '4', ...cache, '--out', outs[method]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /data: imagefolder, 12 train \/ 4 test examples, shape \[16,16,3\]/);
  }
  // The model records its classes' names; a folder that names them otherwise is refused, not scored label for label.
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(outs.sll, 'sll.json'), 'utf8')).normalization.classNames, ['blue', 'red']);
  const renamed = tmp();
  fs.cpSync(root, renamed, { recursive: true, filter: (f) => !f.includes('.sll-cache') });
  for (const split of ['train', 'val']) fs.renameSync(path.join(renamed, split, 'blue'), path.join(renamed, split, 'teal'));
  const e = sll('evaluate', '--model-dir', outs.sll, '--data-dir', renamed);
  assert.equal(e.code, 2, e.stderr);
  assert.match(e.stderr, /the image data set's classes \(red, teal\) are not the model's \(blue, red\), label for label/);
  // The SLL run cached beside the data; the BP run, told --cache-dir, there and only there.
  const pixels = (dir: string) => fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.pixels'));
  assert.equal(pixels(path.join(root, '.sll-cache')).length, 2);
  assert.equal(pixels(cacheDir).length, 2);
});

test('data sets that need a folder say so, and a missing folder exits 2 naming it', () => {
  const none = sll('train', '--dataset', 'cifar100');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--dataset cifar100 needs --data-dir DIR/);
  const missing = sll('train', '--dataset', 'imagefolder', '--data-dir', '/nonexistent/images');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/nonexistent\/images/);
});
