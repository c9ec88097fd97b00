/**
 * A run's output folder and who owns it. A run holds OUT/.sll-lock (its process id, host and start) for
 * its whole life, so a second run on the same folder is refused while the first lives; a lock left by a
 * process that no longer runs is taken over with a message. OUT/run.json names the run (a random id, the
 * start time, its options): every checkpoint carries that id, so `--resume` continues this run and no
 * other. A new run refuses a folder that holds another run's files unless told to overwrite them.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WriteError, writeFileAtomic } from './model-files.js';

const LOCK = '.sll-lock';
const RUN_FILE = 'run.json';
const RUN_FORMAT = 'sll-run/1';
/** The files and folders sll writes into a run's folder (what --overwrite removes, and nothing else). */
const RUN_ENTRIES = ['run.json', 'summary.json', 'metrics.jsonl', 'checkpoints', 'model.json', 'weights.bin', 'sll.json', 'heads.bin', 'report.html', 'stages'];

/** The folder cannot be used for this run: it is locked by a live run, or holds another run's files. */
export class RunFolderError extends Error {
  override name = 'RunFolderError';
}

/** OUT/run.json: which run the folder holds. */
export interface RunRecord {
  format: string;
  /** A random id; every checkpoint of the run carries it. */
  run_id: string;
  /** ISO time the run started. */
  started: string;
  /** The run's options (as summary.json and checkpoints record them). */
  options: Record<string, unknown>;
}

/** A folder this process owns until `release()`. */
export interface RunFolder {
  dir: string;
  run: RunRecord;
  /**
   * Writes run.json for a new run, when it starts training (so that a run that fails before, on bad data
   * say, leaves no record that would make the folder look taken). Does nothing on resume.
   */
  begin(): void;
  /** Removes the lock (also done when the process exits normally). */
  release(): void;
}

interface LockRecord {
  pid: number;
  host: string;
  started: string;
}

/** How a run takes its folder. */
export interface ClaimOptions {
  /** Continue the run whose run.json is in the folder (its id must match the checkpoints'). */
  resume?: boolean;
  /** A new run that replaces another run's files in the folder. */
  overwrite?: boolean;
  /** The new run's options, recorded in run.json (not used on resume). */
  options?: Record<string, unknown>;
  /** Hears about a stale lock taken over and temporary files removed. */
  warn?(message: string): void;
}

/**
 * Creates `dir` if needed, locks it for this process, and returns the run it holds: a new run (refusing a
 * folder with another run's files unless `overwrite`), or with `resume` the run recorded there. Leftover
 * temporary files of interrupted writes are removed once the lock is held.
 */
export function claimRunFolder(dir: string, opts: ClaimOptions = {}): RunFolder {
  const warn = opts.warn ?? (() => {});
  // Messages name the flag the user gave the folder with.
  const flag = opts.resume ? '--resume' : '--out';
  makeFolder(dir, flag);
  const release = lock(dir, flag, warn);
  try {
    removeTemporaries(dir, warn);
    const recorded = opts.resume ? readRunRecord(dir) ?? legacyRecord() : null;
    const run = recorded ?? newRun(dir, opts);
    const begin = () => {
      if (!recorded) writeFileAtomic(path.join(dir, RUN_FILE), JSON.stringify(run, null, 2) + '\n');
    };
    return { dir, run, begin, release };
  } catch (e) {
    release();
    throw e;
  }
}

/** The run recorded in DIR/run.json, or null for a folder without one (runs of older versions). */
export function readRunRecord(dir: string): RunRecord | null {
  const file = path.join(dir, RUN_FILE);
  if (!fs.existsSync(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RunFolderError(`${file} is not valid JSON (${(e as Error).message})`);
  }
  const r = json as RunRecord | null;
  if (r === null || typeof r !== 'object' || r.format !== RUN_FORMAT || typeof r.run_id !== 'string') {
    throw new RunFolderError(`${file} is not a run record written by sll train`);
  }
  return r;
}

/** A record for a folder of an older version (no run.json): its checkpoints carry no id either. */
function legacyRecord(): RunRecord {
  return { format: RUN_FORMAT, run_id: '', started: '', options: {} };
}

function newRun(dir: string, opts: ClaimOptions): RunRecord {
  // A sweep's folder holds its cells' run folders: a run among them would mix into the sweep's table.
  if (fs.existsSync(path.join(dir, 'sweep.jsonl'))) throw new RunFolderError(`--out ${dir} is a sweep's folder (sweep.jsonl): choose another --out`);
  const present = RUN_ENTRIES.filter((e) => fs.existsSync(path.join(dir, e)));
  if (present.length > 0) {
    if (!opts.overwrite) {
      const other = safeRecord(dir);
      const which = other ? `another run (started ${other.started})` : 'another run\'s files';
      throw new RunFolderError(
        `--out ${dir} holds ${which}: ${present.join(', ')}. Continue it with sll train --resume ${dir}, ` +
          'choose another --out, or add --overwrite to replace it',
      );
    }
    for (const e of present) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  }
  return { format: RUN_FORMAT, run_id: randomUUID(), started: new Date().toISOString(), options: opts.options ?? {} };
}

function safeRecord(dir: string): RunRecord | null {
  try {
    return readRunRecord(dir);
  } catch {
    return null;
  }
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir spins forever under /proc (ENOENT on a path whose
 * parent exists). Every failure is a RunFolderError naming the folder and the cause.
 */
function makeFolder(dir: string, flag: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  try {
    for (const d of missing) fs.mkdirSync(d);
    if (!fs.statSync(dir).isDirectory()) throw new Error('it is a file, not a folder');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new RunFolderError(`${flag} ${dir} cannot be written: ${(e as Error).message}`);
  }
}

/** The lock files this process holds: a lock naming this process's pid that is not among them is stale (a restarted container reuses pids). */
const heldHere = new Set<string>();

/** Takes DIR/.sll-lock for this process (a stale one, of a process that is gone, is taken over). */
function lock(dir: string, flag: string, warn: (message: string) => void): () => void {
  const file = path.resolve(dir, LOCK);
  const mine: LockRecord = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(mine) + '\n', { flag: 'wx' });
      break;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== 'EEXIST') throw new RunFolderError(`${flag} ${dir} cannot be written: ${err.message}`);
      if (attempt > 0) throw new RunFolderError(`${flag} ${dir}: another process took its lock at the same moment`);
    }
    const holder = readLock(file);
    if (holder && holder.host !== mine.host) {
      throw new RunFolderError(
        `${flag} ${dir} is in use by process ${holder.pid} on ${holder.host} (since ${holder.started}); ` +
          `if that run is gone, delete ${file}`,
      );
    }
    const mineBefore = holder?.pid === process.pid && !heldHere.has(file);
    if (holder && !mineBefore && processAlive(holder.pid)) {
      const choose = flag === '--out' ? ' or choose another --out' : '';
      throw new RunFolderError(
        `${flag} ${dir} is in use by a run in process ${holder.pid} (since ${holder.started}); wait for it${choose} ` +
          `(if process ${holder.pid} is no sll run, its pid was reused: delete ${file})`,
      );
    }
    const gone = mineBefore ? 'this process\'s pid before a restart' : 'which is no longer running';
    warn(holder ? `taking over the lock of process ${holder.pid}, ${gone}` : `replacing the unreadable lock file ${file}`);
    fs.rmSync(file, { force: true });
  }
  let held = true;
  heldHere.add(file);
  const release = () => {
    if (!held) return;
    held = false;
    heldHere.delete(file);
    process.off('exit', release);
    const holder = readLock(file);
    if (holder?.pid === process.pid && holder.host === mine.host) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return release;
}

/** Who holds DIR's lock, when that is another process that still lives (or one on another host); else null. */
export function otherLiveHolder(dir: string): { pid: number; host: string; started: string } | null {
  const holder = readLock(path.join(dir, LOCK));
  if (!holder || (holder.pid === process.pid && holder.host === os.hostname())) return null;
  return holder.host !== os.hostname() || processAlive(holder.pid) ? holder : null;
}

/**
 * Runs `fn` holding `file`, a lock for moments rather than a run's life (the sweep's sweep.jsonl): created
 * exclusively, waited for while another holds it, taken over when older than 30 s (its holder died).
 */
export function withFileLock<T>(file: string, fn: () => T): T {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const start = Date.now(); ; ) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 30_000) fs.rmSync(file, { force: true });
      else if (Date.now() - start > 60_000) throw new Error(`${file} has been held for a minute: if no process is using it, delete it`);
      else Atomics.wait(pause, 0, 0, 10);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function readLock(file: string): LockRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as LockRecord;
    return r && typeof r.pid === 'number' && typeof r.host === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** Whether process `pid` of this host runs (this process does; EPERM: it runs as another user). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes what interrupted writes left: checkpoints/.tmp-* folders and *.tmp-<pid> files. */
function removeTemporaries(dir: string, warn: (message: string) => void): void {
  const left: string[] = [];
  const ckpt = path.join(dir, 'checkpoints');
  if (fs.existsSync(ckpt)) left.push(...fs.readdirSync(ckpt).filter((f) => f.startsWith('.tmp-')).map((f) => path.join(ckpt, f)));
  left.push(...fs.readdirSync(dir).filter((f) => /\.tmp-\d+$/.test(f)).map((f) => path.join(dir, f)));
  for (const f of left) {
    try {
      fs.rmSync(f, { recursive: true, force: true });
    } catch (e) {
      throw new WriteError(f, e as NodeJS.ErrnoException);
    }
  }
  if (left.length > 0) warn(`removed ${left.length} temporary file${left.length > 1 ? 's' : ''} of an interrupted write (${left.map((f) => path.basename(f)).join(', ')})`);
}
