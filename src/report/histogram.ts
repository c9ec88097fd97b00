/**
 * Histograms for the paper's Figure 5 (weights and activations of SLL against BP): equal-width bins over
 * a range, which two runs share when they are compared, so that their bars line up.
 */

/** Counts of values in `bins` equal-width bins from `lo` to `hi`. */
export interface Histogram {
  lo: number;
  hi: number;
  /** counts[b]: values in [lo + b w, lo + (b + 1) w), the last bin closed at hi; w = (hi - lo) / bins. */
  counts: number[];
  /** Values outside [lo, hi] or not finite, left out of the counts. */
  outside: number;
  total: number;
}

/** The smallest and largest finite value of each array, over all of them ([0, 0] when none is finite). */
export function finiteRange(...arrays: ArrayLike<number>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** A histogram of `values` in `bins` bins over [lo, hi] (default: the values' own finite range). */
export function histogram(values: ArrayLike<number>, bins: number, range: [number, number] = finiteRange(values)): Histogram {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  let [lo, hi] = range;
  if (!(hi >= lo)) throw new RangeError(`bad range [${lo}, ${hi}]`);
  if (hi === lo) {
    // One value everywhere: a bin of width 1 around it.
    lo -= 0.5;
    hi += 0.5;
  }
  const counts = new Array<number>(bins).fill(0);
  const scale = bins / (hi - lo);
  let outside = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) {
      outside++;
      continue;
    }
    counts[Math.min(bins - 1, Math.floor((v - lo) * scale))]++;
  }
  return { lo, hi, counts, outside, total: values.length };
}
