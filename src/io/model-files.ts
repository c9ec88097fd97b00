/**
 * A trained model on disk (Node): DIR/model.json + weights.bin (the predictor, which `tf.loadLayersModel`
 * reads in Node and in a browser), sll.json and heads.bin (see artifacts.ts). Also tfjs's `file://` scheme
 * for Node, which the pure-JS tfjs lacks: `tf.loadLayersModel('file://DIR/model.json')` and
 * `model.save('file://DIR')` work once `registerFileSystem()` has run (importing `sll/node` runs it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelFileError, fromArtifacts, toArtifacts } from './artifacts.js';
import { WEIGHTS_FILE, artifactsFromModelFiles, layersModelFiles, layersModelFromFiles, modelFiles, type ModelFileReader } from './model-layout.js';
import { requireHeaded, type HeadedNetwork } from '../train/model.js';

/** Writes `model` into `dir`: model.json + weights.bin (the predictor), sll.json + heads.bin, each atomically. */
export async function saveModel(dir: string, model: HeadedNetwork): Promise<void> {
  requireHeaded(model, 'saveModel');
  fs.mkdirSync(dir, { recursive: true });
  const files = modelFiles(await toArtifacts(model));
  // model.json last: a folder with a model.json holds a whole model.
  for (const [name, bytes] of [...files].sort(([a], [b]) => Number(a === 'model.json') - Number(b === 'model.json'))) {
    writeFileAtomic(path.join(dir, name), bytes);
  }
}

/** The model saveModel wrote into `dir`: network, every head, the normalisation. */
export async function loadModel(dir: string): Promise<HeadedNetwork> {
  const artifacts = artifactsFromModelFiles(folderReader(dir));
  try {
    return await fromArtifacts(artifacts);
  } catch (e) {
    if (e instanceof ModelFileError) throw new ModelFileError(`${dir}: ${e.message}`);
    throw e;
  }
}

/** DIR/model.json (and its weights) as tfjs model artifacts. */
export function readLayersModel(dir: string, file = 'model.json'): tf.io.ModelArtifacts {
  return layersModelFromFiles(folderReader(dir), file);
}

/** Writes tfjs model artifacts as DIR/model.json + DIR/weights.bin, each atomically. */
export function writeLayersModel(dir: string, artifacts: tf.io.ModelArtifacts): void {
  fs.mkdirSync(dir, { recursive: true });
  const { modelJson, weights } = layersModelFiles(artifacts);
  writeFileAtomic(path.join(dir, WEIGHTS_FILE), weights);
  writeFileAtomic(path.join(dir, 'model.json'), modelJson);
}

type IORouter = Parameters<typeof tf.io.registerSaveRouter>[0];

let registered = false;

/**
 * Registers tfjs's `file://` scheme in Node (what @tensorflow/tfjs-node does, which cannot be installed
 * here): `tf.loadLayersModel('file://DIR/model.json')` reads, `model.save('file://DIR')` writes
 * DIR/model.json and DIR/weights.bin. Idempotent.
 */
export function registerFileSystem(): void {
  if (registered) return;
  registered = true;
  const prefix = 'file://';
  const target = (url: string | string[]) => (typeof url === 'string' && url.startsWith(prefix) ? url.slice(prefix.length) : null);
  // tfjs's routers answer null for a URL they do not handle; its type says IOHandler.
  tf.io.registerSaveRouter(((url: string | string[]) => {
    const dir = target(url);
    if (dir === null) return null;
    return {
      save: async (artifacts: tf.io.ModelArtifacts) => {
        const folder = dir.endsWith('.json') ? path.dirname(dir) : dir;
        writeLayersModel(folder, artifacts);
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      },
    };
  }) as unknown as IORouter);
  tf.io.registerLoadRouter(((url: string | string[]) => {
    const file = target(url);
    if (file === null) return null;
    return {
      load: async () => {
        const isJson = file.endsWith('.json');
        return readLayersModel(isJson ? path.dirname(file) : file, isJson ? path.basename(file) : 'model.json');
      },
    };
  }) as unknown as IORouter);
}

/**
 * A file or folder could not be written (disk full, no permission, read-only file system...): names the
 * path and the cause in one line. What was being written is removed; files written before are untouched.
 */
export class WriteError extends Error {
  override name = 'WriteError';
  /** The system error code, e.g. ENOSPC. */
  readonly code: string | undefined;
  constructor(
    /** The path that could not be written. */
    readonly path: string,
    cause: NodeJS.ErrnoException,
  ) {
    super(`cannot write ${path}: ${describe(cause)}`);
    this.code = cause.code;
  }
}

function describe(e: NodeJS.ErrnoException): string {
  if (e.code === 'ENOSPC') return 'no space left on the device (ENOSPC)';
  if (e.code === 'EDQUOT') return 'disk quota exceeded (EDQUOT)';
  if (e.code === 'EACCES' || e.code === 'EPERM') return `permission denied (${e.code})`;
  if (e.code === 'EROFS') return 'read-only file system (EROFS)';
  return e.code ? `${e.code} (${e.message.replace(/^\w+: /, '').split(',')[0]})` : e.message;
}

/**
 * Write to a temporary file and rename, so a crash never leaves a half-written file under the real name.
 * A failure removes the temporary file and throws WriteError.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new WriteError(file, e as NodeJS.ErrnoException);
  }
}

/** Appends `text` to `file`; a failure throws WriteError. */
export function appendFileChecked(file: string, text: string): void {
  try {
    fs.appendFileSync(file, text);
  } catch (e) {
    throw new WriteError(file, e as NodeJS.ErrnoException);
  }
}

/**
 * Why `dir` lacks `name`, a file a finished run writes: the run has not finished (DIR/run.json without
 * DIR/summary.json: stopped or still going), or `dir` is no run folder at all.
 */
export function missingRunFile(dir: string, name: string): string {
  const file = path.join(dir, name);
  if (fs.existsSync(path.join(dir, 'run.json')) && !fs.existsSync(path.join(dir, 'summary.json'))) {
    return `${file} not found: the run in ${dir} has not finished (sll train --resume ${dir} finishes it; ` +
      `each of ${path.join(dir, 'checkpoints')}/step-* holds a model meanwhile)`;
  }
  return `${file} not found: is ${dir} a folder written by sll train?`;
}

/** Reads a model's files from the folder `dir`. */
function folderReader(dir: string): ModelFileReader {
  return {
    read(name) {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) throw new ModelFileError(missingRunFile(dir, name));
      return fs.readFileSync(file);
    },
    describe: (name) => path.join(dir, name),
  };
}
