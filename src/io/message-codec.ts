/**
 * Plain data with typed arrays in it, as bytes and back: what the pipeline's stages send each other through
 * a broker (minibatches, weights, optimizer states) and what a stage's checkpoint holds. The layout is a
 * magic, the length of a JSON header, the header (the value with each typed array replaced by a reference)
 * and the arrays' bytes, each 8-byte aligned. Browser-safe: TextEncoder and typed arrays only.
 */

const MAGIC = 0x4d4c4c53; // 'SLLM', little-endian
const ARRAY_TYPES = {
  Float32Array,
  Float64Array,
  Int32Array,
  Uint32Array,
  Int16Array,
  Uint16Array,
  Int8Array,
  Uint8Array,
} as const;
type ArrayTypeName = keyof typeof ARRAY_TYPES;
type TypedArray = InstanceType<(typeof ARRAY_TYPES)[ArrayTypeName]>;

/** Bytes that are not an encoded message (truncated, or another format). */
export class CodecError extends Error {
  override name = 'CodecError';
}

function arrayTypeOf(value: unknown): ArrayTypeName | null {
  if (value instanceof ArrayBuffer || value instanceof DataView) throw new CodecError(`cannot encode a ${value.constructor.name}: give a typed array`);
  if (!ArrayBuffer.isView(value)) return null;
  for (const name of Object.keys(ARRAY_TYPES) as ArrayTypeName[]) {
    // A Node Buffer is a Uint8Array: it travels as one.
    if (value instanceof ARRAY_TYPES[name]) return name;
  }
  throw new CodecError(`cannot encode a ${value.constructor.name}`);
}

const align8 = (n: number) => (n + 7) & ~7;

/** `value` (JSON-like data whose leaves may be typed arrays) as one byte array. */
export function encodeMessage(value: unknown): Uint8Array {
  const arrays: TypedArray[] = [];
  const header = JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
    // JSON.stringify hands replacers a Buffer's toJSON(); read the holder's own property instead.
    const raw = (this as Record<string, unknown>)[key];
    const type = arrayTypeOf(raw);
    if (type == null) return v;
    arrays.push(raw as TypedArray);
    return { $array: type, index: arrays.length - 1, length: (raw as TypedArray).length };
  });
  const headerBytes = new TextEncoder().encode(header);
  let size = align8(8 + headerBytes.length);
  const offsets = arrays.map((a) => {
    const at = size;
    size = align8(size + a.byteLength);
    return at;
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, headerBytes.length, true);
  out.set(headerBytes, 8);
  arrays.forEach((a, k) => out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offsets[k]));
  return out;
}

/** The value `encodeMessage` encoded, its typed arrays as fresh copies. */
export function decodeMessage<T = unknown>(bytes: Uint8Array): T {
  if (bytes.byteLength < 8) throw new CodecError(`a message of ${bytes.byteLength} bytes is too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new CodecError('not an sll message (bad magic)');
  const headerLength = view.getUint32(4, true);
  if (8 + headerLength > bytes.byteLength) throw new CodecError('truncated message (header)');
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
  let at = align8(8 + headerLength);
  // The arrays' bytes follow in index order: their offsets come from the lengths the header lists.
  interface Ref {
    $array: ArrayTypeName;
    index: number;
    length: number;
  }
  const isRef = (v: unknown): v is Ref => v != null && typeof v === 'object' && '$array' in v;
  const refs: Ref[] = [];
  JSON.parse(header, (_k, v: unknown) => {
    if (isRef(v)) {
      if (!(v.$array in ARRAY_TYPES)) throw new CodecError(`unknown array type ${String(v.$array)}`);
      refs[v.index] = v;
    }
    return v;
  });
  const offsets = refs.map((ref) => {
    const start = at;
    at = align8(at + ref.length * ARRAY_TYPES[ref.$array].BYTES_PER_ELEMENT);
    return start;
  });
  if (at > align8(bytes.byteLength)) throw new CodecError('truncated message (arrays)');
  const source = bytes.buffer as ArrayBuffer;
  return JSON.parse(header, (_k, v: unknown) => {
    if (!isRef(v)) return v;
    const Type = ARRAY_TYPES[v.$array];
    const start = bytes.byteOffset + offsets[v.index];
    return new Type(source.slice(start, start + v.length * Type.BYTES_PER_ELEMENT));
}) as T;
}
