/**
 * A trained model as data, in any environment (browser-safe; `saveModel`/`loadModel` of `sll/node` write
 * and read it as files):
 * - the **predictor**: a plain tfjs layers model that `tf.loadLayersModel` reads and any tfjs app can use
 *   unchanged. It maps raw inputs to class probabilities: the input normalisation (when the model was
 *   trained on an image data set, as a frozen dense layer over the channels, so it takes 0..255 pixels),
 *   the network's layers, and its readout: the last unit's projection head folded into a frozen dense
 *   layer (SLL) or the trained classifier (BP), then a softmax;
 * - `sll.json`: what the predictor's layers are (units, readout), the heads' configurations, the
 *   normalisation;
 * - the heads' matrices R_i (`heads.bin`), float32 in head order.
 * Together they restore the whole model (every unit's head) for evaluation and further training.
 */
import * as tf from '@tensorflow/tfjs';
import { cloneLayer, sequentialOf } from '../models/clone.js';
import { chainLayers, networkFromModel, type Network, type NetworkSpec } from '../models/network.js';
import { ProjectionHead, featureDim, type ProjectionHeadConfig } from '../objectives/projection.js';
import { shown } from '../train/config.js';
import { requireHeaded, type HeadedNetwork, type Normalization } from '../train/model.js';

/** The format of sll.json this version writes and reads. */
export const MODEL_FORMAT = 'sll-model/2';

/** sll.json: the model beyond its predictor. */
export interface SllJson {
  format: string;
  network: NetworkSpec;
  /** The predictor's layers: normalisation layers, then the network's, then the readout's. */
  predictor: { normalizationLayers: number; readoutLayers: number; readout: 'head' | 'classifier' };
  normalization: Normalization | null;
  heads: ProjectionHeadConfig[];
  inputHead: ProjectionHeadConfig | null;
  /** The file of the heads' matrices, beside sll.json. */
  headsWeights: string;
}

/** A model as data: the predictor's artifacts, sll.json, and the heads' matrices. */
export interface SllArtifacts {
  predictor: tf.io.ModelArtifacts;
  sll: SllJson;
  heads: Float32Array;
}

/** A model's files could not be read as one: what is wrong, with the file. */
export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

const NORMALIZE = 'sll_normalize';

/**
 * The predictor of `model` as a new tf.Sequential (copies of the layers): raw input -> class
 * probabilities through the units up to `head` (0-based; default the last) and that head folded into a
 * frozen dense layer, or through the BP classifier. With a recorded normalisation it takes raw 0..255 pixels.
 * The layers it adds are named `sll_normalize`, `sll_head` and `sll_softmax` (BP: `classifier`): a model
 * whose own layers bear these names cannot be saved.
 */
export function toPredictor(model: HeadedNetwork, opts: { head?: number } = {}): tf.Sequential {
  requireHeaded(model, 'toPredictor');
  const { network } = model;
  const last = network.units.length - 1;
  const head = opts.head ?? last;
  if (!Number.isInteger(head) || head < 0 || head > last) throw new RangeError(`head must be an integer in 0..${last}, got ${shown(head)}`);
  if (network.classifier && head !== last) throw new RangeError('a BP network predicts through its classifier, after the last unit');
  const layers: tf.layers.Layer[] = [];
  const inputShape = network.spec.inputShape;
  if (model.normalization) layers.push(normalizationLayer(model.normalization, inputShape));
  const unitLayers = network.units.slice(0, head + 1).flatMap((u) => u.layers);
  unitLayers.forEach((l) => layers.push(cloneLayer(l, layers.length === 0 ? inputShape : undefined)));
  const readout = network.classifier ? chainLayers(network.classifier).map((l) => cloneLayer(l)) : headLayers(model.heads[head]);
  layers.push(...readout, tf.layers.activation({ activation: 'softmax', name: 'sll_softmax' }));
  const predictor = tf.sequential({ layers });
  const offset = model.normalization ? 1 : 0;
  tf.tidy(() => {
    if (model.normalization) layers[0].setWeights(normalizationWeights(model.normalization));
    unitLayers.forEach((l, i) => layers[offset + i].setWeights(l.getWeights()));
    if (network.classifier) {
      chainLayers(network.classifier).forEach((l, i) => readout[i].setWeights(l.getWeights()));
    } else {
      const { config } = model.heads[head];
      const rows = config.inputShape.reduce((a, b) => a * b, 1);
      readout[readout.length - 1].setWeights([tf.tensor2d(model.heads[head].readoutMatrix(), [rows, config.numClasses])]);
    }
  });
  return predictor;
}

/** The frozen dense layer x -> x / (255 std) - mean / std over the channels (the last axis); its weights come from normalizationWeights. */
function normalizationLayer(n: Normalization, inputShape: readonly number[]): tf.layers.Layer {
  const c = n.mean.length;
  if (inputShape[inputShape.length - 1] !== c) throw new Error(`the normalisation has ${c} channels, the input shape [${inputShape}] ${inputShape[inputShape.length - 1]}`);
  return tf.layers.dense({ units: c, inputShape: [...inputShape], trainable: false, name: NORMALIZE });
}

function normalizationWeights(n: Normalization): tf.Tensor[] {
  const c = n.mean.length;
  const kernel = new Float32Array(c * c);
  for (let i = 0; i < c; i++) kernel[i * c + i] = 1 / (255 * n.std[i]);
  return [tf.tensor2d(kernel, [c, c]), tf.tensor1d(Float32Array.from(n.mean, (m, i) => -m / n.std[i]))];
}

/** The readout of a head: [flatten,] dense K without bias, frozen, its kernel set once built. */
function headLayers(head: ProjectionHead): tf.layers.Layer[] {
  const flatten = head.config.inputShape.length > 1 ? [tf.layers.flatten({ name: 'sll_head_flatten' })] : [];
  return [...flatten, tf.layers.dense({ units: head.config.numClasses, useBias: false, trainable: false, name: 'sll_head' })];
}

/** `model` as data, its predictor reading out the last head (SLL) or the classifier (BP). */
export async function toArtifacts(model: HeadedNetwork): Promise<SllArtifacts> {
  requireHeaded(model, 'toArtifacts');
  // Read the heads' R asynchronously first: the webgpu backend cannot read synchronously in Node, except
  // what an asynchronous read has cached on the CPU (toPredictor's readoutMatrix then finds R there).
  const heads = [...model.heads, ...(model.inputHead ? [model.inputHead] : [])];
  const matrices = await Promise.all(heads.map(async (h) => (await h.projection.data()) as Float32Array));
  const predictor = toPredictor(model);
  try {
    const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve, reject) => {
      predictor
        .save(
          tf.io.withSaveHandler(async (a) => {
            resolve(a);
            return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
          }),
        )
        .catch(reject);
    });
    const bin = new Float32Array(matrices.reduce((n, m) => n + m.length, 0));
    matrices.reduce((offset, m) => (bin.set(m, offset), offset + m.length), 0);
    const readoutLayers = model.network.classifier ? chainLayers(model.network.classifier).length : headLayers(model.heads[model.heads.length - 1]).length;
    const sll: SllJson = {
      format: MODEL_FORMAT,
      network: model.network.spec,
      predictor: {
        normalizationLayers: model.normalization ? 1 : 0,
        readoutLayers: readoutLayers + 1,
        readout: model.network.classifier ? 'classifier' : 'head',
      },
      normalization: model.normalization,
      heads: model.heads.map((h) => h.config),
      inputHead: model.inputHead?.config ?? null,
      headsWeights: 'heads.bin',
    };
    return { predictor: artifacts, sll, heads: bin };
  } finally {
    predictor.dispose();
  }
}

/** The model that {@link toArtifacts} wrote: network (and classifier), every head, the normalisation. */
export async function fromArtifacts(artifacts: SllArtifacts): Promise<HeadedNetwork> {
  const { predictor, sll, heads } = (artifacts ?? {}) as Partial<SllArtifacts>;
  if (typeof predictor !== 'object' || predictor === null || typeof sll !== 'object' || sll === null || !(heads instanceof Float32Array)) {
    const what = artifacts && 'modelTopology' in artifacts ? 'tfjs model artifacts (a predictor alone: load those with tf.loadLayersModel)' : 'something else';
    throw new ModelFileError(`fromArtifacts takes { predictor, sll, heads } (toArtifacts' result: tfjs artifacts, sll.json, heads.bin as a Float32Array), got ${what}`);
  }
  if (sll.format !== MODEL_FORMAT) {
    throw new ModelFileError(`sll.json has format '${sll.format}', expected '${MODEL_FORMAT}' (saved by another version of sll: train it again)`);
  }
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(predictor));
  try {
    const layers = chainLayers(loaded);
    const { normalizationLayers, readoutLayers } = sll.predictor;
    const unitCount = sll.network.unitLayerCounts.reduce((a, b) => a + b, 0);
    if (layers.length !== normalizationLayers + unitCount + readoutLayers) {
      throw new ModelFileError(`model.json has ${layers.length} layers, sll.json says ${normalizationLayers + unitCount + readoutLayers}`);
    }
    const netLayers = layers.slice(normalizationLayers, normalizationLayers + unitCount);
    const model = sequentialOf(netLayers, sll.network.inputShape);
    const built = networkFromModel(model, { numClasses: sll.network.numClasses, grouping: sll.network.unitLayerCounts, name: sll.network.model, options: { ...sll.network.options } });
    let network: Network = { ...built, spec: sll.network };
    if (sll.network.classifier) {
      const classifierLayers = layers.slice(normalizationLayers + unitCount, layers.length - 1);
      const lastShape = network.units[network.units.length - 1].outputShape;
      network = { ...network, classifier: sequentialOf(classifierLayers, lastShape) };
    }
    const configs = [...sll.heads, ...(sll.inputHead ? [sll.inputHead] : [])];
    let offset = 0;
    const restored = configs.map((config) => {
      const rows = featureDim(config);
      const n = rows * config.numClasses;
      if (offset + n > heads.length) throw new ModelFileError(`${sll.headsWeights} is truncated`);
      const head = new ProjectionHead(config, tf.tensor2d(heads.subarray(offset, offset + n), [rows, config.numClasses]));
      offset += n;
      return head;
    });
    if (offset !== heads.length) throw new ModelFileError(`${sll.headsWeights} has ${heads.length - offset} extra values`);
    return {
      network,
      heads: restored.slice(0, sll.heads.length),
      inputHead: sll.inputHead ? restored[sll.heads.length] : null,
      normalization: sll.normalization,
    };
  } finally {
    loaded.dispose();
  }
}
