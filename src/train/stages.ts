/** How a pipeline's units are split into stages: contiguous ranges, even in count or balanced by measured cost. */
import * as tf from '@tensorflow/tfjs';
import { cloneNetwork } from '../models/clone.js';
import type { SllStrategy } from './config.js';
import type { HeadedNetwork } from './model.js';
import { SllTrainer } from './sll.js';

/** Units first..end-1 (0-based) of one stage. */
export interface StageRange {
  first: number;
  end: number;
}

/**
 * Throws unless `ranges` split units 0..units-1 into contiguous, non-empty stages in order (what a
 * pipeline needs: each unit trained by one stage, the chain passing through all of them).
 */
export function checkStageRanges(ranges: readonly StageRange[], units: number): void {
  const text = () => JSON.stringify(ranges);
  if (!Array.isArray(ranges) || ranges.length === 0) throw new RangeError(`a pipeline needs at least one stage range, got ${String(ranges)}`);
  let next = 0;
  ranges.forEach((r, s) => {
    if (!Number.isInteger(r?.first) || !Number.isInteger(r?.end) || r.first !== next || r.end <= r.first) {
      throw new RangeError(`stage ${s + 1} must hold units from ${next} (0-based first, end past the last), contiguous and non-empty: got ${text()}`);
    }
    next = r.end;
  });
  if (next !== units) throw new RangeError(`the stages hold units 0..${next - 1}, the network has ${units}: got ${text()}`);
}

/** Contiguous ranges of `units` units over `stages` stages, as even in count as can be. */
export function evenStages(units: number, stages: number): StageRange[] {
  if (!(Number.isInteger(stages) && stages >= 1 && stages <= units)) throw new RangeError(`stages must be an integer in 1..${units} (one unit each at least), got ${stages}`);
  return Array.from({ length: stages }, (_, s) => ({
    first: Math.round((s * units) / stages),
    end: Math.round(((s + 1) * units) / stages),
  }));
}

/** Contiguous ranges over `stages` stages that minimise the costliest stage (exhaustive over cut points). */
export function balancedStages(costs: readonly number[], stages: number): StageRange[] {
  const n = costs.length;
  if (!(Number.isInteger(stages) && stages >= 1 && stages <= n)) throw new RangeError(`stages must be an integer in 1..${n} (one unit each at least), got ${stages}`);
  const prefix = costs.reduce<number[]>((p, c) => [...p, p[p.length - 1] + c], [0]);
  // best[s][i]: the smallest max-stage cost splitting units 0..i-1 into s stages; cut[s][i]: its last cut.
  const best = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(Infinity));
  const cut = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(0));
  best[0][0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let i = s; i <= n; i++) {
      for (let j = s - 1; j < i; j++) {
        const cost = Math.max(best[s - 1][j], prefix[i] - prefix[j]);
        if (cost < best[s][i]) {
          best[s][i] = cost;
          cut[s][i] = j;
        }
      }
    }
  }
  const ranges: StageRange[] = [];
  for (let s = stages, i = n; s > 0; s--) {
    ranges.unshift({ first: cut[s][i], end: i });
    i = cut[s][i];
  }
  return ranges;
}

/** Seconds per local step of each unit at `batchSize`, measured on a throwaway copy of the network and random data. */
export function measureUnitCosts(model: HeadedNetwork, strategy: SllStrategy, batchSize: number, repeats = 3): number[] {
  const probe = { ...model, network: cloneNetwork(model.network) };
  const units = probe.network.units;
  const costs = units.map((unit) => {
    const trainer = new SllTrainer(probe, { ...strategy, lr: 0 }, 1, { first: unit.index, end: unit.index + 1 });
    const shape = unit.index === 0 ? probe.network.spec.inputShape : units[unit.index - 1].outputShape;
    const times: number[] = [];
    for (let r = 0; r <= repeats; r++) {
      const started = performance.now();
      tf.tidy(() => {
        const x = tf.randomNormal([batchSize, ...shape]);
        const labels = tf.zeros([batchSize], 'int32') as tf.Tensor1D;
        const out = trainer.stepUnits(x, null, labels, 0);
        out.stats.dataSync();
        tf.dispose([out.h, out.v, out.stats]);
      });
      if (r > 0) times.push(performance.now() - started);
    }
    trainer.dispose();
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] / 1000;
  });
  probe.network.model.dispose();
  return costs;
}
