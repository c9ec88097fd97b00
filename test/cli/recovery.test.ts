import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { idxBytes } from '../data/helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
// The cpu backend is exact and deterministic: an interrupted and resumed run must match bit for bit.
const RUN = ['--backend', 'cpu', '--train-limit', '1200', '--test-limit', '200', '--epochs', '3', '--layers', '2',
  '--width', '16', '--batch-size', '20', '--checkpoint-every', '5'];

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-recovery-'));
}

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts a run and signals it once `checkpoints` checkpoints exist plus a random delay; resolves on exit. */
function interruptedRun(
  out: string,
  signal: NodeJS.Signals,
  extra: string[] = [],
): Promise<{ code: number | null; signal: string | null; stderr: string; delay: number }> {
  const child = spawn(process.execPath, [CLI, 'train', ...RUN, ...extra, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const delay = Math.floor(Math.random() * 400);
  const poll = setInterval(() => {
    const dir = path.join(out, 'checkpoints');
    if (fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.startsWith('step-'))) {
      clearInterval(poll);
      setTimeout(() => child.kill(signal), delay);
    }
  }, 10);
  return new Promise((resolve) =>
    child.on('exit', (code, sig) => {
      clearInterval(poll);
      resolve({ code, signal: sig, stderr, delay });
    }),
  );
}

function metricsWithoutTimes(out: string) {
  return fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { epoch_seconds: _, ...rest } = JSON.parse(l);
    return rest;
  });
}

function assertSameRun(a: string, b: string) {
  for (const f of ['weights.bin', 'heads.bin']) {
    assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} differs`);
  }
  assert.deepEqual(metricsWithoutTimes(b), metricsWithoutTimes(a));
  const sa = JSON.parse(fs.readFileSync(path.join(a, 'summary.json'), 'utf8'));
  const sb = JSON.parse(fs.readFileSync(path.join(b, 'summary.json'), 'utf8'));
  assert.equal(sb.test_accuracy, sa.test_accuracy);
}

let reference: string | null = null;
function uninterrupted(): string {
  if (!reference) {
    reference = tmp();
    const r = sll('train', ...RUN, '--out', reference);
    assert.equal(r.code, 0, r.stderr);
  }
  return reference;
}

test('a run killed with SIGKILL at a random step and resumed ends bit-identical to the uninterrupted run', async () => {
  const out = tmp();
  const killed = await interruptedRun(out, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill (delay ${killed.delay} ms)`);
  const resumed = sll('train', '--resume', out);
  assert.equal(resumed.code, 0, resumed.stderr);
  assertSameRun(uninterrupted(), out);
  assert.ok(fs.readdirSync(path.join(out, 'checkpoints')).filter((f) => f.startsWith('step-')).length <= 2, 'the last two are kept');
});

test('a 2-stage pipeline run, killed with SIGKILL and resumed, ends bit-identical to the sequential run', async () => {
  const out = tmp();
  const killed = await interruptedRun(out, 'SIGKILL', ['--pipeline', '2']);
  assert.equal(killed.signal, 'SIGKILL', `the run ended before the kill (delay ${killed.delay} ms)`);
  const resumed = sll('train', '--resume', out);
  assert.equal(resumed.code, 0, resumed.stderr);
  assertSameRun(uninterrupted(), out);
});

test('SIGINT stops cleanly after a checkpoint, and resuming gives the uninterrupted result', async () => {
  const out = tmp();
  const stopped = await interruptedRun(out, 'SIGINT');
  assert.equal(stopped.code, 130, stopped.stderr);
  const steps = /stopped on request after step (\d+); checkpoint written, continue with: sll train --resume/.exec(stopped.stderr)?.[1];
  assert.ok(steps !== undefined, stopped.stderr);
  assert.ok(fs.existsSync(path.join(out, 'checkpoints', `step-${steps.padStart(9, '0')}`)), `the message names the checkpoint's step ${steps}`);
  const resumed = sll('train', '--resume', out);
  assert.equal(resumed.code, 0, resumed.stderr);
  assertSameRun(uninterrupted(), out);
});

test('a damaged newest checkpoint is detected by its checksum and the previous one is used', () => {
  const out = tmp();
  fs.cpSync(uninterrupted(), out, { recursive: true });
  const [newest, previous] = fs.readdirSync(path.join(out, 'checkpoints')).filter((f) => f.startsWith('step-')).sort().reverse();
  const weights = path.join(out, 'checkpoints', newest, 'weights.bin');
  fs.truncateSync(weights, fs.statSync(weights).size - 100);
  // As if the run had died before writing its summary: resuming rewinds it to the previous checkpoint.
  fs.rmSync(path.join(out, 'summary.json'));
  const r = sll('train', '--resume', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`checkpoint .*${newest} is damaged \\(weights.bin fails its checksum\\); trying the previous one`));
  assert.ok(previous);
  assertSameRun(uninterrupted(), out);
});

test('a diverging run (huge learning rate) stops with exit 1 naming the unit, step and loss part', () => {
  const out = tmp();
  const r = sll('train', ...RUN, '--lr', '1e30', '--out', out);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /(unit \d+|the network) diverged at step \d+: (its (prediction|alignment|loss) loss is (NaN|-?Infinity)|its weights hold NaN or Inf)/);
  assert.ok(!fs.existsSync(path.join(out, 'summary.json')), 'no summary for a diverged run');
});

/** An MNIST folder in the real IDX format whose last training label is 12 (K = 10). */
function mnistWithBadLabel(): string {
  const dir = tmp();
  const images = (n: number) => idxBytes([n, 28, 28], new Uint8Array(n * 784));
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), images(20));
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes([20], [...Array(19).fill(1), 12]));
  fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), images(5));
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idxBytes([5], [0, 1, 2, 3, 4]));
  return dir;
}

const badInputs: [string, string[], RegExp][] = [
  ['labels outside 0..K-1', ['--data-dir', mnistWithBadLabel(), '--batch-size', '4'], /label.*12/i],
  ['a missing data folder', ['--data-dir', '/nonexistent/mnist'], /not found.*\/nonexistent\/mnist/i],
  ['a negative checkpoint interval', ['--checkpoint-every', '-1'], /--checkpoint-every must be an integer >= 0, got -1/],
  ['resuming a folder that does not exist', ['--resume', '/nonexistent/run'], /--resume \/nonexistent\/run: no such folder/],
  ['resuming a folder without checkpoints', ['--resume', os.tmpdir()], /no checkpoint in/],
  ['resume with other flags', ['--resume', os.tmpdir(), '--lr', '1'], /--resume takes the run's options from its checkpoint \(only --backend, --data-dir, --cache-dir, --broker may be given\); drop --lr/],
  ['more pipeline stages than units', ['--pipeline', '4', '--layers', '3'], /--pipeline must be <= the number of units \(3\)/],
  ['a pipeline for backprop', ['--pipeline', '2', '--method', 'bp'], /--pipeline needs --method sll/],
  ['a batch larger than the data', ['--batch-size', '500', '--train-limit', '100'], /larger than the training set/],
];

for (const [what, args, message] of badInputs) {
  test(`sll train rejects ${what} with exit 2 before training`, () => {
    const r = sll('train', ...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  });
}
