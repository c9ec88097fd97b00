/** Seeded PRNG (mulberry32): tiny, fast and good enough for shuffling and augmentation offsets. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in 0..n-1. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Seeded Fisher-Yates shuffle of 0..n-1. */
export function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

// murmur3 finaliser: full avalanche, so nearby inputs (epoch 1 vs 2) give unrelated seeds.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Order-sensitive hash of integers into one 32-bit seed, e.g. mixSeed(seed, epoch, step). */
export function mixSeed(...parts: number[]): number {
  let h = fmix32(0x9e3779b9 ^ parts.length);
  for (const p of parts) {
    // Reject fractions and huge values rather than silently truncating them into colliding seeds.
    if (!Number.isSafeInteger(p)) throw new RangeError(`mixSeed: expected safe integers, got ${p}`);
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32(Math.imul(h ^ fmix32(lo), 0x9e3779b1) + hi);
  }
  return h;
}

/**
 * Draw `i` of the counter-based stream `key`, as 24 uniform bits (0 <= bits < 2^24): the murmur3
 * finaliser of key + i * 0x9e3779b9 (SplitMix32's construction). Any draw is computed on its own, in
 * 32-bit integer arithmetic only, so a GPU kernel (gpu/masked-projection.ts) gives the same bits.
 */
export function streamBits24(key: number, i: number): number {
  return fmix32((key + Math.imul(i, 0x9e3779b9)) >>> 0) >>> 8;
}

/** A draw keeps its entry when its 24 bits are below this: floor(keep * 2^24) (keep 1: always). */
export function keepThreshold(keep: number): number {
  if (!(keep > 0 && keep <= 1)) throw new RangeError(`keep must be in (0, 1], got ${keep}`);
  return Math.floor(keep * 2 ** 24);
}

/** `size` Bernoulli(keep) draws of stream `key`: `value` where kept, 0 elsewhere. */
export function bernoulliMask(key: number, size: number, keep: number, value: number): Float32Array {
  const threshold = keepThreshold(keep);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) if (streamBits24(key, i) < threshold) out[i] = value;
  return out;
}
