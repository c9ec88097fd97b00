/** The divergence guard: a non-finite loss or weight stops training, naming the unit, the step and the part. */
import * as tf from '@tensorflow/tfjs';
import { networkVariables, unitVariables, type Network } from '../models/network.js';
import { STAT_COLUMNS } from './trainer.js';

/** A non-finite loss or weight: names the unit, the step and the loss part. */
export class DivergenceError extends Error {
  /**
   * `part` is the loss part that turned non-finite (prediction, alignment, loss) or 'weights'; `unit` is
   * 1-based, and null for BP, whose one loss belongs to the whole network.
   */
  constructor(
    readonly unit: number | null,
    readonly step: number,
    readonly part: string,
    value: number,
  ) {
    const who = unit === null ? 'the network' : `unit ${unit}`;
    const what = part === 'weights' ? 'its weights hold NaN or Inf' : `its ${part} loss is ${value}`;
    super(`${who} diverged at step ${step}: ${what}`);
    this.name = 'DivergenceError';
  }
}

/** Throws DivergenceError for the first non-finite loss part in a step's stats rows (one per unit, or BP's one). */
export function assertFiniteStats(rows: readonly number[][], step: number, bp: boolean): void {
  rows.forEach((r, u) => {
    for (let c = 0; c < 3; c++) {
      if (!Number.isFinite(r[c])) throw new DivergenceError(bp ? null : u + 1, step, STAT_COLUMNS[c], r[c]);
    }
  });
}

/**
 * Rejects with DivergenceError when a weight is NaN or Inf: a checkpoint must never hold what a diverged
 * update left. One read for the whole network, asynchronous (the webgpu backend cannot read synchronously
 * in Node).
 */
export async function assertFiniteWeights(network: Network, step: number): Promise<void> {
  const groups = network.classifier ? [networkVariables(network)] : network.units.map((unit) => unitVariables(unit));
  const flags = tf.tidy(() => tf.stack(groups.map((variables) => tf.stack([tf.scalar(true, 'bool'), ...variables.map((v) => tf.all(tf.isFinite(v)))]).all())));
  const finite = await flags.data();
  flags.dispose();
  const u = finite.findIndex((f) => f !== 1);
  if (u >= 0) throw new DivergenceError(network.classifier ? null : u + 1, step, 'weights', NaN);
}
