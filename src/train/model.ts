/** A network together with its fixed projection heads: what SLL trains, evaluates, saves and reloads. */
import type { Network } from '../models/network.js';
import { ProjectionHead, type ProjectionHeadConfig } from '../objectives/projection.js';
import { mixSeed } from '../data/random.js';
import type { RunOptions } from '../options.js';

export interface HeadedNetwork {
  readonly network: Network;
  /** R_i for each unit i (also kept for a BP network, so both can be probed the same way). */
  readonly heads: readonly ProjectionHead[];
  /** R_0 of the first unit's parent when that parent is a projection of the input x; else null. */
  readonly inputHead: ProjectionHead | null;
}

/** Default d for conv units' heads (--proj-dim): each channel pooled to s x s with s * s * C <= 4096. */
export const CONV_PROJ_DIM = 4096;

type HeadOptions = Pick<RunOptions, 'keep' | 'maskScale' | 'projScale' | 'projection' | 'projDim' | 'firstParent' | 'seed'>;

/** Samples every unit's fixed projection head (and the input's, if the first unit has that parent). */
export function attachHeads(network: Network, o: HeadOptions): HeadedNetwork {
  const numClasses = network.spec.numClasses;
  const base = { numClasses, distribution: o.projection, keep: o.keep, maskScale: o.maskScale, scale: o.projScale };
  const heads = network.units.map(
    (unit) =>
      new ProjectionHead({
        ...base,
        inputShape: [...unit.outputShape],
        poolDim: o.projDim ?? (unit.outputShape.length === 3 ? CONV_PROJ_DIM : null),
        seed: mixSeed(o.seed, 1, unit.index),
      }),
  );
  const inputConfig: ProjectionHeadConfig = {
    ...base,
    inputShape: [size(network.spec.inputShape)],
    poolDim: null,
    keep: 1,
    seed: mixSeed(o.seed, 2),
  };
  const inputHead = o.firstParent === 'input' ? new ProjectionHead(inputConfig) : null;
  return { network, heads, inputHead };
}

export function disposeHeaded(model: HeadedNetwork): void {
  model.heads.forEach((h) => h.dispose());
  model.inputHead?.dispose();
  model.network.model.dispose();
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

