/** Convolution and pooling cases and float64 references shared by the native and wasm tests. */
import * as tf from '@tensorflow/tfjs';
import { input, rng, sizeOf, type Input } from './helpers.js';

export type ExplicitPad = [[number, number], [number, number], [number, number], [number, number]];
export type Pad = 'same' | 'valid' | number | ExplicitPad;

export interface ConvCase {
  n: number;
  h: number;
  w: number;
  c: number;
  co: number;
  k: [number, number];
  stride: [number, number];
  pad: Pad;
  dilation?: [number, number];
  rounding?: 'floor' | 'round' | 'ceil';
}

export function describeConv(c: ConvCase): string {
  const pad = Array.isArray(c.pad) ? JSON.stringify(c.pad) : String(c.pad);
  return `x [${c.n},${c.h},${c.w},${c.c}] k ${c.k.join('x')} -> ${c.co} stride ${c.stride} pad ${pad}` +
    (c.dilation ? ` dilation ${c.dilation}` : '') + (c.rounding ? ` rounding ${c.rounding}` : '');
}

/** Hand-picked cases: every kernel size 1..7, strides 1-3, the three padding kinds, batch 1..4. */
export const CONV_CASES: ConvCase[] = [
  { n: 1, h: 5, w: 5, c: 1, co: 1, k: [1, 1], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 6, w: 7, c: 3, co: 4, k: [1, 1], stride: [1, 1], pad: 'same' },
  { n: 2, h: 7, w: 6, c: 3, co: 4, k: [1, 1], stride: [2, 2], pad: 'valid' },
  { n: 3, h: 8, w: 8, c: 4, co: 5, k: [2, 2], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 9, w: 7, c: 2, co: 3, k: [2, 2], stride: [1, 1], pad: 'same' },
  { n: 2, h: 8, w: 8, c: 8, co: 8, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 3, h: 7, w: 9, c: 5, co: 6, k: [3, 3], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: 'same' },
  { n: 2, h: 10, w: 8, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 11, w: 10, c: 2, co: 3, k: [3, 3], stride: [3, 3], pad: 'same' },
  { n: 2, h: 8, w: 9, c: 3, co: 2, k: [3, 2], stride: [1, 2], pad: 'same' },
  { n: 4, h: 6, w: 6, c: 6, co: 7, k: [3, 3], stride: [1, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { n: 1, h: 7, w: 7, c: 3, co: 4, k: [3, 3], stride: [2, 2], pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
  { n: 2, h: 6, w: 7, c: 2, co: 3, k: [3, 3], stride: [1, 1], pad: 1 },
  { n: 2, h: 7, w: 7, c: 2, co: 3, k: [3, 3], stride: [2, 2], pad: 1, rounding: 'ceil' },
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [4, 4], stride: [2, 2], pad: 'same' },
  { n: 1, h: 10, w: 11, c: 3, co: 4, k: [5, 5], stride: [1, 1], pad: 'same' },
  { n: 2, h: 12, w: 12, c: 2, co: 3, k: [5, 5], stride: [2, 2], pad: 'valid' },
  { n: 1, h: 9, w: 10, c: 2, co: 2, k: [6, 6], stride: [3, 3], pad: 'same' },
  { n: 2, h: 12, w: 11, c: 3, co: 4, k: [7, 7], stride: [2, 2], pad: 'same' },
  { n: 1, h: 9, w: 9, c: 2, co: 3, k: [7, 7], stride: [1, 1], pad: 'valid' },
  { n: 2, h: 6, w: 6, c: 16, co: 8, k: [3, 3], stride: [1, 1], pad: 'same' },
  // 1x1 images: one tap of the window is ever inside the input (the pointwise shortcut), also with an
  // asymmetric pad that makes it a corner tap; 1xW: one row of taps (not the shortcut).
  { n: 3, h: 1, w: 1, c: 5, co: 4, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 2, h: 1, w: 1, c: 3, co: 2, k: [3, 3], stride: [1, 1], pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
  { n: 2, h: 1, w: 3, c: 3, co: 2, k: [3, 3], stride: [1, 1], pad: 'same' },
  // Small images, several per GEMM block of the input gradient.
  { n: 5, h: 2, w: 2, c: 4, co: 3, k: [3, 3], stride: [1, 1], pad: 'same' },
  // 16+ channels with windows over the padding: the regions that skip it (corners, edges, interior; whole
  // kernel rows or not; strided; asymmetric padding; 5x5; images smaller than the window).
  { n: 3, h: 4, w: 4, c: 16, co: 5, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 2, h: 7, w: 9, c: 16, co: 6, k: [3, 5], stride: [2, 1], pad: 'same' },
  { n: 2, h: 5, w: 5, c: 20, co: 4, k: [3, 3], stride: [1, 1], pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
  { n: 2, h: 6, w: 6, c: 16, co: 3, k: [5, 5], stride: [1, 1], pad: 'same' },
  { n: 2, h: 2, w: 3, c: 17, co: 3, k: [5, 5], stride: [1, 1], pad: 'same' },
  // Large enough (> 2M multiply-adds) for the multi-threaded path.
  { n: 64, h: 1, w: 1, c: 64, co: 64, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 40, h: 3, w: 3, c: 32, co: 32, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 4, h: 16, w: 16, c: 16, co: 24, k: [3, 3], stride: [1, 1], pad: 'same' },
  { n: 3, h: 17, w: 15, c: 12, co: 16, k: [3, 3], stride: [2, 2], pad: 'same' },
];

/** Forward-only: dilated convolutions (their gradients are not supported by tfjs). */
export const DILATED: ConvCase[] = [
  { n: 2, h: 9, w: 9, c: 3, co: 4, k: [3, 3], stride: [1, 1], pad: 'same', dilation: [2, 2] },
  { n: 1, h: 10, w: 9, c: 2, co: 3, k: [3, 2], stride: [1, 1], pad: 'valid', dilation: [2, 3] },
  { n: 2, h: 7, w: 8, c: 16, co: 3, k: [3, 3], stride: [1, 1], pad: 'same', dilation: [2, 3] },
];

/** A few more cases drawn at random (seeded) over the same ranges. */
export function randomCases(count: number, seed: number): ConvCase[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const cases: ConvCase[] = [];
  while (cases.length < count) {
    const kh = 1 + Math.floor(r() * 7);
    const kw = 1 + Math.floor(r() * 7);
    const s = pick([1, 2, 3]);
    const pad = pick<Pad>(['same', 'valid', [[0, 0], [Math.floor(r() * 3), Math.floor(r() * 3)], [Math.floor(r() * 3), Math.floor(r() * 3)], [0, 0]]]);
    const h = kh + Math.floor(r() * 8);
    const w = kw + Math.floor(r() * 8);
    cases.push({ n: 1 + Math.floor(r() * 3), h, w, c: 1 + Math.floor(r() * 6), co: 1 + Math.floor(r() * 6), k: [kh, kw], stride: [s, pick([1, s])], pad });
  }
  return cases;
}

export function convInputs(c: ConvCase, seed: number): { x: Input; w: Input } {
  return { x: input([c.n, c.h, c.w, c.c], seed), w: input([c.k[0], c.k[1], c.c, c.co], seed + 1) };
}

export function conv(c: ConvCase) {
  return (x: tf.Tensor, w: tf.Tensor) =>
    tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad, 'NHWC', c.dilation ?? 1, c.rounding);
}

export function outShape(c: ConvCase): number[] {
  return tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.c], [c.k[0], c.k[1], c.c, c.co], c.stride, c.dilation ?? 1, c.pad, c.rounding).outShape;
}

export interface PoolCase {
  shape: [number, number, number, number];
  size: [number, number];
  stride: [number, number];
  pad: 'same' | 'valid' | number;
  rounding?: 'floor' | 'round' | 'ceil';
}

export const POOL_CASES: PoolCase[] = [
  { shape: [2, 8, 8, 3], size: [2, 2], stride: [2, 2], pad: 'valid' },
  { shape: [3, 7, 9, 5], size: [2, 2], stride: [2, 2], pad: 'valid' },
  { shape: [3, 7, 9, 5], size: [2, 2], stride: [2, 2], pad: 'same' },
  { shape: [1, 7, 7, 1], size: [3, 3], stride: [1, 1], pad: 'same' },
  { shape: [2, 8, 6, 4], size: [3, 3], stride: [1, 1], pad: 'valid' },
  { shape: [2, 9, 9, 6], size: [3, 3], stride: [2, 2], pad: 'same' },
  { shape: [2, 8, 8, 6], size: [3, 3], stride: [2, 2], pad: 'same' },
  { shape: [2, 9, 8, 6], size: [3, 3], stride: [2, 2], pad: 'valid' },
  { shape: [1, 10, 9, 2], size: [2, 3], stride: [1, 2], pad: 'same' },
  { shape: [2, 6, 6, 3], size: [3, 3], stride: [2, 2], pad: 1, rounding: 'ceil' },
  { shape: [2, 5, 5, 3], size: [1, 1], stride: [1, 1], pad: 'valid' },
  // The conv-unit head: average each 16x16 quarter of a 32x32 map.
  { shape: [2, 32, 32, 8], size: [16, 16], stride: [16, 16], pad: 'valid' },
  // Large enough for the multi-threaded path.
  { shape: [8, 32, 32, 32], size: [2, 2], stride: [2, 2], pad: 'valid' },
  { shape: [8, 32, 32, 32], size: [3, 3], stride: [1, 1], pad: 'same' },
];

export function describePool(c: PoolCase): string {
  return `[${c.shape}] window ${c.size.join('x')} stride ${c.stride} pad ${c.pad}${c.rounding ? ` ${c.rounding}` : ''}`;
}

export function poolInfo(c: PoolCase) {
  return tf.backend_util.computePool2DInfo(c.shape, c.size, c.stride, 1, c.pad, c.rounding);
}

/** True when some window of `c` reaches into padding (where cpu's AvgPoolGrad is off). */
export function hasPartialWindows(c: PoolCase): boolean {
  const info = poolInfo(c);
  const partial = (out: number, inSize: number, size: number, stride: number, pad: number) => {
    for (let o = 0; o < out; o++) {
      const start = o * stride - pad;
      if (start < 0 || start + size > inSize) return true;
    }
    return false;
  };
  return partial(info.outHeight, info.inHeight, info.filterHeight, info.strideHeight, info.padInfo.top) ||
    partial(info.outWidth, info.inWidth, info.filterWidth, info.strideWidth, info.padInfo.left);
}

export const maxPool = (c: PoolCase) => (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, c.size, c.stride, c.pad, c.rounding);
export const avgPool = (c: PoolCase) => (x: tf.Tensor) => tf.avgPool(x as tf.Tensor4D, c.size, c.stride, c.pad, c.rounding);

export function gradOf(pool: (x: tf.Tensor) => tf.Tensor) {
  return (x: tf.Tensor, dy: tf.Tensor) => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(pool(a), dy)))(x);
}

/** Calls f(offset) for the input offsets (channel 0) of window (b, oh, ow) inside the input, row-major. */
export function forWindow(c: PoolCase, b: number, oh: number, ow: number, f: (offset: number) => void): void {
  const info = poolInfo(c);
  const [, h, w, ch] = c.shape;
  for (let kh = 0; kh < info.filterHeight; kh++) {
    const ih = oh * info.strideHeight - info.padInfo.top + kh;
    if (ih < 0 || ih >= h) continue;
    for (let kw = 0; kw < info.filterWidth; kw++) {
      const iw = ow * info.strideWidth - info.padInfo.left + kw;
      if (iw >= 0 && iw < w) f(((b * h + ih) * w + iw) * ch);
    }
  }
}

/** float64 max-pooling gradient: each window's dy goes to its first maximum. */
export function maxPoolGradReference(c: PoolCase, x: Float32Array, dy: Float32Array): Float64Array {
  const info = poolInfo(c);
  const [n, , , ch] = c.shape;
  const dx = new Float64Array(sizeOf(c.shape));
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < info.outHeight; oh++) {
      for (let ow = 0; ow < info.outWidth; ow++) {
        for (let d = 0; d < ch; d++) {
          let best = -Infinity;
          let at = -1;
          forWindow(c, b, oh, ow, (o) => {
            if (x[o + d] > best) {
              best = x[o + d];
              at = o + d;
            }
          });
          if (at >= 0) dx[at] += dy[((b * info.outHeight + oh) * info.outWidth + ow) * ch + d];
        }
      }
    }
  }
  return dx;
}

/** float64 average-pooling gradient: each window's dy spread evenly over its elements inside the input. */
export function avgPoolGradReference(c: PoolCase, dy: Float32Array): Float64Array {
  const info = poolInfo(c);
  const [n, , , ch] = c.shape;
  const dx = new Float64Array(sizeOf(c.shape));
  for (let b = 0; b < n; b++) {
    for (let oh = 0; oh < info.outHeight; oh++) {
      for (let ow = 0; ow < info.outWidth; ow++) {
        const cells: number[] = [];
        forWindow(c, b, oh, ow, (o) => cells.push(o));
        for (let d = 0; d < ch; d++) {
          const g = dy[((b * info.outHeight + oh) * info.outWidth + ow) * ch + d] / cells.length;
          for (const cell of cells) dx[cell + d] += g;
        }
      }
    }
  }
  return dx;
}

