/**
 * A trained model on disk: the network in the standard tfjs layers format (model.json + weights.bin, which
 * tf.loadLayersModel reads in Node and in a browser), and beside it sll.json (network spec and the
 * projection heads' configurations) with heads.bin (the fixed matrices R_i, float32, in head order).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { networkFromModel, type NetworkSpec } from '../models/network.js';
import { ProjectionHead, featureDim, type ProjectionHeadConfig } from '../objectives/projection.js';
import type { HeadedNetwork } from '../train/model.js';

const FORMAT = 'sll-model/1';

interface SllJson {
  format: string;
  network: NetworkSpec;
  heads: ProjectionHeadConfig[];
  inputHead: ProjectionHeadConfig | null;
  headsWeights: string;
}

export class ModelFileError extends Error {}

export async function saveModel(dir: string, model: HeadedNetwork): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await model.network.model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightsFile = 'weights.bin';
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology!,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${weightsFile}`], weights: artifacts.weightSpecs! }],
      };
      writeFileAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      const data = artifacts.weightData as ArrayBuffer;
      writeFileAtomic(path.join(dir, weightsFile), new Uint8Array(data));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  const heads = [...model.heads, ...(model.inputHead ? [model.inputHead] : [])];
  const matrices = heads.map((h) => h.projection.dataSync() as Float32Array);
  const bin = new Float32Array(matrices.reduce((n, m) => n + m.length, 0));
  matrices.reduce((offset, m) => (bin.set(m, offset), offset + m.length), 0);
  const meta: SllJson = {
    format: FORMAT,
    network: model.network.spec,
    heads: model.heads.map((h) => h.config),
    inputHead: model.inputHead?.config ?? null,
    headsWeights: 'heads.bin',
  };
  writeFileAtomic(path.join(dir, 'heads.bin'), new Uint8Array(bin.buffer));
  writeFileAtomic(path.join(dir, 'sll.json'), JSON.stringify(meta, null, 2));
}

export async function loadModel(dir: string): Promise<HeadedNetwork> {
  const read = (name: string) => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new ModelFileError(`${file} not found: is ${dir} a directory written by sll train?`);
    return fs.readFileSync(file);
  };
  const meta = parseJson<SllJson>(read('sll.json'), path.join(dir, 'sll.json'));
  if (meta.format !== FORMAT) throw new ModelFileError(`${dir}/sll.json has format '${meta.format}', expected '${FORMAT}'`);
  const modelJson = parseJson<tf.io.ModelJSON>(read('model.json'), path.join(dir, 'model.json'));
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const specs = manifest.flatMap((group) => group.weights);
    const buffers = manifest.flatMap((group) => group.paths.map((p) => read(p)));
    const data = Buffer.concat(buffers);
    return [specs, data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)];
  });
  const layersModel = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  if (!(layersModel instanceof tf.Sequential)) throw new ModelFileError(`${dir}/model.json is not a Sequential model`);
  const network = networkFromModel(meta.network, layersModel);

  const bytes = read(meta.headsWeights);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const configs = [...meta.heads, ...(meta.inputHead ? [meta.inputHead] : [])];
  let offset = 0;
  const loaded = configs.map((config) => {
    const rows = featureDim(config);
    const n = rows * config.numClasses;
    if (offset + n > all.length) throw new ModelFileError(`${dir}/${meta.headsWeights} is truncated`);
    const head = new ProjectionHead(config, tf.tensor2d(all.subarray(offset, offset + n), [rows, config.numClasses]));
    offset += n;
    return head;
  });
  if (offset !== all.length) throw new ModelFileError(`${dir}/${meta.headsWeights} has ${all.length - offset} extra values`);
  return {
    network,
    heads: loaded.slice(0, meta.heads.length),
    inputHead: meta.inputHead ? loaded[meta.heads.length] : null,
  };
}

/** Write to a temporary file and rename, so a crash never leaves a half-written file under the real name. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function parseJson<T>(bytes: Buffer, file: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new ModelFileError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}
