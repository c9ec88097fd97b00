/** A network together with its fixed projection heads: what SLL trains, evaluates, saves and reloads. */
import type { Network } from '../models/network.js';
import { ProjectionHead, type ProjectionHeadConfig } from '../objectives/projection.js';
import { mixSeed } from '../data/random.js';
import { ConfigError, type HeadsConfig } from './config.js';

/**
 * The input normalisation x = (p / 255 - mean[c]) / std[c] of raw 0..255 pixels, per channel c: recorded
 * with a model trained on an image data set, so that its saved predictor takes raw pixels.
 */
export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** The data set's class names, where it has them (an image folder): data evaluated or trained on later must name the same classes in the same order. */
  readonly classNames?: readonly string[];
}

/** The normalisation (and class names) of an image data set, copied: what a model trained on it records. */
export function normalizationOf(images: Normalization): Normalization {
  const { mean, std, classNames } = images;
  return { mean: [...mean], std: [...std], ...(classNames && { classNames: [...classNames] }) };
}

/** A network and its projection heads: the SLL model (a BP-trained network has none: its classifier reads the last unit). */
export interface HeadedNetwork {
  readonly network: Network;
  /** R_i for each unit i; empty for a BP network. */
  readonly heads: readonly ProjectionHead[];
  /** R_0 of the first unit's parent when that parent is a projection of the input x; else null. */
  readonly inputHead: ProjectionHead | null;
  /** How raw pixels became the network's input, when it was trained on an image data set; else null. */
  readonly normalization: Normalization | null;
}

/** True for a HeadedNetwork (FitHistory.model of fitSll or fitBp, what loadModel gives); false for a tf.LayersModel or anything else. */
export function isHeadedNetwork(model: unknown): model is HeadedNetwork {
  const m = model as Partial<HeadedNetwork> | null;
  return typeof m === 'object' && m !== null && typeof m.network === 'object' && m.network !== null && Array.isArray(m.network.units) && Array.isArray(m.heads);
}

/** Throws a TypeError naming `fn` unless `model` is a HeadedNetwork; for a tf.LayersModel it says how to get one. */
export function requireHeaded(model: unknown, fn: string): asserts model is HeadedNetwork {
  if (isHeadedNetwork(model)) return;
  const layersModel = typeof model === 'object' && model !== null && 'layers' in model && typeof (model as { predict?: unknown }).predict === 'function';
  const got = layersModel ? 'a tf.LayersModel: train it with fitSll or fitBp, whose result holds it as .model' : model === null ? 'null' : typeof model;
  throw new TypeError(`${fn} takes a HeadedNetwork (FitHistory.model of fitSll or fitBp, or loadModel's), got ${got}`);
}

/** Default d for conv units' heads (projDim null): each channel pooled to s x s with s * s * C <= 4096. */
export const CONV_PROJ_DIM = 4096;

/** Samples every unit's fixed projection head (and the input's, if the first unit has that parent). */
export function attachHeads(
  network: Network,
  o: HeadsConfig,
  normalization: Normalization | null = null,
): HeadedNetwork {
  const numClasses = network.spec.numClasses;
  const base = { numClasses, distribution: o.projection, keep: o.keep, maskScale: o.maskScale, scale: o.projScale, center: o.projCenter };
  const heads = network.units.map((unit) => {
    const rank = unit.outputShape.length;
    if (rank > 3) {
      throw new Error(`unit ${unit.index + 1} outputs shape [${unit.outputShape}]: a projection head reads a vector [D], tokens [T, D] or feature maps [H, W, C]`);
    }
    const features = unit.outputShape[rank - 1];
    if (rank < 3 && o.projDim != null && o.projDim > features) {
      throw new ConfigError('projDim', `${o.projDim} is larger than unit ${unit.index + 1}'s ${features} features`);
    }
    // Feature maps pool each channel to s x s (s >= 1): d = s * s * C, so d below C cannot be met.
    if (rank === 3 && o.projDim != null && o.projDim < features) {
      throw new ConfigError('projDim', `${o.projDim} is below unit ${unit.index + 1}'s ${features} channels: a conv unit's head pools each channel to s x s, the largest with s * s * channels <= d, so d must be at least its channels`);
    }
    return new ProjectionHead({
      ...base,
      inputShape: [...unit.outputShape],
      ...(rank === 2 ? { token: o.token } : {}),
      poolDim: o.projDim ?? (rank === 3 ? CONV_PROJ_DIM : null),
      seed: mixSeed(o.seed, 1, unit.index),
    });
  });
  const inputConfig: ProjectionHeadConfig = {
    ...base,
    inputShape: [size(network.spec.inputShape)],
    poolDim: null,
    keep: 1,
    seed: mixSeed(o.seed, 2),
  };
  const inputHead = o.firstParent === 'input' ? new ProjectionHead(inputConfig) : null;
  return { network, heads, inputHead, normalization };
}

/** Disposes the heads (R_i and their pooling matrices), leaving the network's model to its owner. */
export function disposeHeads(model: HeadedNetwork): void {
  model.heads.forEach((h) => h.dispose());
  model.inputHead?.dispose();
}

/** Disposes everything: the heads, the network's model and its classifier. */
export function disposeHeaded(model: HeadedNetwork): void {
  disposeHeads(model);
  model.network.model.dispose();
  model.network.classifier?.dispose();
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
