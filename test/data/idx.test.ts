import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataError } from '../../src/data/errors.js';
import { parseIdx } from '../../src/data/idx.js';
import { readIdxFile } from '../../src/data/mnist.js';
import { bytes, idxBytes, tempDir } from './helpers.js';

const dir = tempDir();

test('readIdxFile returns the dims and data of an unsigned-byte IDX file', () => {
  const data = bytes(2 * 3 * 4, 1);
  const path = join(dir, 'ok-idx3-ubyte');
  writeFileSync(path, idxBytes([2, 3, 4], data));
  const idx = readIdxFile(path);
  assert.deepEqual(idx.dims, [2, 3, 4]);
  assert.deepEqual(idx.data, data);
});

test('parseIdx reads 1-D (label) files', () => {
  assert.deepEqual(parseIdx(idxBytes([3], [5, 0, 9]), 'labels'), { dims: [3], data: new Uint8Array([5, 0, 9]) });
});

test('a truncated file is rejected with a message saying truncated and naming the file', () => {
  const path = join(dir, 'short-idx1-ubyte');
  writeFileSync(path, idxBytes([10], bytes(10, 2)).subarray(0, 12));
  assert.throws(() => readIdxFile(path), (e: Error) => {
    assert.ok(e instanceof DataError);
    assert.match(e.message, /truncated: expected 18 bytes, got 12/);
    assert.ok(e.message.includes(path));
    return true;
  });
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0]), 'hdr'), /hdr: truncated/);
});

test('a file longer than its header says is rejected', () => {
  const buf = new Uint8Array([...idxBytes([2], [1, 2]), 3]);
  assert.throws(() => parseIdx(buf, 'long'), (e: Error) => e instanceof DataError && /expected 10 bytes, got 11/.test(e.message));
});

test('a wrong magic number (e.g. float data) is rejected as bad magic', () => {
  const buf = idxBytes([2], [1, 2]);
  buf[2] = 0x0d;
  assert.throws(() => parseIdx(buf, 'floats'), (e: Error) => {
    assert.ok(e instanceof DataError);
    assert.match(e.message, /^floats: bad magic 0x00000d01 \(expected 0x0000080N/);
    return true;
  });
  assert.throws(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 0]), 'x'), /bad magic/);
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 8, 0]), 'x'), /bad magic/);
});

test('a missing file is rejected with a DataError naming the path', () => {
  const path = join(dir, 'nope-idx3-ubyte');
  assert.throws(() => readIdxFile(path), (e: Error) => e instanceof DataError && e.message === `IDX file not found: ${path}`);
});
