import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { OptionError, type RunOptions } from '../../src/recipe/options.js';
import { resumeTraining, runTraining } from '../../src/recipe/run.js';
import { meanStd, parseGrid, recordCells, runSweep, summarizeSweep, sweepCells, type SweepCellResult, type SweepSpec } from '../../src/recipe/sweep.js';
import { sweepTable } from '../../src/report/summary.js';
import { FitInterrupted } from '../../src/train/fit.js';

test('parseGrid: each value of its option\'s kind, per-unit lists with "/", axes in order', () => {
  assert.deepEqual(parseGrid("proj-dim=64,128 lr=1e-3,3e-3;keep=0.5,1  token=cls,mean flip=true,false"), [
    { option: 'projDim', values: [64, 128] },
    { option: 'lr', values: [1e-3, 3e-3] },
    { option: 'keep', values: [0.5, 1] },
    { option: 'token', values: ['cls', 'mean'] },
    { option: 'flip', values: [true, false] },
  ]);
  assert.deepEqual(parseGrid('lambda=1/0.5/0.25,2 proj-dim=none,64'), [
    { option: 'lambda', values: [[1, 0.5, 0.25], 2] },
    { option: 'projDim', values: [null, 64] },
  ]);
});

test('parseGrid: bad grids are OptionErrors that say what is wrong', () => {
  const bad: [string, RegExp][] = [
    ['', /needs at least one NAME=V1,V2/],
    ['proj-dim', /'proj-dim' is not NAME=V1,V2/],
    ['=1,2', /is not NAME=V1,V2/],
    ['depth=1,2', /unknown option 'depth'/],
    ['seed=0,1', /vary the seed with --seeds/],
    ['broker=redis://a:1', /names one run/],
    ['width=8,16 width=32', /width is given twice/],
    ['width=8,,16', /width has an empty value/],
    ['width=8,eight', /width takes numbers, got 'eight'/],
    ['width=8,8', /width lists 8 twice/],
    ['token=cls,first', /token must be one of cls, mean, got 'first'/],
    ['flip=yes', /flip takes true or false, got 'yes'/],
  ];
  for (const [spec, message] of bad) {
    assert.throws(() => parseGrid(spec), (e: unknown) => e instanceof OptionError && message.test(e.message), spec);
  }
});

test('meanStd: mean and sample standard deviation (n - 1), checked by hand', () => {
  const { mean, std } = meanStd([0.9, 0.92, 0.97]);
  assert.ok(Math.abs(mean - 0.93) < 1e-12);
  // deviations -0.03, -0.01, 0.04: squares 9e-4 + 1e-4 + 16e-4 = 26e-4, / 2 = 13e-4
  assert.ok(Math.abs(std - Math.sqrt(13e-4)) < 1e-12);
  assert.deepEqual(meanStd([0.5]), { mean: 0.5, std: 0 });
  assert.throws(() => meanStd([]), RangeError);
});

test('summarizeSweep groups cells by grid point, in order, over their seeds', () => {
  const cell = (point: Record<string, unknown>, seed: number, acc: number, heads: number[], seconds: number): SweepCellResult => ({
    cell: '',
    dir: '',
    point,
    seed,
    status: 'trained',
    test_accuracy: acc,
    unit_test_accuracy: heads,
    ensemble_test_accuracy: null,
    train_seconds: seconds,
    epochs: 1,
  });
  const rows = summarizeSweep([
    cell({ width: 8 }, 0, 0.8, [0.7, 0.8], 10),
    cell({ width: 16 }, 0, 0.9, [0.85, 0.9], 30),
    cell({ width: 8 }, 1, 0.6, [0.5, 0.6], 20),
  ]);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows[0].point, { width: 8 });
  assert.deepEqual(rows[0].seeds, [0, 1]);
  assert.ok(Math.abs(rows[0].mean - 0.7) < 1e-12);
  assert.ok(Math.abs(rows[0].std - Math.sqrt(0.02)) < 1e-12);
  assert.deepEqual(rows[0].unitMeans.map((a) => +a.toFixed(12)), [0.6, 0.7]);
  assert.equal(rows[0].trainSeconds, 15);
  assert.deepEqual([rows[1].mean, rows[1].std, rows[1].seeds], [0.9, 0, [0]]);
});

test('sweeps of other flags or other fixed options into one folder: never averaged together, every grid flag a column', () => {
  const cell = (point: Record<string, unknown>, fixed: Record<string, unknown> | undefined, seed: number, acc: number): SweepCellResult => ({
    cell: '', dir: '', point, ...(fixed && { fixed }), seed, status: 'trained', test_accuracy: acc, unit_test_accuracy: [acc], ensemble_test_accuracy: null, train_seconds: 1, epochs: 1,
  });
  const rows = summarizeSweep([
    cell({ lr: 0.001 }, { width: 32 }, 0, 0.5),
    cell({ lr: 0.001 }, { width: 8 }, 1, 0.1),
    cell({ lr: 0.001 }, { width: 32 }, 1, 0.7),
    cell({ keep: 0.5 }, { width: 32 }, 0, 0.4),
  ]);
  assert.deepEqual(rows.map((r) => [r.point, r.fixed, r.seeds]), [
    [{ lr: 0.001 }, { width: 32 }, [0, 1]],
    [{ lr: 0.001 }, { width: 8 }, [1]],
    [{ keep: 0.5 }, { width: 32 }, [0]],
  ]);
  const table = sweepTable(rows);
  assert.deepEqual(table.header.slice(0, 4), ['lr', 'keep', 'other options', 'seeds']);
  assert.deepEqual(table.rows.map((r) => r.slice(0, 3)), [['0.001', '–', '--width 32'], ['0.001', '–', '--width 8'], ['–', '0.5', '--width 32']]);
  // Lines of older versions (no fixed) group as before.
  assert.equal(summarizeSweep([cell({ lr: 1 }, undefined, 0, 0.5), cell({ lr: 1 }, undefined, 1, 0.5)]).length, 1);
  assert.equal(sweepTable(summarizeSweep([cell({ lr: 1 }, { width: 8 }, 0, 0.5)])).header.includes('other options'), false, 'one setting: no column');
});

test('sweepCells: every grid point with every seed, first axis slowest; a bad cell fails before anything runs', () => {
  const spec: SweepSpec = { base: { layers: 2 }, grid: parseGrid('width=8,16 keep=0.5,1'), seeds: [0, 3] };
  const cells = sweepCells(spec, '/tmp/s');
  assert.deepEqual(
    cells.map((c) => c.name),
    [
      'width=8,keep=0.5,seed=0', 'width=8,keep=0.5,seed=3', 'width=8,keep=1,seed=0', 'width=8,keep=1,seed=3',
      'width=16,keep=0.5,seed=0', 'width=16,keep=0.5,seed=3', 'width=16,keep=1,seed=0', 'width=16,keep=1,seed=3',
    ],
  );
  assert.equal(cells[5].dir, path.join('/tmp/s', 'width=16,keep=0.5,seed=3'));
  assert.deepEqual([cells[5].options.width, cells[5].options.keep, cells[5].options.seed, cells[5].options.layers], [16, 0.5, 3, 2]);
  assert.equal(sweepCells({ base: { layers: 3 }, grid: parseGrid('lr=1e-3/2e-3/3e-3'), seeds: [0] }, 'd')[0].name, 'lr=0.001_0.002_0.003,seed=0');
  assert.throws(() => sweepCells({ base: {}, grid: parseGrid('keep=0.5,2'), seeds: [0] }, 'd'), /sweep cell keep=2,seed=0: --keep must be in \(0, 1\]/);
  assert.throws(() => sweepCells({ base: {}, grid: parseGrid('keep=1'), seeds: [] }, 'd'), /--seeds needs at least one seed/);
  assert.throws(() => sweepCells({ base: {}, grid: parseGrid('keep=1'), seeds: [1, 1] }, 'd'), /lists a seed twice/);
  // A grid built in code is checked as a parsed one is.
  const cellsOf = (grid: SweepSpec['grid'], base: SweepSpec['base'] = {}) => () => sweepCells({ base, grid, seeds: [0] }, 'd');
  assert.throws(cellsOf([{ option: 'seed', values: [1, 2] }]), /vary the seed with --seeds/);
  assert.throws(cellsOf([{ option: 'keep', values: [1, 1] }]), /keep lists 1 twice/);
  assert.throws(cellsOf([{ option: 'trainlimit' as keyof RunOptions, values: [1, 2] }]), /unknown option 'trainlimit'/);
  assert.throws(cellsOf([], { seed: 5 }), /base options hold no seed/);
  assert.throws(cellsOf([{ option: 'dataDir', values: ['/a/b', '_a_b'] }]), /two cells would share the folder data-dir=_a_b,seed=0/);
});

/** A tiny MNIST MLP on the cpu backend: runs are bit-reproducible there. */
const BASE: Partial<RunOptions> = { layers: 2, epochs: 2, trainLimit: 256, testLimit: 128, batchSize: 64, backend: 'cpu', cropPadding: 0 };

test('runSweep: trains every cell, skips finished ones, resumes an interrupted one to the uninterrupted result, and refuses a folder of other options', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweep-'));
  try {
    const spec: SweepSpec = { base: BASE, grid: parseGrid('width=8,16'), seeds: [0, 1] };
    const cells = sweepCells(spec, out);
    // Interrupt the third cell (width=16, seed 0) after 3 of its 8 steps: a checkpoint is written, then FitInterrupted.
    let steps = 0;
    await assert.rejects(
      runTraining(cells[2].options, cells[2].dir, { onBatchEnd: () => void steps++ }, { stopRequested: () => steps >= 3 }),
      FitInterrupted,
    );
    assert.ok(!fs.existsSync(path.join(cells[2].dir, 'summary.json')));
    // And finish the first cell by hand: the sweep must take it as it is.
    await runTraining(cells[0].options, cells[0].dir);
    const before = fs.statSync(path.join(cells[0].dir, 'summary.json')).mtimeMs;

    const seen: string[] = [];
    const stepsOf = new Map<string, number>();
    const result = await runSweep(spec, out, {
      onCell: (c, _i, _n, status) => seen.push(`${c.name}:${status}`),
      runCallbacks: (c) => ({ onBatchEnd: () => void stepsOf.set(c.name, (stepsOf.get(c.name) ?? 0) + 1) }),
    });
    assert.deepEqual(seen, ['width=8,seed=0:skipped', 'width=8,seed=1:trained', 'width=16,seed=0:resumed', 'width=16,seed=1:trained']);
    assert.deepEqual(result.cells.map((c) => c.status), ['skipped', 'trained', 'resumed', 'trained']);
    // 2 epochs of 4 steps: the resumed cell trains only the 5 steps it had left, the skipped one none.
    assert.deepEqual(Object.fromEntries(stepsOf), { 'width=8,seed=1': 8, 'width=16,seed=0': 5, 'width=16,seed=1': 8 });
    assert.equal(fs.statSync(path.join(cells[0].dir, 'summary.json')).mtimeMs, before);
    const lines = fs.readFileSync(path.join(out, 'sweep.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SweepCellResult);
    assert.deepEqual(lines.map((l) => [l.cell, l.status]), result.cells.map((c) => [c.cell, c.status]));
    assert.equal(lines.length, 4);
    assert.deepEqual(lines[2].point, { width: 16 });

    // The resumed cell ends where an uninterrupted run of its options ends (cpu: bit for bit).
    const fresh = await runTraining(cells[2].options, null);
    assert.equal(lines[2].test_accuracy, fresh.summary.test_accuracy);
    assert.deepEqual(lines[2].unit_test_accuracy, fresh.summary.unit_test_accuracy);
    // Different seeds differ: the seed reaches each cell.
    assert.notDeepEqual(lines[2].unit_test_accuracy.concat(lines[0].unit_test_accuracy), lines[3].unit_test_accuracy.concat(lines[1].unit_test_accuracy));

    assert.equal(result.rows.length, 2);
    assert.deepEqual(result.rows.map((r) => r.seeds), [[0, 1], [0, 1]]);
    const again = await runSweep(spec, out);
    assert.deepEqual(again.cells.map((c) => c.status), ['skipped', 'skipped', 'skipped', 'skipped']);
    assert.deepEqual(again.rows, result.rows);

    // The same folder with another recipe: refused, naming the option, before anything trains.
    await assert.rejects(runSweep({ ...spec, base: { ...BASE, lr: 3e-3 } }, out), (e: unknown) => e instanceof OptionError && /holds a run of other options \(--lr 0.001 there, 0.003 here\)/.test(e.message));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('sweeps sharing a folder: a cell another live process trains is left to it, and sweep.jsonl keeps every sweep\'s finished cells', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweep-share-'));
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const first = await runSweep({ base: BASE, grid: parseGrid('width=8'), seeds: [0] }, out);
    assert.deepEqual(first.recorded.map((c) => c.cell), ['width=8,seed=0']);
    // Cell width=16,seed=1 is held by another live process: this sweep leaves it alone.
    const spec: SweepSpec = { base: BASE, grid: parseGrid('width=16'), seeds: [0, 1] };
    const busyDir = path.join(out, 'width=16,seed=1');
    fs.mkdirSync(busyDir);
    fs.writeFileSync(path.join(busyDir, '.sll-lock'), JSON.stringify({ pid: holder.pid, host: os.hostname(), started: new Date().toISOString() }));
    const seen: string[] = [];
    const second = await runSweep(spec, out, { onCell: (c, _i, _n, status) => seen.push(`${c.name}:${status}`) });
    assert.deepEqual(seen, ['width=16,seed=0:trained', 'width=16,seed=1:busy']);
    assert.deepEqual(second.busy.map((c) => c.name), ['width=16,seed=1']);
    assert.deepEqual(second.cells.map((c) => c.cell), ['width=16,seed=0']);
    assert.ok(!fs.existsSync(path.join(busyDir, 'summary.json')));
    // The file holds the first sweep's line as well as this one's, in the order they finished.
    const lines = () => fs.readFileSync(path.join(out, 'sweep.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as SweepCellResult).cell);
    assert.deepEqual(lines(), ['width=8,seed=0', 'width=16,seed=0']);
    assert.deepEqual(second.recorded.map((c) => c.cell), lines());
    // Once the holder is gone the cell is trained; a line whose folder was removed is dropped.
    holder.kill();
    await new Promise((resolve) => holder.once('exit', resolve));
    fs.rmSync(path.join(out, 'width=8,seed=0'), { recursive: true });
    const third = await runSweep(spec, out);
    assert.deepEqual(third.cells.map((c) => c.status), ['skipped', 'trained']);
    assert.deepEqual(lines(), ['width=16,seed=0', 'width=16,seed=1']);
    // A cell finished by someone else while this sweep trains another is skipped at its turn, not retrained.
    const later: SweepSpec = { ...spec, seeds: [2, 3] };
    const [, next] = sweepCells(later, out);
    const trainedHere: string[] = [];
    const fourth = await runSweep(later, out, {
      runCallbacks: (c) => ({ onEpochEnd: () => void trainedHere.push(c.name) }),
      onCellEnd: async (r) => {
        if (r.cell === 'width=16,seed=2') await runTraining(next.options, next.dir);
      },
    });
    assert.deepEqual(trainedHere, ['width=16,seed=2', 'width=16,seed=2']);
    assert.deepEqual(fourth.cells.map((c) => c.status), ['trained', 'skipped']);
  } finally {
    holder.kill();
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a cell another sweep takes between the check and the start of training (fresh or resumed) is left busy', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweep-race-'));
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const spec: SweepSpec = { base: BASE, grid: parseGrid('width=8'), seeds: [0, 1] };
    const cells = sweepCells(spec, out);
    // Cell seed=1 was started and interrupted: the sweep will resume it.
    let steps = 0;
    await assert.rejects(runTraining(cells[1].options, cells[1].dir, { onBatchEnd: () => void steps++ }, { stopRequested: () => steps >= 3 }), FitInterrupted);
    // The other process takes each cell the moment this sweep has looked at it and announced what it does.
    const seen: string[] = [];
    const result = await runSweep(spec, out, {
      onCell: (c, _i, _n, status) => {
        seen.push(`${c.name}:${status}`);
        if (status === 'trained' || status === 'resumed') {
          fs.mkdirSync(c.dir, { recursive: true });
          fs.writeFileSync(path.join(c.dir, '.sll-lock'), JSON.stringify({ pid: holder.pid, host: os.hostname(), started: new Date().toISOString() }));
        }
      },
    });
    assert.deepEqual(seen, ['width=8,seed=0:trained', 'width=8,seed=0:busy', 'width=8,seed=1:resumed', 'width=8,seed=1:busy']);
    assert.deepEqual(result.busy.map((c) => c.name), ['width=8,seed=0', 'width=8,seed=1']);
    assert.deepEqual(result.cells, []);
    for (const c of cells) assert.ok(!fs.existsSync(path.join(c.dir, 'summary.json')));
  } finally {
    holder.kill();
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('recordCells waits for the lock another process holds, and takes over one left stale', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweep-lock-'));
  try {
    const line = (cell: string): SweepCellResult => ({ cell, dir: path.join(out, cell), point: {}, seed: 0, status: 'trained', test_accuracy: 0.5, unit_test_accuracy: [0.5], ensemble_test_accuracy: null, train_seconds: 1, epochs: 1 });
    const lock = path.join(out, '.sweep-lock');
    for (const cell of ['a', 'b']) {
      fs.mkdirSync(path.join(out, cell));
      fs.writeFileSync(path.join(out, cell, 'summary.json'), '{}');
    }
    recordCells(out, [line('a')]);
    // A process holds the lock for 400 ms: the write waits for it and keeps line a.
    const child = spawnSync(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(lock)}, 'x'); console.log('held')`]);
    assert.equal(child.status, 0);
    const release = spawn(process.execPath, ['-e', `setTimeout(() => require('fs').rmSync(${JSON.stringify(lock)}), 400)`], { stdio: 'ignore' });
    const t0 = Date.now();
    assert.deepEqual(recordCells(out, [line('b')]).map((c) => c.cell), ['a', 'b']);
    assert.ok(Date.now() - t0 >= 300, `waited ${Date.now() - t0} ms`);
    release.kill();
    // A lock a minute old is a dead holder's: taken over at once.
    fs.writeFileSync(lock, 'x');
    const old = (Date.now() - 60_000) / 1000;
    fs.utimesSync(lock, old, old);
    assert.deepEqual(recordCells(out, [line('b')]).map((c) => c.cell), ['a', 'b']);
    assert.ok(!fs.existsSync(lock));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('resumeTraining keeps the run\'s options: an override other than the backend is refused', async () => {
  await assert.rejects(resumeTraining(os.tmpdir(), {}, {}, { epochs: 3 } as Partial<RunOptions>), /a resumed run keeps its options: only backend, dataDir, cacheDir, broker may change, not epochs/);
});
