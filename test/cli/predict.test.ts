import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { useBackend } from '../../src/backend.js';
import { loadMnist } from '../../src/data/mnist.js';
import { loadModel } from '../../src/io/model-files.js';
import { disposeHeaded } from '../../src/train/model.js';
import { predict } from '../../src/train/predict.js';
import { idxBytes } from '../data/helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sll predict gives, for PNG images and IDX records, the classes and probabilities of the model\'s last head', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-predict-'));
  const out = path.join(root, 'run');
  const r = sll('train', '--train-limit', '1000', '--test-limit', '100', '--epochs', '2', '--layers', '2', '--width', '64', '--batch-size', '50',
    '--lr', '0.005', '--keep', '1', '--crop-padding', '0', '--backend', 'cpu', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  // Ten MNIST test digits as RGB PNG files (gray replicated), and the same ten as an IDX image file.
  const { test: digits } = loadMnist();
  const n = 10;
  const pixels = digits.pixels.subarray(0, n * 784);
  const files = Array.from({ length: n }, (_, i) => {
    const png = new PNG({ width: 28, height: 28 });
    for (let p = 0; p < 784; p++) png.data.set([pixels[i * 784 + p], pixels[i * 784 + p], pixels[i * 784 + p], 255], 4 * p);
    const file = path.join(root, `digit-${i}.png`);
    fs.writeFileSync(file, PNG.sync.write(png));
    return file;
  });
  // The same digits as white strokes whose alpha is the digit, on a transparent background (a drawing
  // exported from a canvas): composited over black they are the digits again (alpha dropped, all white).
  const strokes = Array.from({ length: n }, (_, i) => {
    const png = new PNG({ width: 28, height: 28 });
    for (let p = 0; p < 784; p++) png.data.set([255, 255, 255, pixels[i * 784 + p]], 4 * p);
    const file = path.join(root, `stroke-${i}.png`);
    fs.writeFileSync(file, PNG.sync.write(png));
    return file;
  });
  const idx = path.join(root, 'digits-idx3-ubyte');
  fs.writeFileSync(idx, idxBytes([n, 28, 28], pixels));

  const p = sll('predict', '--model-dir', out, '--json', ...files, idx);
  assert.equal(p.code, 0, p.stderr);
  const rows = p.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 2 * n);
  const s = sll('predict', '--model-dir', out, '--json', ...strokes);
  assert.equal(s.code, 0, s.stderr);
  const strokeRows = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
  strokeRows.forEach((row, i) => {
    // The same pixels in another batch: equal up to float32 rounding.
    assert.equal(row.class, rows[i].class, `${row.file}: as the opaque PNG`);
    row.probabilities.forEach((q: number, k: number) => assert.ok(Math.abs(q - rows[i].probabilities[k]) < 1e-6, `${row.file}: p[${k}] ${q} vs ${rows[i].probabilities[k]}`));
  });
  assert.deepEqual(rows.slice(n).map((row) => [row.file, row.index]), Array.from({ length: n }, (_, i) => [idx, i]));
  assert.ok(rows.slice(0, n).every((row) => !('index' in row)), 'an image file has no record index');

  await useBackend('cpu');
  const model = await loadModel(out);
  const x = tf.tidy(() => tf.div(tf.sub(tf.div(tf.tensor(pixels, [n, 28, 28, 1], 'float32'), 255), 0.1307), 0.3081));
  const want = (await predict(model, x).array()) as number[][];
  rows.forEach((row, i) => {
    const w = want[i % n];
    assert.equal(row.class, w.indexOf(Math.max(...w)), `${row.file}: class`);
    assert.ok(Math.abs(row.probability - Math.max(...w)) < 1e-5, `${row.file}: probability ${row.probability} vs ${Math.max(...w)}`);
  });
  const correct = rows.slice(0, n).filter((row, i) => row.class === digits.labels[i]).length;
  assert.ok(correct >= 7, `${correct} of ${n} digits right`);
  disposeHeaded(model);

  const text = sll('predict', '--model-dir', out, '--limit', '2', idx);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^${idx}#0: class \\d \\(p 0\\.\\d{4}\\)\\n${idx}#1: class \\d`));
  assert.equal(text.stdout.trim().split('\n').length, 2);
  const bad = path.join(root, 'not-an-image.png');
  fs.writeFileSync(bad, 'hello');
  const e = sll('predict', '--model-dir', out, bad);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /not-an-image.png: not a JPEG or PNG image/);
  const folder = sll('predict', '--model-dir', out, root);
  assert.equal(folder.code, 2, folder.stderr);
  assert.match(folder.stderr, /is not a file \(an image/);
  // A model that records its classes' names (an image-folder run) prints them beside the index.
  const named = path.join(root, 'named-model');
  fs.cpSync(out, named, { recursive: true });
  const meta = JSON.parse(fs.readFileSync(path.join(named, 'sll.json'), 'utf8'));
  const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  meta.normalization.classNames = names;
  fs.writeFileSync(path.join(named, 'sll.json'), JSON.stringify(meta));
  const labelled = sll('predict', '--model-dir', named, '--limit', '1', idx);
  assert.equal(labelled.code, 0, labelled.stderr);
  assert.equal(labelled.stdout, `${idx}#0: class ${rows[n].class} "${names[rows[n].class]}" (p ${rows[n].probability.toFixed(4)})\n`);
  const labelledJson = JSON.parse(sll('predict', '--model-dir', named, '--limit', '1', '--json', idx).stdout);
  assert.equal(labelledJson.label, names[rows[n].class]);
  const broken = path.join(root, 'broken-model');
  fs.cpSync(out, broken, { recursive: true });
  fs.writeFileSync(path.join(broken, 'sll.json'), '{bad');
  const corrupt = sll('predict', '--model-dir', broken, idx);
  assert.equal(corrupt.code, 2, corrupt.stderr);
  assert.match(corrupt.stderr, /sll\.json is not valid JSON/);
});
