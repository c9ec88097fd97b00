import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/** A fresh temp dir, removed when the calling test file finishes. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sll-data-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Bytes of an unsigned-byte IDX file: magic 0x000008NN, big-endian uint32 dims, then data. */
export function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x0800 | dims.length, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

/** Deterministic pseudo-random bytes for fixtures. */
export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (Math.imul(i + 1, 2654435761) ^ Math.imul(seed + 7, 40503)) >>> 24;
  return out;
}
