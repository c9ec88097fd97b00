/**
 * What each unit has learned, on a held-out batch (paper Fig. 3a and 5): every unit's output h_i and
 * logits v_i, their 2-D UMAP embeddings coloured by class, the linear CKA of every h_i with the input and
 * with each other, and histograms of each unit's weights and activations.
 */
import * as tf from '@tensorflow/tfjs';
import { UMAP } from 'umap-js';
import { Rng } from '../data/random.js';
import { applyUnit, classify } from '../models/network.js';
import type { HeadedNetwork } from '../train/model.js';
import { ckaMatrix } from './cka.js';
import { finiteRange, histogram, type Histogram } from './histogram.js';

/** Features a representation keeps before UMAP (a fixed Gaussian projection down to this many, when wider). */
const EMBED_FEATURES = 50;

/** One unit's representations of the batch. */
export interface UnitRepresentation {
  /** 1-based. */
  unit: number;
  /** 2-D UMAP of h_i, one point per example. */
  hEmbedding: [number, number][];
  /** 2-D UMAP of v_i (the head's logits; BP: the classifier's, last unit only), or null. */
  vEmbedding: [number, number][] | null;
  /** All of h_i's values (for its histogram). */
  activations: Float32Array;
  /** All of the unit's trainable weights (kernels and biases), concatenated. */
  weights: Float32Array;
}

/** A run's representations of one batch. */
export interface Representations {
  labels: number[];
  units: UnitRepresentation[];
  /** Linear CKA between the input (index 0) and every h_i (index i), symmetric. */
  cka: number[][];
}

/**
 * Every unit's h_i and v_i on `x` (inference mode), their embeddings (seeded UMAP), their CKA with the
 * input and each other, and the unit's weights and activations.
 */
export function representations(model: HeadedNetwork, x: tf.Tensor, labels: readonly number[], seed = 0): Representations {
  const { network, heads } = model;
  const bp = network.classifier != null;
  const hs: tf.Tensor[] = [];
  const vs: (tf.Tensor | null)[] = [];
  let h: tf.Tensor = x;
  for (const unit of network.units) {
    h = tf.tidy(() => applyUnit(unit, h, false));
    hs.push(h);
    vs.push(bp ? null : heads[unit.index].project(h));
  }
  if (bp) vs[vs.length - 1] = classify(network, x, false);
  try {
    const cka = ckaMatrix([x, ...hs]);
    const units = network.units.map((unit, i) => ({
      unit: i + 1,
      hEmbedding: embed(hs[i], seed + i),
      vEmbedding: vs[i] ? embed(vs[i]!, seed + 1000 + i) : null,
      activations: (hs[i].dataSync() as Float32Array).slice(),
      weights: concat(unit.layers.flatMap((l) => l.trainableWeights.map((w) => w.read().dataSync() as Float32Array))),
    }));
    return { labels: [...labels], units, cka };
  } finally {
    tf.dispose([...hs, ...vs.filter((v): v is tf.Tensor => v !== null)]);
  }
}

/** A seeded 2-D UMAP of the rows of `t` ([n, ...]), after a fixed Gaussian projection to 50 features when wider. */
export function embed(t: tf.Tensor, seed: number): [number, number][] {
  const n = t.shape[0];
  const rows = tf.tidy(() => {
    const flat = t.reshape([n, -1]) as tf.Tensor2D;
    const p = flat.shape[1];
    if (p <= EMBED_FEATURES) return flat.arraySync() as number[][];
    const projection = tf.randomNormal([p, EMBED_FEATURES], 0, 1 / Math.sqrt(EMBED_FEATURES), 'float32', seed);
    return tf.matMul(flat, projection).arraySync() as number[][];
  });
  const rng = new Rng(seed);
  const umap = new UMAP({ nComponents: 2, nNeighbors: Math.min(15, n - 1), random: () => rng.next() });
  return umap.fit(rows) as [number, number][];
}

function concat(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  arrays.reduce((offset, a) => (out.set(a, offset), offset + a.length), 0);
  return out;
}

/** Histograms of the same values of several runs (e.g. SLL's and BP's unit-2 weights) over one shared range. */
export function sharedHistograms(values: readonly ArrayLike<number>[], bins = 40): Histogram[] {
  const range = finiteRange(...values);
  return values.map((v) => histogram(v, bins, range));
}
