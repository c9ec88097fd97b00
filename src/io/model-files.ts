/**
 * A trained model on disk (Node): DIR/model.json + weights.bin (the predictor, which `tf.loadLayersModel`
 * reads in Node and in a browser), sll.json and heads.bin (see artifacts.ts). Also tfjs's `file://` scheme
 * for Node, which the pure-JS tfjs lacks: `tf.loadLayersModel('file://DIR/model.json')` and
 * `model.save('file://DIR')` work once `registerFileSystem()` has run (importing `sll/node` runs it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelFileError, fromArtifacts, toArtifacts, type SllJson } from './artifacts.js';
import type { HeadedNetwork } from '../train/model.js';

const WEIGHTS_FILE = 'weights.bin';

/** Writes `model` into `dir`: model.json + weights.bin (the predictor), sll.json + heads.bin. */
export async function saveModel(dir: string, model: HeadedNetwork): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const { predictor, sll, heads } = await toArtifacts(model);
  writeLayersModel(dir, predictor);
  writeFileAtomic(path.join(dir, sll.headsWeights), new Uint8Array(heads.buffer, heads.byteOffset, heads.byteLength));
  writeFileAtomic(path.join(dir, 'sll.json'), JSON.stringify(sll, null, 2));
}

/** The model saveModel wrote into `dir`: network, every head, the normalisation. */
export async function loadModel(dir: string): Promise<HeadedNetwork> {
  const sll = parseJson<SllJson>(readFile(dir, 'sll.json'), path.join(dir, 'sll.json'));
  const predictor = readLayersModel(dir);
  const bytes = readFile(dir, sll.headsWeights);
  const heads = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  try {
    return await fromArtifacts({ predictor, sll, heads });
  } catch (e) {
    if (e instanceof ModelFileError) throw new ModelFileError(`${dir}: ${e.message}`);
    throw e;
  }
}

/** DIR/model.json (and its weights) as tfjs model artifacts. */
export function readLayersModel(dir: string, file = 'model.json'): tf.io.ModelArtifacts {
  const json = parseJson<tf.io.ModelJSON>(readFile(dir, file), path.join(dir, file));
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) throw new ModelFileError(`${path.join(dir, file)} is not a tfjs layers model`);
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const buffers = json.weightsManifest.flatMap((group) => group.paths.map((p) => readFile(dir, p)));
  const data = Buffer.concat(buffers);
  // Truncated weights would otherwise load as garbage (checked for the plain 4-byte dtypes sll writes).
  if (specs.every((s) => (s.dtype === 'float32' || s.dtype === 'int32') && !s.quantization)) {
    const expected = specs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
    if (data.byteLength !== expected) throw new ModelFileError(`${dir}: the weights hold ${data.byteLength} bytes, ${file} lists ${expected}`);
  }
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  };
}

/** Writes tfjs model artifacts as DIR/model.json + DIR/weights.bin, each atomically. */
export function writeLayersModel(dir: string, artifacts: tf.io.ModelArtifacts): void {
  fs.mkdirSync(dir, { recursive: true });
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology!,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: artifacts.weightSpecs ?? [] }],
    ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
  };
  const weights = artifacts.weightData ?? new ArrayBuffer(0);
  const bytes = Array.isArray(weights) ? Buffer.concat(weights.map((b) => new Uint8Array(b))) : new Uint8Array(weights);
  writeFileAtomic(path.join(dir, WEIGHTS_FILE), bytes);
  writeFileAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
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

function readFile(dir: string, name: string): Buffer {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) throw new ModelFileError(`${file} not found: is ${dir} a directory written by sll train?`);
  return fs.readFileSync(file);
}

function parseJson<T>(bytes: Buffer, file: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new ModelFileError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}
