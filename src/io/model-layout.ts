/**
 * A model's files as bytes, in any environment (browser-safe): the layout `sll train` writes into a run
 * folder — model.json + weights.bin (the predictor in tfjs's layers format, which `tf.loadLayersModel`
 * reads), sll.json and heads.bin (see artifacts.ts). `sll/node` reads and writes these bytes as files
 * (model-files.ts); the browser page picks, fetches and downloads them.
 */
import type * as tf from '@tensorflow/tfjs';
import { ModelFileError, type SllArtifacts, type SllJson } from './artifacts.js';

/** The weights file of the predictor, beside model.json. */
export const WEIGHTS_FILE = 'weights.bin';

/** The four files of a saved model (heads.bin is the name sll.json's `headsWeights` gives it). */
export const MODEL_FILES = ['model.json', WEIGHTS_FILE, 'sll.json', 'heads.bin'] as const;

/**
 * Reads one file of a model by name (a path below the model's folder): its bytes, or a ModelFileError
 * saying that it is missing. `describe` names a file in error messages (a path on disk, a picked file).
 */
export interface ModelFileReader {
  /** The bytes of the file `name`; throws ModelFileError when there is no such file. */
  read(name: string): Uint8Array;
  /** How messages name the file `name` (its path on disk, or the name of a picked file). */
  describe(name: string): string;
}

/** tfjs layers-model artifacts as model.json's text and the bytes of weights.bin. */
export function layersModelFiles(artifacts: tf.io.ModelArtifacts): { modelJson: string; weights: Uint8Array } {
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology!,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [`./${WEIGHTS_FILE}`], weights: artifacts.weightSpecs ?? [] }],
    ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
  };
  const data = artifacts.weightData ?? new ArrayBuffer(0);
  return { modelJson: JSON.stringify(modelJson), weights: concat((Array.isArray(data) ? data : [data]).map((b) => new Uint8Array(b))) };
}

/**
 * model.json (`file`, default 'model.json') and the weight files its manifest lists, as tfjs model
 * artifacts. Truncated or padded weights are refused (checked for the plain 4-byte dtypes sll writes), as
 * is a JSON file that is not a layers model.
 */
export function layersModelFromFiles(files: ModelFileReader, file = 'model.json'): tf.io.ModelArtifacts {
  const json = parseJson<tf.io.ModelJSON>(files, file);
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) throw new ModelFileError(`${files.describe(file)} is not a tfjs layers model`);
  const specs = json.weightsManifest.flatMap((group) => group.weights);
  const data = concat(json.weightsManifest.flatMap((group) => group.paths.map((p) => files.read(p.replace(/^\.\//, '')))));
  if (specs.every((s) => (s.dtype === 'float32' || s.dtype === 'int32') && !s.quantization)) {
    const expected = specs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
    if (data.byteLength !== expected) {
      const weightFiles = json.weightsManifest.flatMap((group) => group.paths.map((p) => files.describe(p.replace(/^\.\//, ''))));
      throw new ModelFileError(`${weightFiles.join(', ')}: the weights hold ${data.byteLength} bytes, ${file} lists ${expected} (truncated or from another model)`);
    }
  }
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
  };
}

/** A model's artifacts as its four files, by name, as `sll train` writes them. */
export function modelFiles({ predictor, sll, heads }: SllArtifacts): Map<string, Uint8Array> {
  const { modelJson, weights } = layersModelFiles(predictor);
  const text = new TextEncoder();
  return new Map([
    ['model.json', text.encode(modelJson)],
    [WEIGHTS_FILE, weights],
    ['sll.json', text.encode(JSON.stringify(sll, null, 2))],
    [sll.headsWeights, new Uint8Array(heads.buffer, heads.byteOffset, heads.byteLength)],
  ]);
}

/** A model's four files back to its artifacts; a missing or malformed file is named in a ModelFileError. */
export function artifactsFromModelFiles(files: ModelFileReader): SllArtifacts {
  const sll = parseJson<SllJson>(files, 'sll.json');
  const predictor = layersModelFromFiles(files);
  const bytes = files.read(sll.headsWeights);
  if (bytes.byteLength % 4 !== 0) throw new ModelFileError(`${files.describe(sll.headsWeights)} is not float32 data (${bytes.byteLength} bytes)`);
  return { predictor, sll, heads: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
}

function parseJson<T>(files: ModelFileReader, name: string): T {
  const bytes = files.read(name);
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (e) {
    throw new ModelFileError(`${files.describe(name)} is not valid JSON: ${(e as Error).message}`);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  parts.reduce((offset, p) => (out.set(p, offset), offset + p.byteLength), 0);
  return out;
}
