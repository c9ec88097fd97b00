import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { RunFolderError, claimRunFolder } from '../../src/io/run-folder.js';

const lockOf = (dir: string) => path.join(dir, '.sll-lock');

test('a lock naming this process\'s pid but not held by it (a container restarted with the same pid) is taken over; one held is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-lock-'));
  fs.writeFileSync(lockOf(dir), JSON.stringify({ pid: process.pid, host: os.hostname(), started: '2026-01-01T00:00:00Z' }));
  const warnings: string[] = [];
  const folder = claimRunFolder(dir, { options: {}, warn: (m) => warnings.push(m) });
  assert.deepEqual(warnings, [`taking over the lock of process ${process.pid}, this process's pid before a restart`]);
  // Held here: a second claim in this process is refused, and says how to clear a lock of a reused pid.
  assert.throws(
    () => claimRunFolder(dir, { resume: true }),
    (e: Error) => e instanceof RunFolderError && new RegExp(`--resume ${dir} is in use by a run in process ${process.pid} .*wait for it \\(if process ${process.pid} is no sll run, its pid was reused: delete .*\\.sll-lock\\)`).test(e.message),
  );
  folder.release();
  assert.equal(fs.existsSync(lockOf(dir)), false);
  claimRunFolder(dir, { resume: true }).release();
});

test('a run and a sweep do not share a folder: a run into a sweep\'s folder and a sweep into a run\'s are refused', async () => {
  const sweepDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-sweepdir-'));
  fs.writeFileSync(path.join(sweepDir, 'sweep.jsonl'), '');
  assert.throws(() => claimRunFolder(sweepDir, { options: {}, overwrite: true }), (e: Error) => e instanceof RunFolderError && /is a sweep's folder \(sweep\.jsonl\): choose another --out/.test(e.message));
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-rundir-'));
  claimRunFolder(runDir, { options: {} }).release();
  fs.writeFileSync(path.join(runDir, 'run.json'), '{}');
  const { runSweep } = await import('../../src/recipe/sweep.js');
  await assert.rejects(runSweep({ base: { epochs: 1 }, grid: [{ option: 'lr', values: [0.001] }], seeds: [0] }, runDir), /--out .* holds a run \(run\.json\): a sweep writes its cells into a folder of its own/);
});
