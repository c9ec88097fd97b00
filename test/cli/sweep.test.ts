import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sll sweep: bad grids and seeds exit 2 with one line, before any training', () => {
  const cases: [string[], RegExp][] = [
    [['sweep'], /--grid is required/],
    [['sweep', '--grid', 'depth=1,2'], /--grid: unknown option 'depth'/],
    [['sweep', '--grid', 'seed=1,2'], /vary the seed with --seeds/],
    [['sweep', '--grid', 'keep=0.5,3'], /sweep cell keep=3,seed=0: --keep must be in \(0, 1\]/],
    [['sweep', '--grid', 'keep=0.5', '--seeds', '0,1', '--seed', '2'], /give --seeds or --seed, not both/],
    [['sweep', '--grid', 'keep=0.5', '--seeds', '0,-1'], /--seeds must be integers >= 0, got -1/],
    [['sweep', '--grid', 'keep=0.5,1', '--keep', '0.7'], /--keep is given as a flag and varies in --grid: give one/],
  ];
  for (const [args, message] of cases) {
    const r = sll(...args, '--out', path.join(os.tmpdir(), 'sll-sweep-never-made'));
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!fs.existsSync(path.join(os.tmpdir(), 'sll-sweep-never-made')));
});

test('sll sweep: a 2 x 2 grid over 2 seeds, its table and files; run again, everything is skipped', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweep-cli-'));
  try {
    const args = ['sweep', '--grid', 'width=8,16 keep=0.5,1', '--seeds', '0,1', '--layers', '2', '--epochs', '1', '--train-limit', '256', '--test-limit', '128', '--batch-size', '64', '--backend', 'cpu', '--out', out];
    const first = sll(...args);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /cell 1\/8 width=8,keep=0\.5,seed=0: training/);
    assert.match(first.stdout, /cell 8\/8 width=16,keep=1,seed=1: training/);
    const table = first.stdout.split('\n').filter((l) => /^(8|16)\s+(0\.5|1)\s+2\s+\d+\.\d\d ± \d+\.\d\d/.test(l));
    assert.equal(table.length, 4, first.stdout);
    const lines = fs.readFileSync(path.join(out, 'sweep.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 8);
    for (const l of lines) {
      assert.ok(fs.existsSync(path.join(out, l.cell, 'model.json')), l.cell);
      assert.equal(JSON.parse(fs.readFileSync(path.join(out, l.cell, 'summary.json'), 'utf8')).test_accuracy, l.test_accuracy);
    }
    // The table's first row is the mean ± std of its two cells (the std with n - 1).
    const [a, b] = lines.filter((l) => l.point.width === 8 && l.point.keep === 0.5).map((l) => 100 * l.test_accuracy);
    const mean = (a + b) / 2;
    const std = Math.abs(a - b) / Math.SQRT2;
    assert.match(fs.readFileSync(path.join(out, 'sweep.md'), 'utf8'), new RegExp(`\\| 8 \\| 0.5 \\| 2 \\| ${mean.toFixed(2)} ± ${std.toFixed(2)} \\|`));

    const json = sll(...args, '--json');
    assert.equal(json.code, 0, json.stderr);
    // stdout holds the JSON lines alone (for jq); the progress goes to stderr.
    assert.equal((json.stderr.match(/finished before, skipped/g) ?? []).length, 8);
    const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[0].seeds, [0, 1]);
    assert.ok(Math.abs(100 * rows[0].test_accuracy_mean - mean) < 1e-9);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
