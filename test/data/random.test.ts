import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, mixSeed, permutation } from '../../src/data/random.js';

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
