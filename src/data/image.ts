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

/** Keeps the first three channels (RGBA -> RGB); replicates a single one (gray -> RGB). */
export function toRgb(img: RawImage): RawImage {
  const { width, height, channels, data } = img;
  if (channels === 3) return img;
  if (channels < 1) throw new RangeError(`toRgb: bad channel count ${channels}`);
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    for (let ch = 0; ch < 3; ch++) out[3 * p + ch] = data[p * channels + (channels >= 3 ? ch : 0)];
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
