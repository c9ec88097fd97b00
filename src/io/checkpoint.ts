/**
 * Checkpoints: OUT/checkpoints/step-NNNNNNNNN/ holds the model files (as saveModel writes them), every
 * optimizer's state (optimizers.bin), and state.json (run options, loop position, metrics so far, and the
 * SHA-256 of every other file plus its own). A checkpoint is written into a temporary folder, each file
 * fsynced, then renamed into place, so a crash leaves either a whole checkpoint or none; a damaged one is
 * detected by its checksums on reading and the previous one is used. The last two are kept. Each carries
 * the id of its run (run-folder.ts), and a failed write (e.g. a full disk) removes its temporary folder
 * and leaves the previous checkpoints as they were.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FitState } from '../train/fit.js';
import type { HeadedNetwork } from '../train/model.js';
import type { OptimizerState } from '../train/optimizers.js';
import { WriteError, saveModel, writeFileAtomic } from './model-files.js';

const FORMAT = 'sll-checkpoint/2';
const KEEP = 2;

interface StateJson {
  format: string;
  step: number;
  /** The run's id (OUT/run.json); '' for runs of older versions. */
  run_id?: string;
  options: Record<string, unknown>;
  state: FitState;
  optimizers: { iterations: number; scalars: Record<string, number>; slots: { name: string; shape: number[] }[] }[];
  files: Record<string, string>;
  checksum: string;
}

/** A verified checkpoint; its model is read by loadModel(dir) once the run's backend is in place. */
export interface Checkpoint {
  dir: string;
  step: number;
  /** The id of the run that wrote it ('' for runs of older versions). */
  runId: string;
  options: Record<string, unknown>;
  state: FitState;
  optimizers: OptimizerState[];
}

/** A checkpoint that is missing or damaged. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** OUT/checkpoints. */
export function checkpointsDir(outDir: string): string {
  return path.join(outDir, 'checkpoints');
}

/**
 * Writes checkpoint `step` of the run `runId` in `outDir` (whole or not at all) and keeps the last two.
 * A write that fails throws WriteError, its temporary folder removed.
 */
export async function writeCheckpoint(
  outDir: string,
  step: number,
  options: Record<string, unknown>,
  state: FitState,
  model: HeadedNetwork,
  optimizers: OptimizerState[],
  runId = '',
): Promise<string> {
  const root = checkpointsDir(outDir);
  const name = `step-${String(step).padStart(9, '0')}`;
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  const final = path.join(root, name);
  try {
    fs.mkdirSync(root, { recursive: true });
    fs.rmSync(tmp, { recursive: true, force: true });
    await saveModel(tmp, model);
    const slots = optimizers.flatMap((o) => o.slots.map((s) => s.values));
    const bin = new Float32Array(slots.reduce((n, v) => n + v.length, 0));
    slots.reduce((offset, v) => (bin.set(v, offset), offset + v.length), 0);
    writeFileAtomic(path.join(tmp, 'optimizers.bin'), new Uint8Array(bin.buffer));
    const files = Object.fromEntries(fs.readdirSync(tmp).map((f) => [f, sha256(fs.readFileSync(path.join(tmp, f)))]));
    const json: Omit<StateJson, 'checksum'> = {
      format: FORMAT,
      step,
      run_id: runId,
      options,
      state,
      optimizers: optimizers.map((o) => ({
        iterations: o.iterations,
        scalars: o.scalars,
        slots: o.slots.map((s) => ({ name: s.name, shape: s.shape })),
      })),
      files,
    };
    const text = JSON.stringify(json);
    writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...json, checksum: sha256(text) }));
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
    fsyncDir(root);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (e instanceof WriteError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string') throw new WriteError(err.path ?? tmp, err);
    throw e;
  }
  for (const old of listCheckpoints(outDir).slice(KEEP)) fs.rmSync(old, { recursive: true, force: true });
  return final;
}

/** Checkpoint folders of a run, newest first (temporary folders of interrupted writes are not listed). */
export function listCheckpoints(outDir: string): string[] {
  const root = checkpointsDir(outDir);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((f) => /^step-\d+$/.test(f))
    .sort()
    .reverse()
    .map((f) => path.join(root, f));
}

/**
 * The newest checkpoint whose checksums hold; `warn` hears about each damaged one skipped. With `runId`
 * (not ''), a checkpoint of another run is refused. Throws CheckpointError when the run has none that is whole.
 */
export function readLatestCheckpoint(outDir: string, warn: (message: string) => void, runId = ''): Checkpoint {
  const all = listCheckpoints(outDir);
  if (all.length === 0) throw new CheckpointError(`no checkpoint in ${checkpointsDir(outDir)}`);
  for (const dir of all) {
    let checkpoint: Checkpoint;
    try {
      checkpoint = readCheckpoint(dir);
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      warn(`checkpoint ${dir} is damaged (${e.message}); trying the previous one`);
      continue;
    }
    if (runId !== '' && checkpoint.runId !== runId) {
      throw new CheckpointError(`checkpoint ${dir} belongs to another run (${checkpoint.runId || 'of an older version'}), not to the run in ${path.join(outDir, 'run.json')} (${runId})`);
    }
    return checkpoint;
  }
  throw new CheckpointError(`every checkpoint in ${checkpointsDir(outDir)} is damaged: start the run again with its options and --out ${outDir} --overwrite`);
}

/** The checkpoint in `dir`, its checksums verified; throws CheckpointError when it is damaged. */
export function readCheckpoint(dir: string): Checkpoint {
  const stateFile = path.join(dir, 'state.json');
  if (!fs.existsSync(stateFile)) throw new CheckpointError('state.json is missing');
  let json: StateJson;
  try {
    json = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as StateJson;
  } catch (e) {
    throw new CheckpointError(`state.json is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new CheckpointError('state.json does not hold a checkpoint\'s record');
  const { checksum, ...rest } = json;
  if (json.format !== FORMAT) throw new CheckpointError(`it has format '${json.format}', this sll reads '${FORMAT}'`);
  if (sha256(JSON.stringify(rest)) !== checksum) {
    throw new CheckpointError('state.json fails its checksum');
  }
  if (typeof json.files !== 'object' || json.files === null || !Array.isArray(json.optimizers)) throw new CheckpointError('state.json lacks its file list or optimizers');
  for (const [file, hash] of Object.entries(json.files)) {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) throw new CheckpointError(`${file} is missing`);
    if (sha256(fs.readFileSync(p)) !== hash) throw new CheckpointError(`${file} fails its checksum`);
  }
  const bytes = fs.readFileSync(path.join(dir, 'optimizers.bin'));
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  let offset = 0;
  const optimizers = json.optimizers.map((o) => ({
    iterations: o.iterations,
    scalars: o.scalars,
    slots: o.slots.map((s) => {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const values = all.slice(offset, offset + n);
      offset += n;
      return { ...s, values };
    }),
  }));
  return { dir, step: json.step, runId: json.run_id ?? '', options: json.options, state: json.state, optimizers };
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
