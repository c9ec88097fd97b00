import { readFileSync } from 'node:fs';
import { DataError } from './errors.js';

const UNSIGNED_BYTE = 0x08;

/** An IDX file's contents: its dimensions and its unsigned bytes, row-major. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Parses an IDX file (http://yann.lecun.com/exdb/mnist/) of unsigned bytes; `what` names the source in errors. */
export function parseIdx(buf: Uint8Array, what: string): IdxArray {
  if (buf.length < 4) throw new DataError(`${what}: truncated: expected at least 4 header bytes, got ${buf.length}`);
  const ndims = buf[3];
  if (buf[0] !== 0 || buf[1] !== 0 || buf[2] !== UNSIGNED_BYTE || ndims === 0) {
    throw new DataError(
      `${what}: bad magic 0x${hex(buf.subarray(0, 4))} (expected 0x0000080N: unsigned bytes, N >= 1 dimensions)`,
    );
  }
  const header = 4 + 4 * ndims;
  if (buf.length < header) throw new DataError(`${what}: truncated: expected at least ${header} header bytes, got ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = header + dims.reduce((a, b) => a * b, 1);
  if (buf.length < expected) throw new DataError(`${what}: truncated: expected ${expected} bytes, got ${buf.length}`);
  if (buf.length > expected) throw new DataError(`${what}: trailing data: expected ${expected} bytes, got ${buf.length}`);
  // A plain Uint8Array view (not a Buffer) so callers get the documented type without a copy.
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, expected - header) };
}

/** Reads and parses an IDX file of unsigned bytes; DataError names the file when it is missing or malformed. */
export function readIdxFile(path: string): IdxArray {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DataError(err.code === 'ENOENT' ? `IDX file not found: ${path}` : `cannot read IDX file ${path}: ${err.message}`);
  }
  return parseIdx(buf, path);
}
