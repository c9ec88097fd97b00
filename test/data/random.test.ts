import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, bernoulliMask, keepThreshold, mixSeed, permutation, streamBits24 } from '../../src/data/random.js';

test('Rng is deterministic under a seed and next() stays in [0, 1)', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 1000; i++) {
    const v = a.next();
    assert.equal(v, b.next());
    assert.ok(v >= 0 && v < 1);
  }
  assert.notEqual(new Rng(1).next(), new Rng(2).next());
});

test('Rng.int(n) covers exactly 0..n-1', () => {
  const rng = new Rng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(rng.int(5));
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
});

test('permutation(n, seed) is a deterministic permutation of 0..n-1', () => {
  const p = permutation(100, 3);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(p, permutation(100, 3));
  assert.notDeepEqual(p, permutation(100, 4));
  assert.equal(permutation(0, 1).length, 0);
});

test('mixSeed is deterministic, order-sensitive and separates nearby inputs', () => {
  assert.equal(mixSeed(1, 2), mixSeed(1, 2));
  assert.notEqual(mixSeed(1, 2), mixSeed(2, 1));
  assert.notEqual(mixSeed(1), mixSeed(1, 0));
  const seeds = new Set<number>();
  for (let e = 0; e < 1000; e++) seeds.add(mixSeed(0, e));
  assert.equal(seeds.size, 1000);
  assert.notEqual(mixSeed(2 ** 40), mixSeed(0));
  for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
});

test('mixSeed rejects non-integers instead of truncating them', () => {
  assert.throws(() => mixSeed(1.5), RangeError);
});

/** SplitMix32's draw i of stream key in BigInt arithmetic modulo 2^32, written apart from the library's. */
function bits24Reference(key: number, i: number): number {
  const M = 2n ** 32n;
  let h = (BigInt(key) + BigInt(i) * 0x9e3779b9n) % M;
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) % M;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) % M;
  h ^= h >> 16n;
  return Number(h >> 8n);
}

test('streamBits24 is SplitMix32 in 32-bit arithmetic (BigInt reference), at large keys and indices too', () => {
  for (const key of [0, 1, 12345, 0x7fffffff, 0xffffffff, mixSeed(7, 3)]) {
    for (const i of [0, 1, 2, 1000, 65535, 65536, 3_000_000, 0x7fffffff]) {
      assert.equal(streamBits24(key, i), bits24Reference(key, i), `key ${key}, draw ${i}`);
    }
  }
});

test('bernoulliMask keeps at rate keep with the given value, the same for the same key, another for another key', () => {
  const n = 100_000;
  for (const keep of [0.5, 0.8, 0.1]) {
    const m = bernoulliMask(mixSeed(3, 9), n, keep, 2.5);
    const kept = m.filter((x) => x === 2.5).length;
    assert.equal(kept + m.filter((x) => x === 0).length, n, 'entries are value or 0');
    assert.ok(Math.abs(kept / n - keep) < 4 * Math.sqrt((keep * (1 - keep)) / n), `keep ${keep}: rate ${kept / n}`);
  }
  assert.deepEqual(bernoulliMask(5, 1000, 0.5, 1), bernoulliMask(5, 1000, 0.5, 1));
  assert.notDeepEqual(bernoulliMask(5, 1000, 0.5, 1), bernoulliMask(6, 1000, 0.5, 1));
  assert.equal(keepThreshold(1), 2 ** 24);
  assert.ok(bernoulliMask(5, 1000, 1, 1).every((x) => x === 1), 'keep 1 keeps everything');
  assert.throws(() => keepThreshold(0), /keep must be in \(0, 1\]/);
  assert.throws(() => keepThreshold(1.5), /keep must be in/);
});
