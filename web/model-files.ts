/**
 * A model as the four files `sll train` writes (model.json, weights.bin, sll.json, heads.bin), in the
 * browser: from files the user picked (or fetched from a URL) to the core's SllArtifacts and back to
 * Blobs to download. The same layout as src/io/model-files.ts, without node:fs.
 */
import type * as tf from '@tensorflow/tfjs';
import { ModelFileError, type SllArtifacts, type SllJson } from '../src/index.js';

/** The four files of a saved model, by name. */
export const MODEL_FILES = ['model.json', 'weights.bin', 'sll.json', 'heads.bin'] as const;

/** Files by name -> artifacts; a missing or malformed file is named in a ModelFileError. */
export function artifactsFromFiles(files: ReadonlyMap<string, ArrayBuffer>): SllArtifacts {
  const get = (name: string): ArrayBuffer => {
    const f = files.get(name);
    if (!f) throw new ModelFileError(`${name} is missing: pick the four files ${MODEL_FILES.join(', ')} of a run folder`);
    return f;
  };
  const json = <T>(name: string): T => {
    try {
      return JSON.parse(new TextDecoder().decode(get(name))) as T;
    } catch (e) {
      if (e instanceof ModelFileError) throw e;
      throw new ModelFileError(`${name} is not valid JSON: ${(e as Error).message}`);
    }
  };
  const sll = json<SllJson>('sll.json');
  const model = json<tf.io.ModelJSON>('model.json');
  if (!model.modelTopology || !Array.isArray(model.weightsManifest)) throw new ModelFileError('model.json is not a tfjs layers model');
  const weightSpecs = model.weightsManifest.flatMap((g) => g.weights);
  const parts = model.weightsManifest.flatMap((g) => g.paths.map((p) => new Uint8Array(get(p.replace(/^\.\//, '')))));
  const weightData = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (weightData.set(p, offset), offset + p.length), 0);
  const expected = weightSpecs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
  if (weightData.length !== expected) throw new ModelFileError(`the weights hold ${weightData.length} bytes, model.json lists ${expected}`);
  const heads = get(sll.headsWeights);
  if (heads.byteLength % 4 !== 0) throw new ModelFileError(`${sll.headsWeights} is not float32 data (${heads.byteLength} bytes)`);
  return {
    predictor: { modelTopology: model.modelTopology, format: model.format, generatedBy: model.generatedBy, convertedBy: model.convertedBy, weightSpecs, weightData: weightData.buffer },
    sll,
    heads: new Float32Array(heads.slice(0)),
  };
}

/** Artifacts -> the four files, as `sll train` writes them. */
export function filesFromArtifacts({ predictor, sll, heads }: SllArtifacts): Map<string, Blob> {
  const modelJson: tf.io.ModelJSON = {
    modelTopology: predictor.modelTopology!,
    format: predictor.format,
    generatedBy: predictor.generatedBy,
    convertedBy: predictor.convertedBy ?? null,
    weightsManifest: [{ paths: ['./weights.bin'], weights: predictor.weightSpecs ?? [] }],
  };
  const weights = predictor.weightData ?? new ArrayBuffer(0);
  return new Map([
    ['model.json', new Blob([JSON.stringify(modelJson)], { type: 'application/json' })],
    ['weights.bin', new Blob(Array.isArray(weights) ? weights : [weights], { type: 'application/octet-stream' })],
    ['sll.json', new Blob([JSON.stringify(sll, null, 2)], { type: 'application/json' })],
    [sll.headsWeights, new Blob([heads.slice().buffer], { type: 'application/octet-stream' })],
  ]);
}

/** The four files from a folder URL (ending in /), for a run served over HTTP. */
export async function fetchModelFiles(base: URL): Promise<Map<string, ArrayBuffer>> {
  const files = new Map<string, ArrayBuffer>();
  for (const name of MODEL_FILES) {
    const r = await fetch(new URL(name, base));
    if (!r.ok) throw new ModelFileError(`${new URL(name, base)}: HTTP ${r.status}`);
    files.set(name, await r.arrayBuffer());
  }
  return files;
}
