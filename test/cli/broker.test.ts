/**
 * Pipeline stages as processes joined by Redis Streams (`sll train --pipeline N --broker URL`, `sll stage`):
 * the same result as sequential training bit for bit on cpu, through a stage killed with SIGKILL and
 * through a broker restart; clear errors for a bad or unreachable broker and a silent stage. Each test
 * starts its own redis-server (Debian's, installed by .ci/run) on 127.0.0.1 on a free port.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const BASE = ['--backend', 'cpu', '--train-limit', '1000', '--test-limit', '200', '--layers', '4', '--width', '64', '--batch-size', '25', '--lr', '1e-2', '--keep', '1'];
const REDIS = spawnSync('redis-server', ['--version']).status === 0;
const skip = REDIS ? false : 'redis-server is not installed (.ci/run installs it: apt-get install redis-server)';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sll-broker-'));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A redis-server on 127.0.0.1:port, persisting every write (AOF, fsync always) into dir. */
async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return server;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server did not start on port ${port}`);
}

function stopRedis(server: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (server.exitCode !== null) return resolve();
    server.once('exit', () => resolve());
    server.kill(signal);
  });
}

/** Runs the CLI; `during` is called with the child once it runs. */
function sll(args: string[], during?: (child: ChildProcess) => void): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    during?.(child);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

let redis: ChildProcess | null = null;
let port = 0;
let redisDir = '';
let sequential = '';

before(async () => {
  if (!REDIS) return;
  port = await freePort();
  redisDir = tmp();
  redis = await startRedis(port, redisDir);
  sequential = tmp();
  const r = await sll(['train', ...BASE, '--epochs', '3', '--out', sequential]);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  if (redis) await stopRedis(redis);
});

const broker = () => `redis://127.0.0.1:${port}`;
const strip = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { epoch_seconds: _, ...m } = JSON.parse(l) as Record<string, unknown>;
      return m;
    });

/** The run in `out` ended with exactly the sequential run's weights, heads and metrics. */
function assertSameAsSequential(out: string): void {
  for (const f of ['weights.bin', 'heads.bin']) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(sequential, f))), `${f} differs`);
  assert.deepEqual(strip(path.join(out, 'metrics.jsonl')), strip(path.join(sequential, 'metrics.jsonl')));
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { test_accuracy: number };
  assert.ok(summary.test_accuracy > 0.6, `the run learned: ${summary.test_accuracy}`);
}

/** Every stream of run `name` is empty at the end: each message was acknowledged and trimmed. */
async function assertTrimmed(name: string, stages: number): Promise<void> {
  const client = createClient({ url: broker() });
  await client.connect();
  for (let s = 0; s < stages; s++) assert.equal(await client.xLen(`sll:${name}:chain:${s}`), 0, `stream of stage ${s + 1}`);
  assert.equal(await client.xLen(`sll:${name}:replies`), 0, 'replies');
  await client.quit();
}

for (const stages of [2, 3]) {
  test(`${stages} stages as processes over Redis give bit-identical weights and metrics to sequential SLL on cpu, and leave no message behind`, { skip, timeout: 240_000 }, async () => {
    const out = tmp();
    const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', String(stages), '--broker', broker(), '--checkpoint-every', '5', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assertSameAsSequential(out);
    await assertTrimmed(path.basename(out), stages);
    for (let s = 1; s <= stages; s++) assert.ok(fs.existsSync(path.join(out, 'stages', `stage-${s}`, 'stage-checkpoint.bin')), `stage ${s} checkpointed`);
    // The coordinator's folder is an ordinary run: sll evaluate reads it and agrees with its summary.
    const evaluated = spawnSync(process.execPath, [CLI, 'evaluate', '--model-dir', out], { encoding: 'utf8' });
    assert.equal(evaluated.status, 0, evaluated.stderr);
    const line = JSON.parse(evaluated.stdout.trim().split('\n').pop()!) as { test_accuracy: number };
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as { test_accuracy: number };
    assert.equal(line.test_accuracy, summary.test_accuracy);
  });
}

test('a middle stage killed with SIGKILL at a random step is restarted with --resume and the run ends exactly as the uninterrupted one', { skip, timeout: 240_000 }, async () => {
  const out = tmp();
  const pidFile = path.join(out, 'stages', 'stage-2', 'stage.pid');
  let killedAt = -1;
  // No step-wise checkpoints (only at epoch ends), and the kill comes after step 20 of the first epoch:
  // the restart reads more pending entries than one XREADGROUP page (16), and must page through them.
  const args = ['--checkpoint-every', '1000', '--stage-timeout', '60'];
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '3', '--broker', broker(), ...args, '--out', out], (child) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      // Past step 20 of the first epoch, kill stage 2 after a random delay (a random step).
      if (killedAt < 0 && /epoch 1\/3 .*\b(2\d|3\d)\/40/.test(seen) && fs.existsSync(pidFile)) {
        killedAt = 0;
        const delay = 1 + Math.floor(Math.random() * 300);
        setTimeout(() => {
          const pid = Number(fs.readFileSync(pidFile, 'utf8'));
          process.kill(pid, 'SIGKILL');
          killedAt = delay;
        }, delay);
      }
    });
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(killedAt > 0, 'stage 2 was killed');
  assert.match(r.stderr, /stage 2 \(units 2-3\) was killed \(SIGKILL\); restarting it with --resume/);
  assert.match(r.stderr, /\[stage 2\] stage 2 \(units 2-3\): resumed from its checkpoint after message [1-9]\d*/);
  assertSameAsSequential(out);
  await assertTrimmed(path.basename(out), 3);
});

test('the broker restarted mid-run (persistence on): the stages and the coordinator reconnect and the result is unchanged', { skip, timeout: 240_000 }, async () => {
  const out = tmp();
  let restarted = false;
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--checkpoint-every', '4', '--out', out], (child) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (!restarted && /epoch 1\/3 .*\d+\/40/.test(seen)) {
        restarted = true;
        void (async () => {
          await stopRedis(redis!, 'SIGKILL');
          await new Promise((res) => setTimeout(res, 700));
          redis = await startRedis(port, redisDir);
        })();
      }
    });
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(restarted, 'the broker was restarted');
  assertSameAsSequential(out);
});

test('a bad or unreachable broker, a stage number out of range, and a silent stage end with one clear line', { skip, timeout: 240_000 }, async () => {
  const bad = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', 'http://127.0.0.1:1', '--out', tmp()]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--broker must be a URL redis:\/\/HOST:PORT, got "http:\/\/127\.0\.0\.1:1"/);
  const noPipeline = await sll(['train', ...BASE, '--epochs', '1', '--broker', broker(), '--out', tmp()]);
  assert.equal(noPipeline.code, 2);
  assert.match(noPipeline.stderr, /--broker needs --pipeline N with N >= 2/);
  const unreachable = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', `redis://127.0.0.1:${await freePort()}`, '--out', tmp()]);
  assert.equal(unreachable.code, 2, unreachable.stderr);
  assert.match(unreachable.stderr, /cannot reach the broker at redis:\/\/127\.0\.0\.1:\d+/);
  const stage = await sll(['stage', '--broker', broker(), '--run', 'x', '--stage', '3', '--of', '2']);
  assert.equal(stage.code, 2);
  assert.match(stage.stderr, /--stage must be between 1 and --of \(2\), got 3/);
  const silent = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--stage-timeout', '2', '--run', 'nobody-home', '--out', tmp()]);
  assert.equal(silent.code, 1, silent.stderr);
  assert.match(silent.stderr, /npx sll stage --broker redis:\/\/127\.0\.0\.1:\d+ --run nobody-home --stage 1 --of 2/);
  assert.match(silent.stderr, /^sll: pipeline stage 1 \(units 1-2\) did not answer within 2 s \(the stages after it wait on it\)$/m);
  for (const r of [bad, unreachable, stage, silent]) assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
});

test('stage processes started by a coordinator end when it is killed outright (no orphans)', { skip, timeout: 120_000 }, async () => {
  const out = tmp();
  const pids = [1, 2].map((s) => path.join(out, 'stages', `stage-${s}`, 'stage.pid'));
  let stages: number[] = [];
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--out', out], (child) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (stages.length === 0 && /epoch 1\/3/.test(seen) && pids.every((f) => fs.existsSync(f))) {
        stages = pids.map((f) => Number(fs.readFileSync(f, 'utf8')));
        child.kill('SIGKILL');
      }
    });
  });
  assert.equal(r.code, null, 'the coordinator was killed');
  assert.equal(stages.length, 2);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && stages.some(alive); i++) await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(stages.filter(alive), [], 'every stage process ended');
});
