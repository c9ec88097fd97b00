/**
 * Pipeline stages as processes joined by Redis Streams (`sll train --pipeline N --broker URL`, `sll stage`):
 * the same result as sequential training bit for bit on cpu, through a stage killed with SIGKILL and
 * through a broker restart; clear errors for a bad, unreachable, silent or lost broker and a silent stage;
 * stages run by hand refused when they would train wrongly (restarted without --resume, started twice, a
 * second coordinator of the run) and ending with their coordinator. The tests share one redis-server
 * (Debian's, installed by .ci/run) on 127.0.0.1 on a free port.
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

/** Whether process `pid` runs. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `ok()` holds, at most `ms`. */
async function until(ok: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (ok()) return true;
  return ok();
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

/** A `during` for sll(): `action(child)` once, when the child's stderr first matches `pattern` (and `ready()` holds). */
function whenSeen(pattern: RegExp, action: (child: ChildProcess) => void, ready: () => boolean = () => true): (child: ChildProcess) => void {
  return (child) => {
    let seen = '';
    let done = false;
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (!done && pattern.test(seen) && ready()) {
        done = true;
        action(child);
      }
    });
  };
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
  const restart = async () => {
    restarted = true;
    await stopRedis(redis!, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 700));
    redis = await startRedis(port, redisDir);
  };
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--checkpoint-every', '4', '--out', out], whenSeen(/epoch 1\/3 .*\d+\/40/, () => void restart()));
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
  // Something that takes the connection and never answers (not a Redis server, or a hung one).
  const mute = net.createServer((socket) => socket.on('data', () => {}));
  const mutePort = await freePort();
  await new Promise<void>((resolve) => mute.listen(mutePort, '127.0.0.1', resolve));
  const silentBroker = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', `redis://127.0.0.1:${mutePort}`, '--stage-timeout', '2', '--out', tmp()]);
  mute.close();
  // Something that answers a command with garbage and hangs up (an HTTP server): the process must still end.
  const http = net.createServer((socket) => socket.once('data', () => socket.end('HTTP/1.0 400 Bad Request\r\n\r\n')));
  const httpPort = await freePort();
  await new Promise<void>((resolve) => http.listen(httpPort, '127.0.0.1', resolve));
  const notRedis = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', `redis://127.0.0.1:${httpPort}`, '--stage-timeout', '2', '--out', tmp()]);
  http.close();
  assert.equal(notRedis.code, 2, notRedis.stderr);
  assert.match(notRedis.stderr, /^sll: lost the broker at redis:\/\/127\.0\.0\.1:\d+ for 2 s \(.+\): is a Redis server listening there\?$/m);
  assert.equal(silentBroker.code, 2, silentBroker.stderr);
  assert.match(silentBroker.stderr, /^sll: lost the broker at redis:\/\/127\.0\.0\.1:\d+ for 2 s \(no answer\): is a Redis server listening there\?$/m);
  const stage = await sll(['stage', '--broker', broker(), '--run', 'x', '--stage', '3', '--of', '2']);
  assert.equal(stage.code, 2);
  assert.match(stage.stderr, /--stage must be between 1 and --of \(2\), got 3/);
  const silent = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--stage-timeout', '2', '--run', 'nobody-home', '--out', tmp()]);
  assert.equal(silent.code, 1, silent.stderr);
  assert.match(silent.stderr, /npx sll stage --broker redis:\/\/127\.0\.0\.1:\d+ --run nobody-home --stage 1 --of 2/);
  assert.match(silent.stderr, /^sll: pipeline stage 1 \(units 1-2\) did not answer within 2 s \(the stages after it wait on it\)$/m);
  for (const r of [bad, unreachable, silentBroker, notRedis, stage, silent]) assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
});

test('stage processes started by a coordinator end when it is killed outright (no orphans)', { skip, timeout: 120_000 }, async () => {
  const out = tmp();
  const pids = [1, 2].map((s) => path.join(out, 'stages', `stage-${s}`, 'stage.pid'));
  let stages: number[] = [];
  const killCoordinator = (child: ChildProcess) => {
    stages = pids.map((f) => Number(fs.readFileSync(f, 'utf8')));
    child.kill('SIGKILL');
  };
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--out', out], whenSeen(/epoch 1\/3/, killCoordinator, () => pids.every((f) => fs.existsSync(f))));
  assert.equal(r.code, null, 'the coordinator was killed');
  assert.equal(stages.length, 2);
  await until(() => !stages.some(alive), 10_000);
  assert.deepEqual(stages.filter(alive), [], 'every stage process ended');
});

test('a broker lost for good mid-run: the run fails within --stage-timeout naming the broker, and its stages end', { skip, timeout: 120_000 }, async () => {
  const out = tmp();
  const pids = [1, 2].map((s) => path.join(out, 'stages', `stage-${s}`, 'stage.pid'));
  let stages: number[] = [];
  let lostAt = 0;
  const lose = () => {
    lostAt = Date.now();
    stages = pids.map((f) => Number(fs.readFileSync(f, 'utf8')));
    void stopRedis(redis!, 'SIGKILL');
  };
  const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--stage-timeout', '5', '--out', out], whenSeen(/epoch 1\/3 .*\d+\/40/, lose, () => pids.every((f) => fs.existsSync(f))));
  const took = Date.now() - lostAt;
  redis = await startRedis(port, redisDir);
  assert.ok(lostAt > 0, 'the broker was killed');
  assert.equal(r.code, 1, r.stderr);
  // Told by the send that gave up, or by the watchdog of the stage that could not answer.
  assert.match(r.stderr, /^sll: (pipeline stage \d \(units \d-\d\) did not answer within 5 s: )?lost the broker at redis:\/\/127\.0\.0\.1:\d+ /m);
  assert.ok(took < 30_000, `failed ${took} ms after the broker went`);
  await until(() => !stages.some(alive), 10_000);
  assert.deepEqual(stages.filter(alive), [], 'every stage process ended');
});

test('stages run by hand: one restarted without --resume, a second process of a stage, and a second coordinator of the run are refused; resumed, the run ends as the uninterrupted one and leaves only the mark of its end', { skip, timeout: 240_000 }, async () => {
  const out = tmp();
  const name = `byhand-${path.basename(out)}`;
  const dir = (s: number, k = 'a') => path.join(out, 'by-hand', `stage-${s}-${k}`);
  const stage = (s: number, extra: string[] = [], during?: (child: ChildProcess) => void) =>
    sll(['stage', '--broker', broker(), '--run', name, '--stage', String(s), '--of', '2', '--checkpoint-every', '5', ...extra], during);
  const coordinator = sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--run', name, '--out', out]);
  const first = stage(1, ['--out', dir(1)]);
  let second: ChildProcess | null = null;
  const killed = stage(2, ['--out', dir(2)], (child) => (second = child));
  const checkpoint = path.join(dir(2), 'stage-checkpoint.bin');
  assert.ok(await until(() => fs.existsSync(checkpoint), 120_000), 'stage 2 checkpointed');
  second!.kill('SIGKILL');
  assert.equal((await killed).code, null);

  const coordinator2 = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--run', name, '--out', tmp()]);
  assert.equal(coordinator2.code, 2, coordinator2.stderr);
  assert.match(coordinator2.stderr, new RegExp(`^sll: run "${name}" on the broker at redis://127\\.0\\.0\\.1:\\d+ is taken by process \\d+ on .+ \\(since .+\\), which is still running: give this run another --run name, or stop that coordinator first$`, 'm'));
  const twice = await stage(1, ['--out', dir(1, 'b')]);
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(twice.stderr, new RegExp(`^sll: stage 1 of run "${name}" is taken by process \\d+ .*which is still running: each stage runs in one process`, 'm'));
  // The killed process's claim lapses, then the fresh start is refused: it would train from the initial weights.
  const fresh = await stage(2, ['--out', dir(2, 'b')]);
  assert.equal(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, /^sll: stage 2 \(units 3-4\) of run ".+" has handled messages up to \d+ in an earlier process, and only that process's checkpoint holds them: start it again with --resume and the --out folder of that process/m);
  const shared = await stage(2, ['--out', dir(1), '--resume']);
  assert.equal(shared.code, 2, shared.stderr);
  assert.match(shared.stderr, /^sll: --out .*stage-1-a is in use by process \d+ \(another stage\?\): give each stage a folder of its own$/m);
  fs.mkdirSync(dir(2, 'd'), { recursive: true });
  fs.copyFileSync(path.join(dir(1), 'stage-checkpoint.bin'), path.join(dir(2, 'd'), 'stage-checkpoint.bin'));
  const foreign = await stage(2, ['--out', dir(2, 'd'), '--resume']);
  assert.equal(foreign.code, 2, foreign.stderr);
  assert.match(foreign.stderr, new RegExp(`--resume found the checkpoint of stage 1 of run "${name}" at .*stage-2-d.stage-checkpoint\\.bin: give --out this stage's own folder`));
  const elsewhere = await stage(2, ['--out', dir(2, 'c'), '--resume']);
  assert.equal(elsewhere.code, 2, elsewhere.stderr);
  assert.match(elsewhere.stderr, /--resume found no checkpoint at .*stage-2-c.stage-checkpoint\.bin: give --out the folder of that process/);
  assert.ok(fs.existsSync(checkpoint), 'the refused starts left the checkpoint alone');
  const resumed = await stage(2, ['--out', dir(2), '--resume']);
  const r = await coordinator;
  assert.equal(r.code, 0, r.stderr);
  for (const s of [await first, resumed]) assert.equal(s.code, 0, s.stderr);
  assert.match(resumed.stderr, /resumed from its checkpoint after message [1-9]\d*/);
  assertSameAsSequential(out);

  const client = createClient({ url: broker() });
  await client.connect();
  assert.deepEqual(await client.keys(`sll:${name}:*`), [`sll:${name}:end`], 'only the mark of the end stays');
  await client.quit();
  const late = await stage(1, ['--out', dir(1, 'c')]);
  assert.equal(late.code, 2, late.stderr);
  assert.match(late.stderr, new RegExp(`^sll: run "${name}" ended at \\S+: start its stages while its coordinator runs`, 'm'));
});

test('stages run by hand stop when their coordinator is killed (its process gone, or its claim on the run lapsed)', { skip, timeout: 120_000 }, async () => {
  const out = tmp();
  const name = `orphans-${path.basename(out)}`;
  let coordinator: ChildProcess | null = null;
  const run = sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--run', name, '--out', out], (child) => (coordinator = child));
  const stages = [1, 2].map((s) => sll(['stage', '--broker', broker(), '--run', name, '--stage', String(s), '--of', '2', '--out', path.join(out, `s${s}`)]));
  assert.ok(await until(() => fs.existsSync(path.join(out, 'metrics.jsonl')) && fs.statSync(path.join(out, 'metrics.jsonl')).size > 0, 120_000), 'an epoch ended');
  coordinator!.kill('SIGKILL');
  const killedAt = Date.now();
  assert.equal((await run).code, null);
  for (const s of await Promise.all(stages)) {
    assert.equal(s.code, 1, s.stderr);
    assert.match(s.stderr, new RegExp(`^sll: stage \\d \\(units \\d-\\d\\): run "${name}"'s coordinator is gone \\((process \\d+ ended|its claim on the broker lapsed)\\); stopping`, 'm'));
  }
  assert.ok(Date.now() - killedAt < 40_000, 'the stages noticed within the claim\'s lapse');
});

test('a broker password is never recorded or printed; --resume asks for it and continues with it', { skip, timeout: 180_000 }, async () => {
  const securePort = await freePort();
  const secure = spawn('redis-server', ['--port', String(securePort), '--bind', '127.0.0.1', '--save', '', '--requirepass', 's3cret-pw', '--dir', tmp()], { stdio: 'ignore' });
  try {
    await until(() => spawnSync('redis-cli', ['-p', String(securePort), 'ping']).status === 0, 10_000);
    const url = `redis://:s3cret-pw@127.0.0.1:${securePort}`;
    const noPassword = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', `redis://127.0.0.1:${securePort}`, '--out', tmp()]);
    assert.equal(noPassword.code, 2, noPassword.stderr);
    assert.match(noPassword.stderr, /refused the run: NOAUTH .*\(give its password in the URL, redis:\/\/:PASSWORD@HOST:PORT, or in SLL_BROKER_PASSWORD\)/);
    const wrong = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', `redis://:nope@127.0.0.1:${securePort}`, '--out', tmp()]);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /^sll: the broker at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the password: WRONGPASS/m);
    const stageNoPassword = await sll(['stage', '--broker', `redis://127.0.0.1:${securePort}`, '--run', 'x', '--stage', '1', '--of', '2', '--out', tmp()]);
    assert.equal(stageNoPassword.code, 2, stageNoPassword.stderr);
    assert.match(stageNoPassword.stderr, /^sll: the broker at redis:\/\/127\.0\.0\.1:\d+ refused the stage: NOAUTH/m);
    const out = tmp();
    // One epoch, a checkpoint every 10 steps, killed after step 20: resumed from a step-wise checkpoint.
    // The stage processes' command lines (which any local user can list) do not hold it either.
    const commandLines: string[] = [];
    const listThenKill = (child: ChildProcess) => {
      for (const s of [1, 2]) commandLines.push(fs.readFileSync(`/proc/${fs.readFileSync(path.join(out, 'stages', `stage-${s}`, 'stage.pid'), 'utf8').trim()}/cmdline`, 'utf8'));
      child.kill('SIGKILL');
    };
    const r = await sll(['train', ...BASE, '--epochs', '1', '--checkpoint-every', '10', '--pipeline', '2', '--broker', url, '--out', out], whenSeen(/epoch 1\/1 .*\b(2\d|3\d)\/40/, listThenKill));
    assert.equal(commandLines.length, 2);
    for (const line of commandLines) assert.match(line, /stage\0--broker\0redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\0/);
    assert.equal(r.code, null, 'killed in its epoch');
    const files = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const recorded = () => files(out).filter((f) => f.endsWith('.json'));
    assert.ok(recorded().some((f) => f.endsWith('state.json')), 'a checkpoint was written');
    const again = await sll(['train', '--resume', out]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, new RegExp(`^sll: the run's broker needs a password, which its record leaves out: give --broker redis://:PASSWORD@127\\.0\\.0\\.1:${securePort} with --resume \\(or set SLL_BROKER_PASSWORD\\)$`, 'm'));
    const resumed = await sll(['train', '--resume', out, '--broker', url]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .* from its checkpoint after step [1-9]\d* /);
    for (const f of recorded()) assert.doesNotMatch(fs.readFileSync(f, 'utf8'), /s3cret-pw/, f);
    assert.match(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'), /"broker": "redis:\/\/:\*\*\*@127\.0\.0\.1:\d+"/);
    for (const printed of [r.stderr, again.stderr, resumed.stderr]) assert.doesNotMatch(printed, /s3cret-pw/);
  } finally {
    await stopRedis(secure);
  }
});

test('a broker restarted without persistence (the run\'s keys lost): the run fails saying so instead of waiting', { skip, timeout: 120_000 }, async () => {
  const volatilePort = await freePort();
  const start = () => spawn('redis-server', ['--port', String(volatilePort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp()], { stdio: 'ignore' });
  let server = start();
  const up = () => spawnSync('redis-cli', ['-p', String(volatilePort), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG';
  assert.ok(await until(up, 10_000), 'the broker started');
  let restarted = false;
  try {
    const restart = async () => {
      restarted = true;
      await stopRedis(server, 'SIGKILL');
      server = start();
    };
    const r = await sll(['train', ...BASE, '--epochs', '3', '--pipeline', '2', '--broker', `redis://127.0.0.1:${volatilePort}`, '--out', tmp()], whenSeen(/epoch 1\/3 .*\d+\/40/, () => void restart()));
    assert.ok(restarted, 'the broker was restarted');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^sll: run ".+"'s keys are gone from the broker at redis:\/\/127\.0\.0\.1:\d+ \(restarted without persistence\? start it with --appendonly yes\); resume the run with sll train --resume$/m);
  } finally {
    await stopRedis(server);
  }
});

test('Ctrl-C while the coordinator waits for stages started by hand stops it at once (exit 130)', { skip, timeout: 60_000 }, async () => {
  const out = tmp();
  let signalledAt = 0;
  const r = await sll(['train', ...BASE, '--epochs', '1', '--pipeline', '2', '--broker', broker(), '--remote-stages', '--run', `nobody-${path.basename(out)}`, '--out', out], whenSeen(/npx sll stage .* --stage 2 --of 2/, (child) => {
    signalledAt = Date.now();
    child.kill('SIGINT');
  }));
  assert.equal(r.code, 130, r.stderr);
  assert.ok(Date.now() - signalledAt < 10_000, 'stopped within seconds, not at --stage-timeout');
  assert.match(r.stderr, /^sll: stopped on request before training \(at step 0\); continue with: sll train --resume /m);
});
