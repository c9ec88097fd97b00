/** Decoding JPEG/PNG files to RGB (pure JS: jpeg-js, pngjs) and resizing. */
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DataError } from './errors.js';

/** An 8-bit image, row-major HWC with `channels` values per pixel. */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const startsWith = (buf: Uint8Array, magic: number[]) => buf.length >= magic.length && magic.every((b, i) => buf[i] === b);

/**
 * Decodes a JPEG or PNG (recognised by content, not by file name) to 3-channel RGB: grayscale is
 * replicated, alpha dropped, CMYK/YCCK converted, 16-bit PNG scaled to 8 bits. `what` (a file name)
 * prefixes the DataError raised for anything else or for corrupt data.
 */
export function decodeImage(buf: Uint8Array, what: string): RawImage {
  let img: RawImage;
  try {
    if (startsWith(buf, [0xff, 0xd8, 0xff])) {
      // formatAsRGBA false: 3 values per pixel whatever the JPEG's components.
      const d = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
      img = { width: d.width, height: d.height, channels: 3, data: d.data };
    } else if (startsWith(buf, PNG_MAGIC)) {
      // pngjs always gives 8-bit RGBA.
      const d = pngjs.PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
      img = { width: d.width, height: d.height, channels: 4, data: new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength) };
    } else {
      throw new DataError(`${what}: not a JPEG or PNG image`);
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`${what}: corrupt or unsupported image: ${(e as Error).message ?? e}`);
  }
  const { width, height, data } = img;
  if (!(width > 0 && height > 0) || data.length < width * height * img.channels) {
    throw new DataError(`${what}: corrupt image: ${width}x${height} with ${data.length} bytes of pixels`);
  }
  return img.channels === 3 ? img : toRgb(img);
}

/** Reads `length` bytes of an open file from `position` (fewer at its end). */
export type ReadAt = (position: number, length: number) => Uint8Array;

const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);
const PNG_IEND = [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];

/**
 * Checks a JPEG's or PNG's structure without decoding its pixels: the signature, the header that gives
 * its size (JPEG frame header, PNG IHDR) and the end marker (JPEG EOI near the end, PNG IEND last), which
 * a truncated file lacks. Returns width and height; throws DataError prefixed with `what` for anything else.
 */
export function checkImageHeader(size: number, readAt: ReadAt, what: string): { width: number; height: number } {
  const fail = (problem: string): never => {
    throw new DataError(`${what}: ${problem}`);
  };
  const head = readAt(0, Math.min(size, 64));
  const tail = readAt(Math.max(0, size - 32), Math.min(size, 32));
  const be16 = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];
  const be32 = (b: Uint8Array, i: number) => ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
  if (startsWith(head, PNG_MAGIC)) {
    if (size < 8 + 25 + 12) fail(`truncated PNG (${size} bytes)`);
    if (be32(head, 8) !== 13 || String.fromCharCode(...head.subarray(12, 16)) !== 'IHDR') fail('corrupt PNG: no IHDR header');
    const width = be32(head, 16);
    const height = be32(head, 20);
    if (!(width > 0 && height > 0)) fail(`corrupt PNG: size ${width}x${height}`);
    if (![1, 2, 4, 8, 16].includes(head[24]) || ![0, 2, 3, 4, 6].includes(head[25])) fail(`corrupt PNG: bit depth ${head[24]}, colour type ${head[25]}`);
    if (!PNG_IEND.every((b, i) => tail[tail.length - 12 + i] === b)) fail('truncated PNG: it does not end with its IEND chunk');
    return { width, height };
  }
  if (startsWith(head, [0xff, 0xd8, 0xff])) {
    let pos = 2;
    for (;;) {
      const m = readAt(pos, 10);
      if (m.length < 4) fail('truncated JPEG: no frame header');
      if (m[0] !== 0xff) fail(`corrupt JPEG: no marker at byte ${pos}`);
      const marker = m[1];
      if (marker === 0xff) {
        pos += 1; // fill byte
        continue;
      }
      if (JPEG_SOF.has(marker)) {
        if (m.length < 10) fail('truncated JPEG: frame header cut short');
        const height = be16(m, 5);
        const width = be16(m, 7);
        if (!(width > 0 && height > 0)) fail(`corrupt JPEG: size ${width}x${height}`);
        if (![1, 3, 4].includes(m[9])) fail(`unsupported JPEG: ${m[9]} components`);
        const hasEoi = (b: Uint8Array) => {
          for (let i = b.length - 2; i >= 0; i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
          return false;
        };
        // Near the end, unless data follows the image (a phone's "motion photo" trailer): then anywhere.
        if (!hasEoi(tail) && !hasEoi(readAt(pos, size - pos))) fail('truncated JPEG: no end-of-image marker');
        return { width, height };
      }
      if (marker === 0xda || marker === 0xd9) fail('corrupt JPEG: no frame header before the image data');
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        pos += 2;
        continue;
      }
      pos += 2 + be16(m, 2);
    }
  }
  return fail(size === 0 ? 'empty file, not a JPEG or PNG image' : 'not a JPEG or PNG image');
}

/**
 * RGB pixels: gray replicated (gray -> RGB); an alpha channel (gray + alpha, RGBA) composited over black,
 * as a transparent background means nothing there (as the web page's drawing pad, and MNIST's zeros).
 */
export function toRgb(img: RawImage): RawImage {
  const { width, height, channels, data } = img;
  if (channels === 3) return img;
  if (channels < 1 || channels > 4) throw new RangeError(`toRgb: bad channel count ${channels}`);
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const colour = channels >= 3;
  const alpha = channels === 2 || channels === 4;
  for (let p = 0; p < n; p++) {
    const a = alpha ? data[p * channels + channels - 1] : 255;
    for (let ch = 0; ch < 3; ch++) {
      const v = data[p * channels + (colour ? ch : 0)];
      out[3 * p + ch] = a === 255 ? v : Math.round((v * a) / 255);
    }
  }
  return { width, height, channels: 3, data: out };
}

/** Per output index, the source indices and weights (summing to 1) along one axis. */
interface Taps {
  first: Int32Array;
  count: Int32Array;
  /** count[o] weights of output o starting at o * stride. */
  weight: Float64Array;
  stride: number;
}

/**
 * Area (box) weights when shrinking: output o averages the source span [o*s, (o+1)*s) with s = in/out,
 * partial pixels weighted by overlap. Bilinear weights when enlarging (pixel centres aligned, edges clamped).
 */
function taps(inN: number, outN: number): Taps {
  const s = inN / outN;
  const stride = s > 1 ? Math.ceil(s) + 1 : 2;
  const first = new Int32Array(outN);
  const count = new Int32Array(outN);
  const weight = new Float64Array(outN * stride);
  for (let o = 0; o < outN; o++) {
    if (s >= 1) {
      const lo = o * s;
      const hi = Math.min((o + 1) * s, inN);
      const a = Math.floor(lo);
      const b = Math.min(Math.ceil(hi), inN);
      first[o] = a;
      count[o] = b - a;
      for (let i = a; i < b; i++) weight[o * stride + i - a] = (Math.min(i + 1, hi) - Math.max(i, lo)) / s;
    } else {
      const x = Math.min(Math.max((o + 0.5) * s - 0.5, 0), inN - 1);
      const a = Math.floor(x);
      const t = x - a;
      first[o] = a;
      if (t > 0 && a + 1 < inN) {
        count[o] = 2;
        weight[o * stride] = 1 - t;
        weight[o * stride + 1] = t;
      } else {
        count[o] = 1;
        weight[o * stride] = 1;
      }
    }
  }
  return { first, count, weight, stride };
}

/**
 * Resizes an HWC image to outW x outH (area average when shrinking, bilinear when enlarging, per axis),
 * writing rounded bytes to `out` (allocated when not given). A constant image stays that constant and
 * every output value lies between the input's smallest and largest.
 */
export function resizeImage(img: RawImage, outW: number, outH: number, out?: Uint8Array): Uint8Array {
  const { width: w, height: h, channels: c, data } = img;
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) {
    throw new RangeError(`resizeImage: bad output size ${outW}x${outH}`);
  }
  const dst = out ?? new Uint8Array(outW * outH * c);
  if (dst.length < outW * outH * c) throw new RangeError(`resizeImage: out needs ${outW * outH * c} bytes, got ${dst.length}`);
  if (w === outW && h === outH) {
    dst.set(data.subarray(0, w * h * c));
    return dst;
  }
  const tx = taps(w, outW);
  const ty = taps(h, outH);
  // Horizontal pass: h rows of outW pixels, as floats.
  const mid = new Float64Array(h * outW * c);
  for (let i = 0; i < h; i++) {
    for (let o = 0; o < outW; o++) {
      const a = tx.first[o];
      const base = o * tx.stride;
      for (let ch = 0; ch < c; ch++) {
        let v = 0;
        for (let k = 0; k < tx.count[o]; k++) v += tx.weight[base + k] * data[(i * w + a + k) * c + ch];
        mid[(i * outW + o) * c + ch] = v;
      }
    }
  }
  // Vertical pass, rounded and clamped (rounding error could step just outside 0..255).
  for (let o = 0; o < outH; o++) {
    const a = ty.first[o];
    const base = o * ty.stride;
    for (let j = 0; j < outW * c; j++) {
      let v = 0;
      for (let k = 0; k < ty.count[o]; k++) v += ty.weight[base + k] * mid[(a + k) * outW * c + j];
      dst[o * outW * c + j] = Math.min(255, Math.max(0, Math.round(v)));
    }
  }
  return dst;
}
