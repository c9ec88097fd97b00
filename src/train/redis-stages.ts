/**
 * The pipeline's stages as processes, anywhere a Redis broker reaches, joined by Redis Streams: the same
 * stage protocol (pipeline-protocol.ts) and Stage (stage.ts) as the worker threads, another transport.
 *
 * Keys of run NAME: `sll:NAME:meta` (the generation and the number of stages), `sll:NAME:init:s` (stage
 * s's init, published by the coordinator), `sll:NAME:chain:s` (the stream stage s reads, through the
 * consumer group `stages`: stage 1's is written by the coordinator, stage s+1's by stage s), and
 * `sll:NAME:replies` (every stage's replies, read by the coordinator).
 *
 * Durability: a stage acknowledges (and deletes) the messages it read only once its own checkpoint (in its
 * folder) covers them, so a stage killed at any moment and restarted with `--resume` takes its
 * checkpoint, reads again what it had not covered (its pending entries) and recomputes exactly what it
 * computed before; what it sends again is ignored by seq downstream. A broker restart (with persistence
 * on) is the same: the clients reconnect and retry, and repeats are ignored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createClient, RESP_TYPES } from 'redis';
import { decodeMessage, encodeMessage } from '../io/message-codec.js';
import { writeFileAtomic } from '../io/model-files.js';
import { StageError, type StageTransport } from './pipeline.js';
import { stageName, type ChainMessage, type StageInit, type StageReply } from './pipeline-protocol.js';
import { Stage, type StageSnapshot } from './stage.js';

/** A broker that cannot be used: a malformed URL, or nothing answering there (a user error). */
export class BrokerError extends Error {
  override name = 'BrokerError';
}

type Client = ReturnType<typeof createClient>;
type Reply = unknown;
const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };
const GROUP = 'stages';

/** The keys of run `run` on the broker. */
export function brokerKeys(run: string) {
  const base = `sll:${run}`;
  return {
    meta: `${base}:meta`,
    init: (s: number) => `${base}:init:${s}`,
    chain: (s: number) => `${base}:chain:${s}`,
    replies: `${base}:replies`,
    all: `${base}:*`,
  };
}

/** What the coordinator publishes beside the inits: which generation of the run, and its stages. */
interface RunMeta {
  generation: string;
  stages: number;
}

/** Throws a BrokerError unless `url` is a redis:// (or rediss://) URL with a host. */
export function checkBrokerUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BrokerError(`--broker must be a URL redis://HOST:PORT, got "${url}"`);
  }
  if (!['redis:', 'rediss:'].includes(parsed.protocol) || !parsed.hostname) {
    throw new BrokerError(`--broker must be a URL redis://HOST:PORT, got "${url}"`);
  }
}

/** How long a lost broker is waited for (reconnecting and retrying) before the process gives up. */
export const BROKER_PATIENCE_MS = 60_000;

/** A connected client: the first connection must succeed (else BrokerError); a lost one is retried. */
export async function connectBroker(url: string): Promise<Client> {
  checkBrokerUrl(url);
  let connected = false;
  const client = createClient({
    url,
    // No CLIENT SETINFO at each (re)connect: a broker still loading its data answers it with LOADING,
    // which would fail the reconnection; our own commands retry that instead.
    disableClientInfo: true,
    socket: {
      connectTimeout: 5000,
      reconnectStrategy: (retries) => (connected ? Math.min(100 * 2 ** retries, 1000) : new BrokerError('unreachable')),
    },
  });
  client.on('error', () => {}); // each command reports its own failure; retried below
  try {
    await client.connect();
  } catch (e) {
    throw new BrokerError(`cannot reach the broker at ${url}: ${(e as Error).message || (e as { code?: string }).code || e}`);
  }
  connected = true;
  return client;
}

/** A Redis error reply (e.g. NOGROUP), as opposed to a lost connection or a broker not ready yet. */
function isReplyError(e: unknown): boolean {
  const name = (e as Error)?.constructor?.name ?? '';
  // LOADING: a restarted broker reading its persisted data; BUSY/TRYAGAIN/MASTERDOWN: also transient.
  if (/^(LOADING|BUSY|TRYAGAIN|MASTERDOWN)\b/.test((e as Error)?.message ?? '')) return false;
  return name === 'SimpleError' || name === 'BlobError' || name === 'ErrorReply';
}

/** `command` on `client`, retried while the broker is unreachable (at most BROKER_PATIENCE_MS). */
async function call(client: Client, args: (string | Buffer)[], url: string): Promise<Reply> {
  const deadline = Date.now() + BROKER_PATIENCE_MS;
  for (;;) {
    try {
      return await client.sendCommand(args, BUFFERS);
    } catch (e) {
      if (isReplyError(e)) throw e;
      if (Date.now() > deadline) throw new StageError(`lost the broker at ${url} for ${BROKER_PATIENCE_MS / 1000} s: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** `value` encoded, as a Buffer over the encoding's bytes (no copy). */
function wire(value: unknown): Buffer {
  const bytes = encodeMessage(value);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Stream entries of an XREAD/XREADGROUP reply: [id, message bytes (null: a pending entry deleted meanwhile)]. */
function entries(reply: Reply): [string, Buffer | null][] {
  if (!reply) return [];
  const out: [string, Buffer | null][] = [];
  for (const [, items] of reply as [Buffer, [Buffer, Buffer[] | null][]][]) {
    for (const [id, fields] of items) out.push([id.toString(), fields && fields.length >= 2 ? fields[1] : null]);
  }
  return out;
}

/** Every key of run `run` removed (a fresh start of the run). */
async function clearRun(client: Client, url: string, run: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = (await call(client, ['SCAN', cursor, 'MATCH', brokerKeys(run).all, 'COUNT', '1000'], url)) as [Buffer, Buffer[]];
    cursor = next.toString();
    if (keys.length > 0) await call(client, ['DEL', ...keys.map(String)], url);
  } while (cursor !== '0');
}

/** Local stage processes, restarted with --resume when they die. */
export interface LocalStages {
  /** The CLI entry (`sll`'s main.js) the stage processes run. */
  cli: string;
  /** Each stage's folder: `dir(s)` for stage s (0-based). */
  dir: (s: number) => string;
  /** Told of each stage's output lines and of restarts. */
  log: (line: string) => void;
  /** Restarts allowed per stage before the run fails. */
  maxRestarts?: number;
  /** The stages' --checkpoint-every (default: theirs). */
  checkpointEvery?: number;
}

/** The coordinator's side: sends the chain to stage 1's stream, reads the replies stream, starts local stages if asked. */
export class RedisTransport implements StageTransport {
  private closed = false;
  /** Set when closing: a stage that exits now is not restarted. */
  private closing = false;
  private readonly children: (ChildProcess | null)[] = [];
  private readonly restarts: number[];
  private failure: ((e: Error) => void) | null = null;
  private reading: Promise<void> | null = null;
  /** Bytes sent to stage 1 (what each step's message costs on the wire, with the others' replies). */
  bytesSent = 0;

  private constructor(
    private readonly url: string,
    readonly run: string,
    private readonly client: Client,
    private readonly reader: Client,
    private readonly inits: StageInit[],
    private readonly local: LocalStages | null,
  ) {
    this.restarts = inits.map(() => 0);
  }

  /**
   * Publishes a fresh generation of run `run` (its old keys removed) with the stages' inits, then starts
   * the stages as local processes when `local` is given (else they are started by hand, `sll stage`).
   */
  static async open(url: string, run: string, inits: StageInit[], local: LocalStages | null): Promise<RedisTransport> {
    const client = await connectBroker(url);
    let reader: Client | null = null;
    try {
      reader = await connectBroker(url);
      const keys = brokerKeys(run);
      await clearRun(client, url, run);
      for (const [s, init] of inits.entries()) {
        await call(client, ['SET', keys.init(s), wire(init)], url);
        await call(client, ['XGROUP', 'CREATE', keys.chain(s), GROUP, '0', 'MKSTREAM'], url);
      }
      const meta: RunMeta = { generation: randomUUID(), stages: inits.length };
      await call(client, ['SET', keys.meta, JSON.stringify(meta)], url);
      const transport = new RedisTransport(url, run, client, reader, inits, local);
      if (local) inits.forEach((_, s) => transport.spawnStage(s, false));
      return transport;
    } catch (e) {
      // Open sockets would keep the process alive after the error.
      for (const c of [client, reader]) c?.destroy();
      if (e instanceof BrokerError) throw e;
      const message = (e as Error).message;
      const password = /NOAUTH|WRONGPASS/.test(message) ? ' (give its password in the URL: redis://:PASSWORD@HOST:PORT)' : '';
      throw new BrokerError(`the broker at ${url} refused the run: ${message}${password}`);
    }
  }

  private spawnStage(s: number, resume: boolean): void {
    const local = this.local!;
    const args = [local.cli, 'stage', '--broker', this.url, '--run', this.run, '--stage', String(s + 1), '--of', String(this.inits.length), '--out', local.dir(s)];
    if (resume) args.push('--resume');
    if (local.checkpointEvery) args.push('--checkpoint-every', String(local.checkpointEvery));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SLL_STAGE_PARENT: String(process.pid) } });
    this.children[s] = child;
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (tail + d.toString()).split(/\r|\n/);
      tail = lines.pop()!;
      for (const line of lines) if (line.trim()) local.log(`[stage ${s + 1}] ${line}`);
    });
    child.on('exit', (code, signal) => {
      this.children[s] = null;
      if (this.closing || code === 0) return;
      const name = stageName(s, this.inits[s]);
      const how = signal ? `was killed (${signal})` : `exited with code ${code}`;
      if (code === 2 || this.restarts[s] >= (local.maxRestarts ?? 5)) {
        this.failure?.(new StageError(`pipeline ${name} ${how}${code === 2 ? ' (bad input)' : `; restarted ${this.restarts[s]} times`}`));
        return;
      }
      this.restarts[s]++;
      local.log(`pipeline ${name} ${how}; restarting it with --resume`);
      this.spawnStage(s, true);
    });
  }

  async send(m: ChainMessage): Promise<void> {
    const bytes = wire(m);
    this.bytesSent += bytes.length;
    await call(this.client, ['XADD', brokerKeys(this.run).chain(0), '*', 'm', bytes], this.url);
  }

  listen(onReply: (r: StageReply) => void, onFailure: (e: Error) => void): void {
    this.failure = onFailure;
    const key = brokerKeys(this.run).replies;
    this.reading = (async () => {
      let last = '0';
      while (!this.closed) {
        try {
          const got = entries(await call(this.reader, ['XREAD', 'COUNT', '64', 'BLOCK', '500', 'STREAMS', key, last], this.url));
          for (const [id, bytes] of got) {
            last = id;
            if (bytes) onReply(decodeMessage<StageReply>(bytes));
          }
          if (got.length > 0) await call(this.reader, ['XDEL', key, ...got.map(([id]) => id)], this.url);
        } catch (e) {
          if (!this.closed) onFailure(e as Error);
          return;
        }
      }
    })();
  }

  /** Waits for local stages to end (they end on 'stop'; killed after `graceMs`), then disconnects. */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const alive = this.children.filter((c): c is ChildProcess => c != null);
    await Promise.all(
      alive.map(
        (c) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    this.closed = true;
    await this.reading;
    await Promise.all([this.client.quit().catch(() => {}), this.reader.quit().catch(() => {})]);
  }
}

/** One stage process's settings (`sll stage`). */
export interface BrokerStageOptions {
  url: string;
  run: string;
  /** 0-based. */
  stage: number;
  stages: number;
  /** The stage's folder: its checkpoint and pid. */
  dir: string;
  /** Continue from the stage's checkpoint (else start from the coordinator's init). */
  resume: boolean;
  /** Checkpoint (and acknowledge) every this many steps, and at every state request. */
  checkpointEvery: number;
  /** Sets tfjs's backend for the stage (its init names one; a stage may override it). */
  setBackend: (init: StageInit) => Promise<void>;
  log: (line: string) => void;
}

/** A stage's checkpoint: which generation of the run, and its snapshot. */
interface StageCheckpoint {
  generation: string;
  snapshot: StageSnapshot;
}

/**
 * Runs stage `o.stage` of run `o.run` until its 'stop' message: waits for the coordinator's init, takes its
 * checkpoint when resuming, then handles its stream, acknowledging what each checkpoint covers.
 */
export async function runBrokerStage(o: BrokerStageOptions): Promise<{ seq: number }> {
  const client = await connectBroker(o.url);
  const reader = await connectBroker(o.url);
  const keys = brokerKeys(o.run);
  try {
    let meta: RunMeta | null = null;
    let told = false;
    for (;;) {
      const raw = (await call(client, ['GET', keys.meta], o.url)) as Buffer | null;
      if (raw) meta = JSON.parse(raw.toString()) as RunMeta;
      if (meta) break;
      if (!told) o.log(`waiting for run "${o.run}" to be started by its coordinator (sll train --broker ${o.url} --run ${o.run})`);
      told = true;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (meta.stages !== o.stages) throw new BrokerError(`run "${o.run}" has ${meta.stages} stages, not ${o.stages} (--of)`);
    const init = decodeMessage<StageInit>((await call(client, ['GET', keys.init(o.stage)], o.url)) as Buffer);
    await o.setBackend(init);
    const stage = Stage.create(init);
    fs.mkdirSync(o.dir, { recursive: true });
    fs.writeFileSync(path.join(o.dir, 'stage.pid'), `${process.pid}\n`);
    const file = path.join(o.dir, 'stage-checkpoint.bin');
    if (o.resume && fs.existsSync(file)) {
      const ckpt = decodeMessage<StageCheckpoint>(fs.readFileSync(file));
      if (ckpt.generation === meta.generation) {
        await stage.restore(ckpt.snapshot);
        o.log(`${stage.name}: resumed from its checkpoint after message ${stage.seq}`);
      } else {
        o.log(`${stage.name}: its checkpoint is of an earlier start of the run; starting from the coordinator's init`);
      }
    } else if (fs.existsSync(file)) {
      fs.rmSync(file);
    }
    const inKey = keys.chain(o.stage);
    const outKey = o.stage + 1 < o.stages ? keys.chain(o.stage + 1) : null;
    try {
      await call(client, ['XGROUP', 'CREATE', inKey, GROUP, '0', 'MKSTREAM'], o.url);
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
    const publish = async (replies: StageReply[]) => {
      for (const r of replies) await call(client, ['XADD', keys.replies, '*', 'm', wire(r)], o.url);
    };
    await publish([{ type: 'ready', stage: o.stage, seq: stage.seq }]);
    const every = Math.max(1, o.checkpointEvery);
    let unacked: string[] = [];
    let steps = 0;
    const checkpoint = async () => {
      const ckpt: StageCheckpoint = { generation: meta!.generation, snapshot: await stage.snapshot() };
      writeFileAtomic(file, encodeMessage(ckpt));
      if (unacked.length > 0) {
        await call(client, ['XACK', inKey, GROUP, ...unacked], o.url);
        await call(client, ['XDEL', inKey, ...unacked], o.url);
      }
      unacked = [];
      steps = 0;
    };
    // First what this consumer read before and did not acknowledge (a restart), then new entries.
    let from = '0';
    for (;;) {
      let got: [string, Buffer | null][];
      try {
        got = entries(await call(reader, ['XREADGROUP', 'GROUP', GROUP, `stage-${o.stage}`, 'COUNT', '16', 'BLOCK', '1000', 'STREAMS', inKey, from], o.url));
      } catch (e) {
        if (/NOGROUP/.test((e as Error).message)) throw new StageError(`${stage.name}: run "${o.run}"'s streams are gone (its coordinator started it again)`);
        throw e;
      }
      // Pending entries are read in pages after the last one seen, then new entries ('>').
      if (from !== '>') from = got.length === 0 ? '>' : got[got.length - 1][0];
      for (const [id, bytes] of got) {
        if (!bytes) {
          unacked.push(id);
          continue;
        }
        const m = decodeMessage<ChainMessage>(bytes);
        // A repeat (read again after a restart, or sent twice) is acknowledged with the rest, not counted.
        const fresh = m.seq > stage.seq;
        let out;
        try {
          out = await stage.handle(m);
        } catch (e) {
          await publish([{ type: 'error', stage: o.stage, who: stage.name, message: (e as Error).message, stack: (e as Error).stack ?? '' }]);
          throw e;
        }
        if (out.forward && outKey) await call(client, ['XADD', outKey, '*', 'm', wire(out.forward)], o.url);
        await publish(out.replies);
        unacked.push(id);
        if (fresh && m.type === 'step') steps++;
        if (steps >= every || (fresh && m.type !== 'step')) await checkpoint();
        if (m.type === 'stop') return { seq: stage.seq };
      }
    }
  } finally {
    await Promise.all([client.quit().catch(() => {}), reader.quit().catch(() => {})]);
  }
}
