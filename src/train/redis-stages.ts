/**
 * The pipeline's stages as processes, anywhere a Redis broker reaches, joined by Redis Streams: the same
 * stage protocol (pipeline-protocol.ts) and Stage (stage.ts) as the worker threads, another transport.
 *
 * Keys of run NAME: `sll:NAME:meta` (the generation and the number of stages), `sll:NAME:init:s` (stage
 * s's init, published by the coordinator), `sll:NAME:chain:s` (the stream stage s reads, through the
 * consumer group `stages`: stage 1's is written by the coordinator, stage s+1's by stage s), and
 * `sll:NAME:replies` (every stage's replies, read by the coordinator); the claims `sll:NAME:coordinator` and
 * `sll:NAME:stage:s` (one process each; a second is refused while the first runs), `sll:NAME:acked:s` (what
 * stage s acknowledged), and `sll:NAME:end` (how the run ended; its other keys are removed then).
 *
 * Durability: a stage acknowledges (and deletes) the messages it read only once its own checkpoint (in its
 * folder) covers them, so a stage killed at any moment and restarted with `--resume` takes its
 * checkpoint, reads again what it had not covered (its pending entries) and recomputes exactly what it
 * computed before; what it sends again is ignored by seq downstream. A broker restart (with persistence
 * on) is the same: the clients reconnect and retry, and repeats are ignored. A broker unreachable or silent
 * for BROKER_PATIENCE_MS fails the process, and stages stop when their coordinator ends or is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createClient, RESP_TYPES } from 'redis';
import { decodeMessage, encodeMessage } from '../io/message-codec.js';
import { writeFileAtomic } from '../io/model-files.js';
import { processAlive } from '../io/run-folder.js';
import { StageError, type StageTransport } from './pipeline.js';
import { stageName, type ChainMessage, type StageInit, type StageReply } from './pipeline-protocol.js';
import { Stage, type StageSnapshot } from './stage.js';

/** A broker that cannot be used: a malformed URL, nothing answering there, or a run or stage already taken (a user error). */
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
    /** The coordinator's claim on the run (a Claim): present while it runs. */
    coordinator: `${base}:coordinator`,
    /** Stage s's process's claim (a Claim): one process per stage. */
    stage: (s: number) => `${base}:stage:${s}`,
    /** The last message stage s acknowledged: what its checkpoint must cover when it starts again. */
    acked: (s: number) => `${base}:acked:${s}`,
    /** How the run ended (a RunEnd), kept a week after its other keys are removed. */
    end: `${base}:end`,
    all: `${base}:*`,
  };
}

/** What the coordinator publishes beside the inits: which generation of the run, and its stages. */
interface RunMeta {
  generation: string;
  stages: number;
}

/** How a run ended, for stages that outlive their coordinator or start after it. */
interface RunEnd {
  /** 'ended': stopped by its coordinator, finished or interrupted; 'failed': `message` says why. */
  status: 'ended' | 'failed';
  at: string;
  message?: string;
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

/** `url` without its password (what logs and recorded options show). */
export function redactBrokerUrl(url: string): string {
  return withPassword(url, (given) => (given ? '***' : null));
}

/**
 * `url` with the password of `env.SLL_BROKER_PASSWORD` when it gives none (or `***`, as runs record it):
 * a password in the environment stays out of process lists and shell histories.
 */
export function brokerUrlWithPassword(url: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  const password = env.SLL_BROKER_PASSWORD;
  return withPassword(url, (given) => (password && (!given || given === '***') ? password : null));
}

/** `url` with the password `change(its password)` gives (null: `url` unchanged; also when it is no URL). */
function withPassword(url: string, change: (given: string) => string | null): string {
  try {
    const parsed = new URL(url);
    const password = change(parsed.password);
    if (password === null) return url;
    parsed.password = password;
    // URL adds a '/' after the host: keep the URL as given.
    return parsed.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
  } catch {
    return url;
  }
}

/** How a broker's password is given. */
const PASSWORD_HINT = ' (give its password in the URL, redis://:PASSWORD@HOST:PORT, or in SLL_BROKER_PASSWORD)';

/** How long a lost or silent broker is waited for (reconnecting and retrying) before the process gives up. */
export const BROKER_PATIENCE_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Redis error reply (e.g. NOGROUP), as opposed to a lost connection or a broker not ready yet. */
function isReplyError(e: unknown): boolean {
  const name = (e as Error)?.constructor?.name ?? '';
  // LOADING: a restarted broker reading its persisted data; BUSY/TRYAGAIN/MASTERDOWN: also transient.
  if (/^(LOADING|BUSY|TRYAGAIN|MASTERDOWN)\b/.test((e as Error)?.message ?? '')) return false;
  return name === 'SimpleError' || name === 'BlobError' || name === 'ErrorReply';
}

/** A command the broker took and did not answer in time (a stuck connection, or not a Redis server). */
class NoAnswer extends Error {
  override message = 'no answer';
}

/**
 * One connection to the broker. Commands are never queued while it is down (node-redis's offline queue
 * would hold them forever): each one retries, reconnecting, and fails with a StageError once the broker
 * has been unreachable or silent for `patienceMs`. A connection whose command goes unanswered is replaced.
 */
export class BrokerLink {
  private client: Client | null = null;
  private connecting: Promise<Client> | null = null;
  private lostSince: number | null = null;
  private lastError = '';
  /** The last socket error (e.g. connection refused while reconnecting): what "offline" means. */
  private socketError = '';
  private closed = false;
  /** The broker's URL, its password shown as *** (for messages). */
  readonly shownUrl: string;

  private constructor(
    private readonly url: string,
    private readonly patienceMs: number,
  ) {
    this.shownUrl = redactBrokerUrl(url);
  }

  /** A connected link: the first connection must succeed (else BrokerError); a lost one is retried. */
  static async open(url: string, patienceMs = BROKER_PATIENCE_MS): Promise<BrokerLink> {
    checkBrokerUrl(url);
    const link = new BrokerLink(url, patienceMs);
    try {
      link.client = await link.connect();
    } catch (e) {
      const cause = (e as Error).message || (e as { code?: string }).code || String(e);
      if (/NOAUTH|WRONGPASS|AUTH/.test(cause)) throw new BrokerError(`the broker at ${link.shownUrl} refused the password: ${cause}${PASSWORD_HINT}`);
      throw new BrokerError(`cannot reach the broker at ${link.shownUrl}: ${cause}`);
    }
    return link;
  }

  /**
   * A new connection, failing at once if the broker cannot be reached. node-redis never reconnects it
   * (its reconnection could open a socket after the client was destroyed, keeping the process alive):
   * a connection that drops is replaced by call.
   */
  private async connect(): Promise<Client> {
    const client = createClient({
      url: this.url,
      // No CLIENT SETINFO at each (re)connect: a broker still loading its data answers it with LOADING,
      // which would fail the reconnection; our own commands retry that instead.
      disableClientInfo: true,
      // A command sent while the connection is down fails at once (and is retried by call) instead of
      // waiting in a queue with no deadline.
      disableOfflineQueue: true,
      socket: { connectTimeout: 5000, reconnectStrategy: false },
    });
    // Each command reports its own failure (retried in call); the socket's errors say why it is offline.
    client.on('error', (e: Error & { code?: string }) => (this.socketError = e.code || e.message));
    try {
      await client.connect();
    } catch (e) {
      destroy(client);
      throw e;
    }
    return client;
  }

  /** The current connection, or a new one (one at a time). */
  private async current(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= this.connect().finally(() => (this.connecting = null));
    const client = await this.connecting;
    if (this.closed) {
      destroy(client);
      throw new StageError(`the link to the broker at ${this.shownUrl} was closed`);
    }
    this.client = client;
    return client;
  }

  /**
   * `args` sent to the broker, retried while it is unreachable or silent, at most `patienceMs` (default:
   * the link's); `blockMs` is how long the command itself may block (XREAD BLOCK). A Redis error reply is
   * thrown as it is.
   */
  async call(args: (string | Buffer)[], { blockMs = 0, patienceMs = this.patienceMs } = {}): Promise<Reply> {
    const deadline = Date.now() + patienceMs;
    for (;;) {
      if (this.closed) throw new StageError(`the link to the broker at ${this.shownUrl} was closed`);
      let client: Client | null = null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        client = await this.current();
        const silence = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new NoAnswer()), Math.max(1000, deadline - Date.now()) + blockMs)));
        const reply = await Promise.race([client.sendCommand(args, BUFFERS), silence]);
        this.lostSince = null;
        return reply;
      } catch (e) {
        if (isReplyError(e)) {
          this.lostSince = null;
          throw e;
        }
        this.lostSince ??= Date.now();
        const offline = (e as Error)?.constructor?.name === 'ClientOfflineError';
        this.lastError = offline && this.socketError ? this.socketError : (e as Error).message || (e as Error)?.constructor?.name || String(e);
        // A connection that dropped, or took a command and stays silent, is replaced at the next try.
        if (client && this.client === client && (e instanceof NoAnswer || !client.isOpen)) {
          this.client = null;
          destroy(client);
        }
        if (this.closed) throw new StageError(`the link to the broker at ${this.shownUrl} was closed`);
        if (Date.now() >= deadline) throw new StageError(`lost the broker at ${this.shownUrl} for ${Math.round(patienceMs / 1000)} s (${this.lastError})`);
        await sleep(200);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Why nothing arrives through this link (the broker unreachable or silent, and since when), or null. */
  unreachable(): string | null {
    if (this.lostSince === null) return null;
    return `lost the broker at ${this.shownUrl} ${Math.round((Date.now() - this.lostSince) / 1000)} s ago (${this.lastError})`;
  }

  /** Ends the link: politely when the broker answers, else (or when `abrupt`) by closing the socket. */
  async close(abrupt = false): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (!abrupt && this.lostSince === null) {
      const quit = client.quit().then(
        () => true,
        () => false,
      );
      if (await Promise.race([quit, sleep(2000).then(() => false)])) return;
    }
    destroy(client);
  }
}

/** Closes `client`'s socket at once (whatever state it is in). */
function destroy(client: Client): void {
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/** Who holds a claim: a process on a host, since when. */
interface ClaimHolder {
  token: string;
  host: string;
  pid: number;
  since: string;
}

// Renews the claim if it is still ours (1), takes it again if it lapsed meanwhile (2), else 0.
const RENEW = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * A claim on a key of the broker: held by one process, renewed while it runs, lapsing `ttlMs` after it
 * stopped renewing (a killed process). Two coordinators of one run, or two processes of one stage, would
 * each destroy the other's work: the second is refused while the first renews its claim.
 */
export class Claim {
  private timer: ReturnType<typeof setInterval> | null = null;
  private renewing = false;

  private constructor(
    private readonly link: BrokerLink,
    private readonly key: string,
    private readonly value: string,
    /** How long the claim outlives its last renewal (a stage raises it to outlast its slowest step). */
    public ttlMs: number,
  ) {}

  /**
   * Takes `key` for this process. If another holds it, waits while that claim runs down (its process may
   * be gone) and takes it when it lapses; a claim renewed meanwhile (a live process) is a BrokerError
   * naming its holder, `what` it holds, and `advice`.
   */
  static async take(link: BrokerLink, key: string, ttlMs: number, what: string, advice: string, log: (line: string) => void): Promise<Claim> {
    const holder: ClaimHolder = { token: randomUUID(), host: os.hostname(), pid: process.pid, since: new Date().toISOString() };
    const value = JSON.stringify(holder);
    let last = Infinity;
    let told = false;
    for (;;) {
      if ((await link.call(['SET', key, value, 'NX', 'PX', String(ttlMs)])) != null) return new Claim(link, key, value, ttlMs);
      const raw = (await link.call(['GET', key])) as Buffer | null;
      const left = Number(await link.call(['PTTL', key]));
      if (raw == null || left === -2) continue; // gone meanwhile: try again
      if (left < 0) throw new BrokerError(`${what} is taken by a key without expiry (${key}), not an sll claim: remove it`);
      const other = JSON.parse(raw.toString()) as ClaimHolder;
      const who = `process ${other.pid} on ${other.host} (since ${other.since})`;
      // A holder on this host that is gone (killed) need not lapse first: its claim is removed now.
      if (other.host === holder.host && !processAlive(other.pid)) {
        log(`${what} was claimed by ${who}, which is gone; taking it over`);
        await link.call(['EVAL', RELEASE, '1', key, raw.toString()]);
        continue;
      }
      if (left > last) throw new BrokerError(`${what} is taken by ${who}, which is still running: ${advice}`);
      if (!told) log(`${what} is claimed by ${who}; waiting up to ${Math.ceil(left / 1000)} s to see whether that process is still running`);
      told = true;
      last = left;
      await sleep(Math.min(500, left + 10));
    }
  }

  /**
   * Renews the claim every `everyMs`; `onLost` is told if another process took it meanwhile, or of the
   * error `check` (run after each renewal) finds.
   */
  keep(everyMs: number, onLost: (e: Error) => void, check: () => Promise<Error | null> = async () => null): void {
    this.timer = setInterval(() => {
      if (this.renewing) return;
      this.renewing = true;
      this.renew()
        .then(async (held) => {
          const lost = held ? await check() : new StageError(`another process took ${this.key} on the broker at ${this.link.shownUrl}`);
          if (lost && this.timer) onLost(lost);
        })
        .catch(() => {}) // a lost broker is told by the commands that need it
        .finally(() => (this.renewing = false));
    }, everyMs);
    this.timer.unref();
  }

  /** Renews the claim now; false if another process holds it. */
  async renew(): Promise<boolean> {
    return Number(await this.link.call(['EVAL', RENEW, '1', this.key, this.value, String(Math.round(this.ttlMs))])) !== 0;
  }

  /** Stops renewing (the claim lapses unless removed). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stops renewing and removes the claim if it is still this process's. */
  async release(patienceMs?: number): Promise<void> {
    this.stop();
    await this.link.call(['EVAL', RELEASE, '1', this.key, this.value], { patienceMs });
  }
}

/** How long a coordinator's claim on its run outlives its last renewal (renewed 5 times as often). */
export const COORDINATOR_CLAIM_MS = 20_000;
/** The least a stage process's claim outlives its last renewal (3 times its slowest step if longer). */
export const STAGE_CLAIM_MS = 10_000;

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

/** Every key of run `run` removed but those in `keep`. */
async function clearRun(link: BrokerLink, run: string, keep: string[] = [], patienceMs?: number): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = (await link.call(['SCAN', cursor, 'MATCH', brokerKeys(run).all, 'COUNT', '1000'], { patienceMs })) as [Buffer, Buffer[]];
    cursor = next.toString();
    const doomed = keys.map(String).filter((k) => !keep.includes(k));
    if (doomed.length > 0) await link.call(['DEL', ...doomed], { patienceMs });
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

/** How a RedisTransport runs its stages and waits for its broker. */
export interface RedisTransportOptions {
  /** Start the stages here as child processes (null, the default: they are started by hand, `sll stage`). */
  local?: LocalStages | null;
  /** Told of a wait for an earlier coordinator's claim on the run to lapse. */
  log?: (line: string) => void;
  /** How long a lost or silent broker is waited for before the run fails (default BROKER_PATIENCE_MS). */
  patienceMs?: number;
}

/** How long the mark of a run's end stays on the broker (for stages started or left behind after it). */
const END_KEPT_MS = 7 * 24 * 3600 * 1000;

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
    private readonly link: BrokerLink,
    private readonly reader: BrokerLink,
    private readonly claim: Claim,
    private readonly inits: StageInit[],
    private readonly local: LocalStages | null,
  ) {
    this.restarts = inits.map(() => 0);
  }

  /**
   * Claims run `run` on the broker (refused while another coordinator runs it), publishes a fresh
   * generation of it (its old keys removed) with the stages' inits, then starts the stages as local
   * processes when `options.local` is given (else they are started by hand, `sll stage`).
   */
  static async open(url: string, run: string, inits: StageInit[], options: RedisTransportOptions = {}): Promise<RedisTransport> {
    const { local = null, log = () => {}, patienceMs = BROKER_PATIENCE_MS } = options;
    const link = await BrokerLink.open(url, patienceMs);
    let reader: BrokerLink | null = null;
    let claim: Claim | null = null;
    try {
      reader = await BrokerLink.open(url, patienceMs);
      const keys = brokerKeys(run);
      claim = await Claim.take(link, keys.coordinator, COORDINATOR_CLAIM_MS, `run "${run}" on the broker at ${link.shownUrl}`, 'give this run another --run name, or stop that coordinator first', log);
      await clearRun(link, run, [keys.coordinator]);
      for (const [s, init] of inits.entries()) {
        await link.call(['SET', keys.init(s), wire(init)]);
        await link.call(['XGROUP', 'CREATE', keys.chain(s), GROUP, '0', 'MKSTREAM']);
      }
      const meta: RunMeta = { generation: randomUUID(), stages: inits.length };
      await link.call(['SET', keys.meta, JSON.stringify(meta)]);
      const transport = new RedisTransport(url, run, link, reader, claim, inits, local);
      // A broker restarted without persistence comes back empty: the run cannot go on.
      const keysKept = async () =>
        (await link.call(['EXISTS', keys.meta])) === 1
          ? null
          : new StageError(`run "${run}"'s keys are gone from the broker at ${link.shownUrl} (restarted without persistence? start it with --appendonly yes); resume the run with sll train --resume`);
      claim.keep(COORDINATOR_CLAIM_MS / 5, (e) => transport.failure?.(e), keysKept);
      if (local) inits.forEach((_, s) => transport.spawnStage(s, false));
      return transport;
    } catch (e) {
      // Open sockets would keep the process alive after the error.
      await claim?.release(2000).catch(() => {});
      await Promise.all([link.close(true), reader?.close(true)]);
      if (e instanceof BrokerError) throw e;
      if (e instanceof StageError) throw new BrokerError(`${e.message}: is a Redis server listening there?`);
      const message = (e as Error).message;
      throw new BrokerError(`the broker at ${link.shownUrl} refused the run: ${message}${/NOAUTH|WRONGPASS/.test(message) ? PASSWORD_HINT : ''}`);
    }
  }

  private spawnStage(s: number, resume: boolean): void {
    const local = this.local!;
    // The password goes in the environment, not on the command line (which any local user can list).
    const password = new URL(this.url).password;
    const args = [local.cli, 'stage', '--broker', redactBrokerUrl(this.url), '--run', this.run, '--stage', String(s + 1), '--of', String(this.inits.length), '--out', local.dir(s)];
    if (resume) args.push('--resume');
    if (local.checkpointEvery) args.push('--checkpoint-every', String(local.checkpointEvery));
    const env = { ...process.env, SLL_STAGE_PARENT: String(process.pid), ...(password && { SLL_BROKER_PASSWORD: decodeURIComponent(password) }) };
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    this.children[s] = child;
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (tail + d.toString()).split(/\r|\n/);
      tail = lines.pop()!;
      for (const line of lines) if (line.trim()) local.log(`[stage ${s + 1}] ${line.replace(/^sll: /, '')}`);
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
      // The process is gone: its claim on the stage need not lapse before the new one takes it.
      this.link
        .call(['DEL', brokerKeys(this.run).stage(s)])
        .catch(() => {})
        .then(() => this.closing || this.spawnStage(s, true));
    });
  }

  async send(m: ChainMessage): Promise<void> {
    const bytes = wire(m);
    this.bytesSent += bytes.length;
    await this.link.call(['XADD', brokerKeys(this.run).chain(0), '*', 'm', bytes]);
  }

  listen(onReply: (r: StageReply) => void, onFailure: (e: Error) => void): void {
    this.failure = onFailure;
    const key = brokerKeys(this.run).replies;
    this.reading = (async () => {
      let last = '0';
      while (!this.closed) {
        try {
          const got = entries(await this.reader.call(['XREAD', 'COUNT', '64', 'BLOCK', '500', 'STREAMS', key, last], { blockMs: 500 }));
          for (const [id, bytes] of got) {
            last = id;
            if (bytes) onReply(decodeMessage<StageReply>(bytes));
          }
          if (got.length > 0) await this.reader.call(['XDEL', key, ...got.map(([id]) => id)]);
        } catch (e) {
          if (!this.closed) onFailure(e as Error);
          return;
        }
      }
    })();
  }

  /** {@inheritDoc StageTransport.unreachable} */
  unreachable(): string | null {
    return this.reader.unreachable() ?? this.link.unreachable();
  }

  /**
   * Ends the run on the broker. After a normal end ('stop' sent) it waits for the stages to take the stop
   * (local stages: to exit, killed after `graceMs`; remote ones: to acknowledge it, at most 30 s); after a
   * failure local stages are stopped at once. Then the run's keys are removed, leaving only the mark of how
   * it ended (which stages still running, or started later, read), and the links close.
   */
  async close(failure: Error | null = null, graceMs = 10_000): Promise<void> {
    this.closing = true;
    const alive = this.children.filter((c): c is ChildProcess => c != null);
    if (failure) alive.forEach((c) => c.kill('SIGTERM'));
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
    const keys = brokerKeys(this.run);
    if (!failure) {
      // Each stage empties its stream once its checkpoint covers the stop.
      const deadline = Date.now() + 30_000;
      try {
        while (Date.now() < deadline) {
          const lengths = await Promise.all(this.inits.map((_, s) => this.link.call(['XLEN', keys.chain(s)], { patienceMs: 5000 })));
          if (lengths.every((n) => Number(n) === 0)) break;
          await sleep(200);
        }
      } catch {
        // the broker is gone: nothing to wait for
      }
    }
    this.closed = true;
    await this.reader.close(true); // it may be blocked in XREAD
    await this.reading;
    this.claim.stop();
    const patienceMs = failure ? 2000 : 10_000;
    try {
      const end: RunEnd = failure ? { status: 'failed', at: new Date().toISOString(), message: failure.message } : { status: 'ended', at: new Date().toISOString() };
      await this.link.call(['SET', keys.end, JSON.stringify(end), 'PX', String(END_KEPT_MS)], { patienceMs });
      await clearRun(this.link, this.run, [keys.end], patienceMs);
    } catch {
      // the broker is gone: the claim lapses, the keys stay until the run is started again
    }
    await this.link.close();
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
  /** Told what the stage waits for, resumes from, and why it stops. */
  log: (line: string) => void;
}

/** A stage's checkpoint: which generation of the run, and its snapshot. */
interface StageCheckpoint {
  generation: string;
  /** Whose checkpoint it is (absent in checkpoints of older versions). */
  run?: string;
  stage?: number;
  snapshot: StageSnapshot;
}

/** Claims folder `dir` for this stage process: refused while another live process of this host holds it. */
function claimStageFolder(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const pidFile = path.join(dir, 'stage.pid');
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : 0;
  if (pid > 0 && pid !== process.pid && processAlive(pid)) {
    throw new BrokerError(`--out ${dir} is in use by process ${pid} (another stage?): give each stage a folder of its own`);
  }
  fs.writeFileSync(pidFile, `${process.pid}\n`);
  return pidFile;
}

/**
 * Runs stage `o.stage` of run `o.run` until its 'stop' message: waits for the coordinator to publish the
 * run, claims the stage (one process per stage), takes its checkpoint when resuming, then handles its
 * stream, acknowledging what each checkpoint covers. A stage that must resume and cannot (no --resume, or
 * no checkpoint covering what it acknowledged) is a BrokerError; it stops when its coordinator is gone.
 */
export async function runBrokerStage(o: BrokerStageOptions): Promise<{ seq: number }> {
  const pidFile = claimStageFolder(o.dir);
  let link: BrokerLink;
  try {
    link = await BrokerLink.open(o.url);
  } catch (e) {
    fs.rmSync(pidFile, { force: true });
    throw e;
  }
  let reader: BrokerLink | null = null;
  let claim: Claim | null = null;
  const keys = brokerKeys(o.run);
  const runName = `run "${o.run}"`;
  const json = async <T>(key: string): Promise<T | null> => {
    const raw = (await link.call(['GET', key])) as Buffer | null;
    return raw ? (JSON.parse(raw.toString()) as T) : null;
  };
  const ended = (end: RunEnd) =>
    `${runName} ${end.status === 'failed' ? `failed in its coordinator (${end.message})` : 'ended'} at ${end.at}`;
  try {
    reader = await BrokerLink.open(o.url);
    let meta: RunMeta | null = null;
    let told = false;
    for (;;) {
      try {
        meta = await json<RunMeta>(keys.meta);
      } catch (e) {
        // Before the stage runs, a broker that does not answer is a wrong --broker.
        if (e instanceof StageError) throw new BrokerError(`${e.message}: is a Redis server listening there?`);
        if (/NOAUTH|WRONGPASS/.test((e as Error).message)) throw new BrokerError(`the broker at ${link.shownUrl} refused the stage: ${(e as Error).message}${PASSWORD_HINT}`);
        throw e;
      }
      if (meta) break;
      const end = await json<RunEnd>(keys.end);
      if (end) throw new BrokerError(`${ended(end)}: start its stages while its coordinator runs (a new run of that name: start its coordinator first, or give it another --run)`);
      if (!told) o.log(`waiting for ${runName} to be started by its coordinator (sll train --broker ${link.shownUrl} --run ${o.run})`);
      told = true;
      await sleep(500);
    }
    if (meta.stages !== o.stages) throw new BrokerError(`${runName} has ${meta.stages} stages, not ${o.stages} (--of)`);
    claim = await Claim.take(link, keys.stage(o.stage), STAGE_CLAIM_MS, `stage ${o.stage + 1} of ${runName}`, 'each stage runs in one process: give another --stage, or stop that process first', o.log);
    let taken: Error | null = null;
    claim.keep(STAGE_CLAIM_MS / 5, (e) => (taken = e));
    const init = decodeMessage<StageInit>((await link.call(['GET', keys.init(o.stage)])) as Buffer);
    await o.setBackend(init);
    const stage = Stage.create(init);
    const file = path.join(o.dir, 'stage-checkpoint.bin');
    // What an earlier process of this stage acknowledged is gone from the stream: only its checkpoint has it.
    const acked = Number(((await link.call(['GET', keys.acked(o.stage)])) as Buffer | null)?.toString() ?? 0);
    let why = '';
    if (!o.resume) {
      if (acked > 0) why = `start it again with --resume and the --out folder of that process (this one's: ${o.dir})`;
      else if (fs.existsSync(file)) fs.rmSync(file);
    } else if (!fs.existsSync(file)) {
      if (acked > 0) why = `--resume found no checkpoint at ${file}: give --out the folder of that process`;
    } else {
      const ckpt = decodeMessage<StageCheckpoint>(fs.readFileSync(file));
      if (ckpt.stage !== undefined && (ckpt.stage !== o.stage || ckpt.run !== o.run)) {
        throw new BrokerError(`${stage.name} of ${runName}: --resume found the checkpoint of stage ${ckpt.stage + 1} of run "${ckpt.run}" at ${file}: give --out this stage's own folder`);
      }
      if (ckpt.generation !== meta.generation) {
        if (acked > 0) why = `the checkpoint at ${file} is of an earlier start of the run: give --out the folder of that process`;
        else o.log(`${stage.name}: its checkpoint is of an earlier start of the run; starting from the coordinator's init`);
      } else if (ckpt.snapshot.seq < acked) {
        why = `the checkpoint at ${file} covers messages up to ${ckpt.snapshot.seq} only`;
      } else {
        await stage.restore(ckpt.snapshot);
        o.log(`${stage.name}: resumed from its checkpoint after message ${stage.seq}`);
      }
    }
    if (why) throw new BrokerError(`${stage.name} of ${runName} has handled messages up to ${acked} in an earlier process, and only that process's checkpoint holds them: ${why}`);
    const inKey = keys.chain(o.stage);
    const outKey = o.stage + 1 < o.stages ? keys.chain(o.stage + 1) : null;
    try {
      await link.call(['XGROUP', 'CREATE', inKey, GROUP, '0', 'MKSTREAM']);
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
    const publish = async (replies: StageReply[]) => {
      for (const r of replies) await link.call(['XADD', keys.replies, '*', 'm', wire(r)]);
    };
    await publish([{ type: 'ready', stage: o.stage, seq: stage.seq }]);
    const every = Math.max(1, o.checkpointEvery);
    let unacked: string[] = [];
    let steps = 0;
    const checkpoint = async () => {
      const ckpt: StageCheckpoint = { generation: meta!.generation, run: o.run, stage: o.stage, snapshot: await stage.snapshot() };
      writeFileAtomic(file, encodeMessage(ckpt));
      if (unacked.length > 0) {
        await link.call(['SET', keys.acked(o.stage), String(stage.seq)]);
        await link.call(['XACK', inKey, GROUP, ...unacked]);
        await link.call(['XDEL', inKey, ...unacked]);
      }
      unacked = [];
      steps = 0;
    };
    // Whether the run goes on (null), and else why not: its coordinator died (its claim lapsed), started
    // it again, ended it ('ended': this stage ends normally) or failed, or the broker lost its keys.
    const runGone = async (): Promise<Error | 'ended' | null> => {
      const now = await json<RunMeta>(keys.meta);
      if (now?.generation === meta!.generation) {
        // The claim lapses when its holder stopped renewing it; on this host a dead holder is seen at once.
        const holder = await json<ClaimHolder>(keys.coordinator);
        if (holder && !(holder.host === os.hostname() && !processAlive(holder.pid))) return null;
        return new StageError(`${stage.name}: ${runName}'s coordinator is gone (${holder ? `process ${holder.pid} ended` : 'its claim on the broker lapsed'}); stopping (start it again when the run is resumed)`);
      }
      if (now) return new StageError(`${stage.name}: ${runName} was started again by its coordinator; start this stage again`);
      const end = await json<RunEnd>(keys.end);
      if (end?.status === 'ended') return 'ended';
      if (end) return new StageError(`${stage.name}: ${ended(end)}; stopping (start it again when the run is resumed)`);
      return new StageError(`${stage.name}: ${runName}'s keys are gone from the broker at ${link.shownUrl} (restarted without persistence? start it with --appendonly yes); stopping`);
    };
    let slowest = 0;
    let watched = Date.now();
    // First what this consumer read before and did not acknowledge (a restart), then new entries.
    let from = '0';
    for (;;) {
      if (taken) throw taken;
      if (Date.now() - watched > 2000) {
        watched = Date.now();
        const gone = await runGone();
        if (gone === 'ended') {
          o.log(`${stage.name}: ${runName} ended`);
          return { seq: stage.seq };
        }
        if (gone) throw gone;
      }
      let got: [string, Buffer | null][];
      try {
        got = entries(await reader.call(['XREADGROUP', 'GROUP', GROUP, `stage-${o.stage}`, 'COUNT', '16', 'BLOCK', '1000', 'STREAMS', inKey, from], { blockMs: 1000 }));
      } catch (e) {
        // Redis 7 answers a blocked read whose stream was deleted with UNBLOCKED, a new read with NOGROUP.
        if (!/NOGROUP|UNBLOCKED/.test((e as Error).message)) throw e;
        const gone = await runGone();
        if (gone === 'ended') return { seq: stage.seq };
        throw gone ?? new StageError(`${stage.name}: ${runName}'s streams are gone from the broker`);
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
        const t0 = Date.now();
        try {
          out = await stage.handle(m);
        } catch (e) {
          await publish([{ type: 'error', stage: o.stage, who: stage.name, message: (e as Error).message, stack: (e as Error).stack ?? '' }]);
          throw e;
        }
        // The claim must outlast the slowest step (no renewal runs during one).
        slowest = Math.max(slowest, Date.now() - t0);
        claim.ttlMs = Math.max(STAGE_CLAIM_MS, 3 * slowest);
        if (out.forward && outKey) await link.call(['XADD', outKey, '*', 'm', wire(out.forward)]);
        await publish(out.replies);
        unacked.push(id);
        if (fresh && m.type === 'step') steps++;
        if (steps >= every || (fresh && m.type !== 'step')) await checkpoint();
        if (m.type === 'stop') return { seq: stage.seq };
      }
    }
  } finally {
    await claim?.release(2000).catch(() => {});
    await Promise.all([link.close(), reader?.close(true)]);
    fs.rmSync(pidFile, { force: true });
  }
}
