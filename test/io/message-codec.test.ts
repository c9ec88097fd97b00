/** The stages' wire and checkpoint format: plain data with typed arrays, as bytes and back. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CodecError, decodeMessage, encodeMessage } from '../../src/io/message-codec.js';

test('a message with typed arrays of every kind, nested and odd-sized, comes back equal, its arrays fresh and aligned', () => {
  const value = {
    type: 'step',
    seq: 7,
    h: new Float32Array([1.5, -2, Math.PI, NaN, Infinity]),
    v: null,
    y: new Int32Array([3, -1, 2 ** 31 - 1]),
    nested: { list: [new Uint8Array([1, 2, 3]), new Float64Array([1e-300, -0]), 'text', 4], empty: new Float32Array(0) },
    buffer: Buffer.from([9, 8, 7]),
    unicode: 'λ ✓',
  };
  const bytes = encodeMessage(value);
  const back = decodeMessage<typeof value>(bytes);
  assert.deepEqual(Array.from(back.h), Array.from(value.h));
  assert.ok(back.h instanceof Float32Array && back.y instanceof Int32Array);
  assert.deepEqual(back.y, value.y);
  assert.deepEqual(back.nested.list[0], new Uint8Array([1, 2, 3]));
  assert.ok(Object.is((back.nested.list[1] as Float64Array)[1], -0) && (back.nested.list[1] as Float64Array)[0] === 1e-300);
  assert.equal(back.nested.list[2], 'text');
  assert.equal((back.nested.empty as Float32Array).length, 0);
  assert.deepEqual(Array.from(back.buffer as unknown as Uint8Array), [9, 8, 7]);
  assert.equal(back.unicode, 'λ ✓');
  assert.equal(back.v, null);
  assert.notEqual(back.h.buffer, bytes.buffer, 'a copy, not a view of the message');
  // Decoding from an unaligned view of the bytes works too (a Redis reply is a slice of a larger buffer).
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  assert.deepEqual(decodeMessage<typeof value>(shifted.subarray(3)).y, value.y);
});

test('bytes that are not a whole message are refused with a CodecError', () => {
  const bytes = encodeMessage({ a: new Float32Array(100) });
  assert.throws(() => decodeMessage(bytes.subarray(0, bytes.length - 16)), (e: Error) => e instanceof CodecError && /truncated/.test(e.message));
  assert.throws(() => decodeMessage(new Uint8Array(4)), CodecError);
  assert.throws(() => decodeMessage(new TextEncoder().encode('{"not":"a message"}')), /bad magic/);
  assert.throws(() => encodeMessage({ d: new DataView(new ArrayBuffer(4)) }), CodecError);
});
