/**
 * The `native` tfjs backend: tfjs's `cpu` backend (a subclass of its MathBackendCPU, sharing its storage
 * format: one JS typed array per tensor) with the kernels that dominate MLP and CNN training steps replaced
 * by the C++ addon in native/ (OpenBLAS GEMMs, NHWC convolutions as blocked im2col + GEMM, pooling,
 * float32 elementwise and reduction loops, transposes, a fused Adam update).
 *
 * Every `cpu` kernel is registered under `native` too, so any op works; a replaced kernel falls back to
 * the `cpu` one for what it does not handle (other dtypes, broadcasts it cannot collapse to 4 dims,
 * reductions over non-adjacent axes, prelu, NCHW convolutions).
 *
 * One deliberate difference from `cpu`: AvgPoolGrad divides each window's gradient by the number of window
 * elements inside the input, as the forward pass does; tfjs's cpu kernel divides by the full window size,
 * which is wrong for windows that overlap 'same' padding.
 *
 * Storage rules (see shared/notes/engine-measurements.md): a tensor labelled float32 may hold an
 * Int32Array or Uint8Array (cpu's Cast to float32 only relabels), so every input is checked and converted;
 * storage is shared and reference counted, so kernels always write fresh arrays (only the Adam optimizer
 * writes in place, and only when the reference count is 1).
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { backend_util } from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { GELU_GRAD_KERNEL, GELU_KERNEL, LAYER_NORM_GRAD_KERNEL, LAYER_NORM_KERNEL } from '../models/transformer-ops.js';
import { ACTIVATION_BIAS_GRAD_KERNEL, BATCH_NORM_TRAIN_GRAD_KERNEL, BATCH_NORM_TRAIN_KERNEL, CONV2D_KERNEL, DENSE_KERNEL } from '../models/fused-layers.js';

export const NATIVE_BACKEND_NAME = 'native';

/** The addon's functions (native/src/addon.cc). Arrays are used in place; lengths are checked there. */
export interface NativeAddon {
  sgemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
    aOffset: number, bOffset: number, cOffset: number,
  ): void;
  sgemmBatched(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, aOffset: number, lda: number, strideA: number,
    B: Float32Array, bOffset: number, ldb: number, strideB: number,
    beta: number, C: Float32Array, cOffset: number, ldc: number, strideC: number, batch: number,
  ): void;
  matmul(
    A: Float32Array, B: Float32Array, C: Float32Array, batch: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, strideA: number, strideB: number,
    bias: Float32Array | null, biasMode: number, activation: number, alpha: number,
  ): void;
  /** C (batch x M x N, dense) = act(C + bias), in place. */
  epilogue(
    C: Float32Array, batch: number, M: number, N: number,
    bias: Float32Array | null, biasMode: number, activation: number, alpha: number,
  ): void;
  setThreads(n: number): void;
  getThreads(): number;
  binary(
    op: number, a: Float32Array, b: Float32Array, out: Float32Array,
    d0: number, d1: number, d2: number, d3: number,
    sa0: number, sa1: number, sa2: number, sa3: number,
    sb0: number, sb1: number, sb2: number, sb3: number,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  reduce(op: number, x: Float32Array, out: Float32Array, pre: number, red: number, post: number): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, log: boolean): void;
  layerNorm(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, mean: Float32Array, rstd: Float32Array,
    rows: number, cols: number, epsilon: number,
  ): void;
  layerNormGrad(
    dy: Float32Array, x: Float32Array, gamma: Float32Array, mean: Float32Array, rstd: Float32Array,
    dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, rows: number, cols: number,
  ): void;
  gelu(x: Float32Array, y: Float32Array): void;
  /**
   * Eq. (5) of one unit: logits v [B, K], labels [B], parent logits [B, K] or null; writes total [1], the stats
   * row [prediction, alignment, total, correct] [4] and dtotal/dv [B, K] (native/src/fused.h).
   */
  unitLoss(
    v: Float32Array, labels: Int32Array, parent: Float32Array | null, B: number, K: number, lambda: number,
    total: Float32Array, stats: Float32Array, grad: Float32Array,
  ): void;
  /** dz = dy where y > 0 (else 0) over [rows, cols]; db (or null) = dz summed over rows. */
  reluBiasGrad(dy: Float32Array, y: Float32Array, dz: Float32Array, db: Float32Array | null, rows: number, cols: number): void;
  /** Batch norm over the rows of x [rows, cols] in training: y, and each column's mean and biased variance. */
  batchNormTrain(
    x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array,
    rows: number, cols: number, epsilon: number,
  ): void;
  /** Its backward pass: dx (through the batch statistics too), dgamma and dbeta. */
  batchNormTrainGrad(
    dy: Float32Array, x: Float32Array, gamma: Float32Array, mean: Float32Array, variance: Float32Array,
    dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, rows: number, cols: number, epsilon: number,
  ): void;
  /** Batch norm with given per-column statistics; gamma and beta may be null (1 and 0). */
  batchNormInfer(
    x: Float32Array, mean: Float32Array, variance: Float32Array, gamma: Float32Array | null, beta: Float32Array | null,
    y: Float32Array, rows: number, cols: number, epsilon: number,
  ): void;
  geluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  adam(
    param: Float32Array, m: Float32Array, v: Float32Array, grad: Float32Array,
    lr: number, beta1: number, beta2: number, eps: number, step: number,
    paramOut?: Float32Array | null, mOut?: Float32Array | null, vOut?: Float32Array | null,
    biasCorrection1?: number, biasCorrection2?: number,
  ): void;
  blasConfig(): string;
  /**
   * NHWC convolution y = act(conv(x, w) + bias); `geom` is a convGeometry() array. bias: null, [CO]
   * (biasMode 1) or a scalar (biasMode 4).
   */
  conv2d(
    x: Float32Array, w: Float32Array, y: Float32Array, geom: Int32Array,
    bias: Float32Array | null, biasMode: number, activation: number, alpha: number,
  ): void;
  /** dw (overwritten) = the filter gradient of conv2d. */
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, geom: Int32Array): void;
  /** dx (overwritten) = the input gradient of conv2d. */
  conv2dBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, geom: Int32Array): void;
  /** op 0: max pooling, 1: average pooling (padding not counted). */
  pool2d(op: number, x: Float32Array, y: Float32Array, geom: Int32Array): void;
  /** dx (overwritten) of pool2d; x (the forward input) is needed for max pooling only. */
  pool2dBackprop(op: number, x: Float32Array | null, dy: Float32Array, dx: Float32Array, geom: Int32Array): void;
}

// ---- Loading the addon ---------------------------------------------------------------------------

/** The package root: this file is compiled to dist/src/native/backend.js. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Where `node native/build.mjs` (node-gyp) puts the addon; SLL_NATIVE_ADDON names another build. */
export const ADDON_PATH =
  process.env.SLL_NATIVE_ADDON ?? path.join(PACKAGE_ROOT, 'native', 'build', 'Release', 'sll_native.node');

let addon: NativeAddon | null = null;
let loadError: string | null = null;

/** Loads native/build/Release/sll_native.node once; says why not when it cannot. */
export function loadNativeAddon(): { ok: true } | { ok: false; reason: string } {
  if (addon) return { ok: true };
  if (loadError != null) return { ok: false, reason: loadError };
  if (!existsSync(ADDON_PATH)) {
    loadError = `native addon not built: ${ADDON_PATH} is missing (build it with: node native/build.mjs)`;
    return { ok: false, reason: loadError };
  }
  try {
    // OpenBLAS reads this when it loads with the addon. Its idle worker threads spin for 2^28 cycles by
    // default after every threaded GEMM, taking the core our own kernel threads run on next (a VGG-11
    // SLL step at 2 threads: ~175 -> ~140 ms with 2^4); the MLP step, all OpenBLAS, is unchanged. A
    // value the user sets is kept.
    process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
    const require = createRequire(import.meta.url);
    addon = require(ADDON_PATH) as NativeAddon;
    return { ok: true };
  } catch (e) {
    loadError = `native addon ${ADDON_PATH} failed to load: ${(e as Error).message}`;
    return { ok: false, reason: loadError };
  }
}

/** The loaded addon; throws with the load error when it is missing. */
export function nativeAddon(): NativeAddon {
  const r = loadNativeAddon();
  if (!r.ok) throw new Error(r.reason);
  return addon!;
}

/** Sets the OpenBLAS thread count (per process: shared by every worker thread). */
export function setNativeThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`thread count must be a positive integer, got ${n}`);
  nativeAddon().setThreads(n);
}

/** The OpenBLAS thread count, or 0 when the addon is not available. */
export function nativeThreads(): number {
  return loadNativeAddon().ok ? addon!.getThreads() : 0;
}

// ---- The backend ---------------------------------------------------------------------------------

/** Arrays this long (128 KiB) and longer are recycled by the backend's pool; shorter ones come from malloc cheaply. */
const POOL_MIN_LENGTH = 32 * 1024;
/**
 * The pool keeps free arrays up to this many bytes, or up to the most bytes of its arrays ever in use at once
 * if that is more (per backend, so per worker thread).
 */
const POOL_MIN_CAP_BYTES = 512 * 1024 * 1024;

/**
 * tfjs's cpu backend with the native kernels, and a pool of the large Float32Arrays those kernels write.
 *
 * Why the pool: a fresh multi-megabyte array costs a page fault per 4 KiB page the first time a kernel writes
 * it (a 4 MiB weight gradient: ~2 ms; with two threads writing, the faults serialise), and a training step
 * makes the same arrays every step. So the kernels take their outputs from `allocFloat32`, and an array goes
 * back to the pool when the last tensor whose storage is in its buffer is disposed.
 *
 * How much it keeps: free arrays up to the most bytes of pooled arrays that were ever in use at once (at least
 * 512 MiB). A training step's arrays all come back at its end, and the next step needs them all again: a
 * ViT unit's step holds ~780 MB of them at its peak (73 arrays of one length), and a smaller cap (it was 512
 * MiB and 16 arrays a length) made it allocate ~275 MB afresh every step, and the garbage collector ran
 * several full collections a step to free them. Since the free arrays are at most what was once in use,
 * keeping them does not raise the process's peak memory for a workload that repeats.
 *
 * Safety: only arrays the pool made are ever recycled (never one a user passed to `tf.tensor`); a buffer is
 * counted once per data entry that holds it or a view of it (a cpu kernel's slice may be a subarray of its
 * input), and recycled when that count falls to zero; an array handed out by `read`/`readSync` (`dataSync`,
 * `data`, `bufferSync`) is never recycled, since its holder may keep it past the tensor's disposal.
 */
export class NativeBackend extends MathBackendCPU {
  /** Free arrays by length. */
  private readonly pool = new Map<number, Float32Array[]>();
  /**
   * Buffers the pool made and may recycle -> data entries holding them (or views of them). Weak: an array a
   * kernel took but never stored (a fallback after all) is garbage-collected as any other.
   */
  private owners = new WeakMap<ArrayBufferLike, number>();
  private pooledBytes = 0;
  /** Bytes of the pool's arrays held by data entries now, and the most there ever were. */
  private liveBytes = 0;
  private peakLiveBytes = 0;

  constructor() {
    super();
    // MathBackendCPU prints a "use tfjs-node" banner on first write; this backend is the answer to it.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /**
   * A Float32Array of length n for a kernel's output: recycled (its contents are left over from earlier
   * use: the kernel must write every element) or new. Use `allocZeroedFloat32` where a kernel relies on zeros.
   */
  allocFloat32(n: number): Float32Array {
    if (n < POOL_MIN_LENGTH) return new Float32Array(n);
    const free = this.pool.get(n);
    const reused = free?.pop();
    if (reused) {
      this.pooledBytes -= reused.byteLength;
      this.owners.set(reused.buffer, 0);
      return reused;
    }
    const made = new Float32Array(n);
    this.owners.set(made.buffer, 0);
    return made;
  }

  /** allocFloat32, filled with zeros. */
  allocZeroedFloat32(n: number): Float32Array {
    const a = this.allocFloat32(n);
    if (n >= POOL_MIN_LENGTH) a.fill(0);
    return a;
  }

  /** Bytes of free arrays the pool holds now. */
  pooledByteCount(): number {
    return this.pooledBytes;
  }

  /** Drops every free array (they are garbage-collected as usual), and the pool's memory of its peak use. */
  emptyPool(): void {
    this.pool.clear();
    this.pooledBytes = 0;
    this.peakLiveBytes = this.liveBytes;
  }

  override write(values: backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    const id = super.write(values, shape, dtype);
    this.retain(values);
    return id;
  }

  override move(dataId: tf.DataId, values: backend_util.BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    const before = this.data.get(dataId)?.values;
    super.move(dataId, values, shape, dtype, refCount);
    if (before !== values) {
      this.release(before);
      this.retain(values);
    }
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const done = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.release(values);
    return done;
  }

  override readSync(dataId: tf.DataId): backend_util.BackendValues {
    this.expose(this.data.get(dataId)?.values);
    return super.readSync(dataId);
  }

  override read(dataId: tf.DataId): Promise<backend_util.BackendValues> {
    this.expose(this.data.get(dataId)?.values);
    return super.read(dataId);
  }

  override dispose(): void {
    this.owners = new WeakMap();
    this.liveBytes = 0;
    this.emptyPool();
    super.dispose();
  }

  private retain(values: backend_util.BackendValues | undefined | null): void {
    if (!ArrayBuffer.isView(values)) return;
    const n = this.owners.get(values.buffer);
    if (n === undefined) return;
    this.owners.set(values.buffer, n + 1);
    if (n === 0) {
      this.liveBytes += values.buffer.byteLength;
      this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    }
  }

  private release(values: backend_util.BackendValues | undefined | null): void {
    if (!ArrayBuffer.isView(values)) return;
    const buffer = values.buffer;
    const n = this.owners.get(buffer);
    if (n === undefined) return;
    if (n > 1) {
      this.owners.set(buffer, n - 1);
      return;
    }
    this.owners.delete(buffer);
    if (n === 1) this.liveBytes -= buffer.byteLength;
    const whole = new Float32Array(buffer);
    const free = this.pool.get(whole.length) ?? [];
    if (this.pooledBytes + whole.byteLength > Math.max(POOL_MIN_CAP_BYTES, this.peakLiveBytes)) return;
    free.push(whole);
    this.pool.set(whole.length, free);
    this.pooledBytes += whole.byteLength;
  }

  /** Values handed out of the backend stay their holder's: never recycled. */
  private expose(values: backend_util.BackendValues | undefined | null): void {
    if (!ArrayBuffer.isView(values)) return;
    const n = this.owners.get(values.buffer);
    if (n === undefined) return;
    this.owners.delete(values.buffer);
    if (n > 0) this.liveBytes -= values.buffer.byteLength;
  }
}

let registered = false;

/**
 * Registers the `native` backend and its kernels (idempotent). Returns false, without throwing, when the
 * addon is not available; loadNativeAddon() says why.
 */
export function registerNativeBackend(): boolean {
  if (registered) return true;
  if (!loadNativeAddon().ok) return false;
  if (tf.findBackendFactory(NATIVE_BACKEND_NAME) == null) {
    tf.registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackend(), 0);
  }
  const cpuKernels = tf.getKernelsForBackend('cpu');
  if (cpuKernels.length === 0) {
    throw new Error('no cpu kernels registered: is more than one copy of @tensorflow/tfjs-core loaded?');
  }
  const replacements = nativeKernels();
  for (const config of cpuKernels) {
    if (tf.getKernel(config.kernelName, NATIVE_BACKEND_NAME) != null) continue;
    const make = replacements.get(config.kernelName);
    tf.registerKernel({
      ...config,
      backendName: NATIVE_BACKEND_NAME,
      kernelFunc: make ? make(config.kernelFunc) : config.kernelFunc,
    });
  }
  // Kernels of sll's own ops (transformer-ops.ts, fused-layers.ts), which tfjs-cpu does not have.
  for (const [kernelName, kernelFunc] of [...transformerKernels(), ...fusedLayerKernels()]) {
    if (tf.getKernel(kernelName, NATIVE_BACKEND_NAME) == null) tf.registerKernel({ kernelName, backendName: NATIVE_BACKEND_NAME, kernelFunc });
  }
  registered = true;
  return true;
}

/** Names of the kernels the addon implements (the rest run the cpu backend's JavaScript). */
export function nativeKernelNames(): string[] {
  return [...nativeKernels().keys()];
}

// ---- Helpers -------------------------------------------------------------------------------------

type TensorInfo = tf.TensorInfo;
type KernelFunc = tf.KernelFunc;
type KernelArgs = Parameters<KernelFunc>[0];
/** A native kernel: returns null to hand the call to the cpu fallback. */
type NativeImpl = (args: KernelArgs) => TensorInfo | null;

function withFallback(impl: NativeImpl): (fallback: KernelFunc) => KernelFunc {
  return (fallback) => (args) => impl(args) ?? fallback(args);
}

function backendOf(args: KernelArgs): NativeBackend {
  return args.backend as NativeBackend;
}

/**
 * The float32 values of `t` as a Float32Array, or null when `t` is not float32. Values held in another
 * typed array (a cast that only relabelled) are converted into a fresh array, never in place.
 */
export function float32Values(backend: MathBackendCPU, t: TensorInfo): Float32Array | null {
  if (t.dtype !== 'float32') return null;
  const values = backend.data.get(t.dataId)?.values;
  if (values instanceof Float32Array) return values;
  if (values instanceof Int32Array || values instanceof Uint8Array || values instanceof Float64Array) {
    return Float32Array.from(values);
  }
  return null;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** [rows, cols] of a tensor read as rows along its last axis (a scalar is one row of one column). */
function rowsAndColumns(shape: readonly number[]): [number, number] {
  const cols = shape.length > 0 ? shape[shape.length - 1] : 1;
  return [cols > 0 ? sizeOf(shape) / cols : 0, cols];
}

function output(backend: NativeBackend, shape: number[], values: Float32Array): TensorInfo {
  return backend.makeTensorInfo(shape, 'float32', values);
}

// ---- Elementwise binary ops ----------------------------------------------------------------------

const BINARY_OPS: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  SquaredDifference: 6,
  Pow: 7,
};
/** The addon's binary op that returns its first input (a strided copy: Transpose); no tfjs kernel of its own. */
const BIN_FIRST = 8;

interface BroadcastPlan {
  outShape: number[];
  size: number;
  d: [number, number, number, number];
  sa: [number, number, number, number];
  sb: [number, number, number, number];
}

const planCache = new Map<string, BroadcastPlan | null>();

/**
 * Collapses the broadcast of aShape with bShape to at most 4 dims of (out extent, a stride, b stride),
 * merging neighbouring dims that both operands read the same way. Null when the shapes do not broadcast
 * or need more than 4 dims.
 */
export function broadcastPlan(aShape: readonly number[], bShape: readonly number[]): BroadcastPlan | null {
  const key = `${aShape.join(',')}|${bShape.join(',')}`;
  const cached = planCache.get(key);
  if (cached !== undefined) return cached;
  const plan = makePlan(aShape, bShape);
  if (planCache.size > 4096) planCache.clear();
  planCache.set(key, plan);
  return plan;
}

function makePlan(aShape: readonly number[], bShape: readonly number[]): BroadcastPlan | null {
  const rank = Math.max(aShape.length, bShape.length);
  const outShape: number[] = [];
  const dims: { n: number; a: boolean; b: boolean }[] = [];
  for (let i = 0; i < rank; i++) {
    const ad = i < rank - aShape.length ? 1 : aShape[i - (rank - aShape.length)];
    const bd = i < rank - bShape.length ? 1 : bShape[i - (rank - bShape.length)];
    let n: number;
    if (ad === bd) n = ad;
    else if (ad === 1) n = bd;
    else if (bd === 1) n = ad;
    else return null;
    outShape.push(n);
    if (n === 1) continue;
    const a = ad === n;
    const b = bd === n;
    const last = dims[dims.length - 1];
    if (last && last.a === a && last.b === b) last.n *= n;
    else dims.push({ n, a, b });
  }
  if (dims.length > 4) return null;
  while (dims.length < 4) dims.unshift({ n: 1, a: false, b: false });
  const d = dims.map((x) => x.n) as BroadcastPlan['d'];
  const sa = [0, 0, 0, 0] as BroadcastPlan['sa'];
  const sb = [0, 0, 0, 0] as BroadcastPlan['sb'];
  let accA = 1;
  let accB = 1;
  for (let i = 3; i >= 0; i--) {
    if (dims[i].a) {
      sa[i] = accA;
      accA *= dims[i].n;
    }
    if (dims[i].b) {
      sb[i] = accB;
      accB *= dims[i].n;
    }
  }
  return { outShape, size: sizeOf(outShape), d, sa, sb };
}

/** a op b with broadcasting on raw arrays; null when the shapes need the fallback. */
function binaryValues(
  backend: NativeBackend,
  op: number,
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
): { values: Float32Array; shape: number[] } | null {
  const plan = broadcastPlan(aShape, bShape);
  if (plan == null) return null;
  const out = backend.allocFloat32(plan.size);
  const { d, sa, sb } = plan;
  addon!.binary(op, a, b, out, d[0], d[1], d[2], d[3], sa[0], sa[1], sa[2], sa[3], sb[0], sb[1], sb[2], sb[3]);
  return { values: out, shape: plan.outShape };
}

function binaryKernel(op: number): NativeImpl {
  return (args) => {
    const backend = backendOf(args);
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const av = float32Values(backend, a);
    const bv = float32Values(backend, b);
    if (av == null || bv == null) return null;
    const r = binaryValues(backend, op, av, a.shape, bv, b.shape);
    return r && output(backend, r.shape, r.values);
  };
}

// ---- Elementwise unary ops -----------------------------------------------------------------------

const UNARY_OPS: Record<string, number> = {
  Relu: 0,
  Relu6: 1,
  Step: 2,
  Sqrt: 3,
  Rsqrt: 4,
  Square: 5,
  Exp: 6,
  Log: 7,
  Neg: 8,
  Abs: 9,
  Sigmoid: 10,
  Tanh: 11,
  Elu: 12,
  LeakyRelu: 13,
  Reciprocal: 14,
  Log1p: 15,
  Expm1: 16,
  Sign: 17,
  Softplus: 18,
};

function unaryKernel(op: number): NativeImpl {
  return (args) => {
    const backend = backendOf(args);
    const { x } = args.inputs as { x: TensorInfo };
    const xv = float32Values(backend, x);
    if (xv == null) return null;
    const alpha = Number((args.attrs as { alpha?: number } | undefined)?.alpha ?? 0);
    const out = backend.allocFloat32(xv.length);
    addon!.unary(op, xv, out, alpha);
    return output(backend, x.shape.slice(), out);
  };
}

// ---- Reductions ----------------------------------------------------------------------------------

const REDUCE_OPS: Record<string, { op: number; axisAttr: string }> = {
  Sum: { op: 0, axisAttr: 'axis' },
  Max: { op: 1, axisAttr: 'reductionIndices' },
  Min: { op: 2, axisAttr: 'axis' },
  Prod: { op: 3, axisAttr: 'axis' },
  Mean: { op: 4, axisAttr: 'axis' },
};

function reduceKernel(op: number, axisAttr: string): NativeImpl {
  return (args) => {
    const backend = backendOf(args);
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = args.attrs as Record<string, unknown>;
    const xv = float32Values(backend, x);
    if (xv == null) return null;
    const shape = x.shape;
    const axes = tf.util.parseAxisParam(attrs[axisAttr] as number | number[], shape).sort((p, q) => p - q);
    if (axes.length === 0) return null;
    for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null;
    const lo = axes[0];
    const hi = axes[axes.length - 1];
    const pre = sizeOf(shape.slice(0, lo));
    const red = sizeOf(shape.slice(lo, hi + 1));
    const post = sizeOf(shape.slice(hi + 1));
    if (red === 0) return null;
    const out = backend.allocFloat32(pre * post);
    addon!.reduce(op, xv, out, pre, red, post);
    const outShape = attrs.keepDims
      ? shape.map((d, i) => (i >= lo && i <= hi ? 1 : d))
      : shape.filter((_, i) => i < lo || i > hi);
    return output(backend, outShape, out);
  };
}

const softmaxKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { logits } = args.inputs as { logits: TensorInfo };
  const { dim } = args.attrs as { dim: number };
  const rank = logits.shape.length;
  if (rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
  const xv = float32Values(backend, logits);
  if (xv == null) return null;
  const cols = logits.shape[rank - 1];
  const out = backend.allocFloat32(xv.length);
  if (cols > 0) addon!.softmax(xv, out, xv.length / cols, cols, false);
  return output(backend, logits.shape.slice(), out);
};

// ---- Transformer: LayerNorm and GELU -------------------------------------------------------------

/** The values of a float32 input, or an error: these kernels have no fallback. */
function requireFloat32(backend: NativeBackend, t: TensorInfo, what: string): Float32Array {
  const v = float32Values(backend, t);
  if (v == null) throw new Error(`${what} must be float32, got ${t.dtype}`);
  return v;
}

function transformerKernels(): [string, KernelFunc][] {
  const layerNorm: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { x, gamma, beta } = args.inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
    const { epsilon } = args.attrs as { epsilon: number };
    const [rows, cols] = rowsAndColumns(x.shape);
    const y = backend.allocFloat32(rows * cols);
    const mean = backend.allocFloat32(rows);
    const rstd = backend.allocFloat32(rows);
    addon!.layerNorm(requireFloat32(backend, x, 'x'), requireFloat32(backend, gamma, 'gamma'), requireFloat32(backend, beta, 'beta'), y, mean, rstd, rows, cols, epsilon);
    return [output(backend, x.shape.slice(), y), output(backend, [rows], mean), output(backend, [rows], rstd)];
  };
  const layerNormGrad: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { dy, x, gamma, mean, rstd } = args.inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'rstd', TensorInfo>;
    const [rows, cols] = rowsAndColumns(x.shape);
    const dx = backend.allocFloat32(rows * cols);
    const dgamma = backend.allocFloat32(cols);
    const dbeta = backend.allocFloat32(cols);
    const f = (t: TensorInfo, what: string) => requireFloat32(backend, t, what);
    addon!.layerNormGrad(f(dy, 'dy'), f(x, 'x'), f(gamma, 'gamma'), f(mean, 'mean'), f(rstd, 'rstd'), dx, dgamma, dbeta, rows, cols);
    return [output(backend, x.shape.slice(), dx), output(backend, [cols], dgamma), output(backend, [cols], dbeta)];
  };
  const gelu: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { x } = args.inputs as { x: TensorInfo };
    const y = backend.allocFloat32(sizeOf(x.shape));
    addon!.gelu(requireFloat32(backend, x, 'x'), y);
    return output(backend, x.shape.slice(), y);
  };
  const geluGrad: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { dy, x } = args.inputs as { dy: TensorInfo; x: TensorInfo };
    const dx = backend.allocFloat32(sizeOf(x.shape));
    addon!.geluGrad(requireFloat32(backend, dy, 'dy'), requireFloat32(backend, x, 'x'), dx);
    return output(backend, x.shape.slice(), dx);
  };
  return [
    [LAYER_NORM_KERNEL, layerNorm],
    [LAYER_NORM_GRAD_KERNEL, layerNormGrad],
    [GELU_KERNEL, gelu],
    [GELU_GRAD_KERNEL, geluGrad],
  ];
}

// ---- Fused layers (models/fused-layers.ts) ---------------------------------------------------------

/**
 * The fused Dense and Conv2D of a unit are tfjs's _FusedMatMul and FusedConv2D under names of their own
 * (whose gradients fused-layers.ts registers), with the cpu kernels as fallbacks; and the backward pass of
 * their activation and bias in one pass.
 */
function fusedLayerKernels(): [string, KernelFunc][] {
  const cpu = (name: string): KernelFunc => {
    const k = tf.getKernel(name, 'cpu');
    if (k == null) throw new Error(`no cpu kernel ${name}`);
    return k.kernelFunc;
  };
  const activationBiasGrad: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { dy, y } = args.inputs as { dy: TensorInfo; y: TensorInfo };
    const { activation } = args.attrs as { activation: string };
    if (!tf.util.arraysEqual(dy.shape, y.shape)) throw new Error(`${ACTIVATION_BIAS_GRAD_KERNEL}: dy [${dy.shape}] and y [${y.shape}] differ`);
    const [rows, cols] = rowsAndColumns(dy.shape);
    const dyv = requireFloat32(backend, dy, 'dy');
    const db = backend.allocFloat32(cols);
    if (activation === 'linear') {
      // dz is dy itself (shared storage, as Identity does); db its column sums.
      addon!.reduce(REDUCE_OPS.Sum.op, dyv, db, 1, rows, cols);
      backend.incRef(dy.dataId);
      return [{ dataId: dy.dataId, shape: dy.shape.slice(), dtype: 'float32' }, output(backend, [cols], db)];
    }
    if (activation !== 'relu') throw new Error(`${ACTIVATION_BIAS_GRAD_KERNEL}: activation '${activation}' is not fused`);
    const dz = backend.allocFloat32(rows * cols);
    addon!.reluBiasGrad(dyv, requireFloat32(backend, y, 'y'), dz, db, rows, cols);
    return [output(backend, dy.shape.slice(), dz), output(backend, [cols], db)];
  };
  const batchNormTrain: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { x, scale, offset } = args.inputs as Record<'x' | 'scale' | 'offset', TensorInfo>;
    const { epsilon } = args.attrs as { epsilon: number };
    const [rows, cols] = rowsAndColumns(x.shape);
    const y = backend.allocFloat32(rows * cols);
    const mean = backend.allocFloat32(cols);
    const variance = backend.allocFloat32(cols);
    const f = (t: TensorInfo, what: string) => requireFloat32(backend, t, what);
    addon!.batchNormTrain(f(x, 'x'), f(scale, 'scale'), f(offset, 'offset'), y, mean, variance, rows, cols, epsilon);
    return [output(backend, x.shape.slice(), y), output(backend, [cols], mean), output(backend, [cols], variance)];
  };
  const batchNormTrainGrad: KernelFunc = (args) => {
    const backend = backendOf(args);
    const { dy, x, scale, mean, variance } = args.inputs as Record<'dy' | 'x' | 'scale' | 'mean' | 'variance', TensorInfo>;
    const { epsilon } = args.attrs as { epsilon: number };
    const [rows, cols] = rowsAndColumns(x.shape);
    const dx = backend.allocFloat32(rows * cols);
    const dscale = backend.allocFloat32(cols);
    const doffset = backend.allocFloat32(cols);
    const f = (t: TensorInfo, what: string) => requireFloat32(backend, t, what);
    addon!.batchNormTrainGrad(f(dy, 'dy'), f(x, 'x'), f(scale, 'scale'), f(mean, 'mean'), f(variance, 'variance'), dx, dscale, doffset, rows, cols, epsilon);
    return [output(backend, x.shape.slice(), dx), output(backend, [cols], dscale), output(backend, [cols], doffset)];
  };
  return [
    [DENSE_KERNEL, withFallback(fusedMatMulKernel)(cpu('_FusedMatMul'))],
    [CONV2D_KERNEL, withFallback(fusedConv2dKernel)(cpu('FusedConv2D'))],
    [ACTIVATION_BIAS_GRAD_KERNEL, activationBiasGrad],
    [BATCH_NORM_TRAIN_KERNEL, batchNormTrain],
    [BATCH_NORM_TRAIN_GRAD_KERNEL, batchNormTrainGrad],
  ];
}

// ---- Matrix multiplication -----------------------------------------------------------------------

const ACTIVATIONS: Record<string, { act: number; unary: number }> = {
  linear: { act: 0, unary: -1 },
  relu: { act: 1, unary: UNARY_OPS.Relu },
  relu6: { act: 2, unary: UNARY_OPS.Relu6 },
  leakyrelu: { act: 3, unary: UNARY_OPS.LeakyRelu },
  sigmoid: { act: 4, unary: UNARY_OPS.Sigmoid },
  elu: { act: 5, unary: UNARY_OPS.Elu },
};
const BIAS_NONE = 0;
const BIAS_ROW = 1;
const BIAS_FULL = 2;
const BIAS_COL = 3;
const BIAS_SCALAR = 4;

interface MatmulPlan {
  av: Float32Array;
  bv: Float32Array;
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  batchShape: number[];
  batch: number;
  /** Batch strides in elements when one native call covers the batch (0 broadcasts); null otherwise. */
  strideA: number | null;
  strideB: number | null;
  aBatchShape: number[];
  bBatchShape: number[];
}

function planMatmul(backend: NativeBackend, a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean): MatmulPlan | null {
  const av = float32Values(backend, a);
  const bv = float32Values(backend, b);
  if (av == null || bv == null) return null;
  const ar = a.shape.length;
  const br = b.shape.length;
  if (ar < 2 || br < 2) return null;
  const M = transA ? a.shape[ar - 1] : a.shape[ar - 2];
  const K = transA ? a.shape[ar - 2] : a.shape[ar - 1];
  const Kb = transB ? b.shape[br - 1] : b.shape[br - 2];
  const N = transB ? b.shape[br - 2] : b.shape[br - 1];
  if (K !== Kb) return null;
  const aBatchShape = a.shape.slice(0, -2);
  const bBatchShape = b.shape.slice(0, -2);
  const bp = broadcastPlan(aBatchShape, bBatchShape);
  if (bp == null) return null;
  const batch = bp.size;
  const batchA = sizeOf(aBatchShape);
  const batchB = sizeOf(bBatchShape);
  const simple = (batchA === batch || batchA === 1) && (batchB === batch || batchB === 1);
  return {
    av, bv, transA, transB, M, N, K,
    batchShape: bp.outShape, batch,
    strideA: simple ? (batchA === 1 ? 0 : M * K) : null,
    strideB: simple ? (batchB === 1 ? 0 : K * N) : null,
    aBatchShape, bBatchShape,
  };
}

/** Runs op(A) op(B) for every batch entry into `out`, with bias and activation when given. */
function runMatmul(p: MatmulPlan, out: Float32Array, bias: Float32Array | null, biasMode: number, act: number, alpha: number): void {
  const { M, N, K, batch } = p;
  if (batch === 0 || M === 0 || N === 0) return;
  if (p.strideA != null && p.strideB != null) {
    addon!.matmul(p.av, p.bv, out, batch, M, N, K, p.transA, p.transB, p.strideA, p.strideB, bias, biasMode, act, alpha);
    return;
  }
  // General batch broadcast ([2,1,M,K] x [3,K,N]): one GEMM per output batch entry.
  const rank = p.batchShape.length;
  const aPad = padShape(p.aBatchShape, rank);
  const bPad = padShape(p.bBatchShape, rank);
  const lda = p.transA ? M : K;
  const ldb = p.transB ? K : N;
  for (let i = 0; i < batch; i++) {
    let rem = i;
    let ia = 0;
    let ib = 0;
    let mulA = 1;
    let mulB = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const n = p.batchShape[d];
      const idx = rem % n;
      rem = Math.floor(rem / n);
      if (aPad[d] !== 1) ia += idx * mulA;
      if (bPad[d] !== 1) ib += idx * mulB;
      mulA *= aPad[d];
      mulB *= bPad[d];
    }
    addon!.sgemm(p.transA, p.transB, M, N, K, 1, p.av, lda, p.bv, ldb, 0, out, N, ia * M * K, ib * K * N, i * M * N);
  }
  if (biasMode !== BIAS_NONE || act !== 0) addon!.epilogue(out, batch, M, N, bias, biasMode, act, alpha);
}

/** The output array of a product: recycled, or zeros when K = 0 (a GEMM then writes nothing). */
function matmulOutput(backend: NativeBackend, p: MatmulPlan): Float32Array {
  const n = p.batch * p.M * p.N;
  return p.K === 0 ? backend.allocZeroedFloat32(n) : backend.allocFloat32(n);
}

function padShape(shape: readonly number[], rank: number): number[] {
  return [...new Array(rank - shape.length).fill(1), ...shape];
}

const batchMatMulKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const p = planMatmul(backend, a, b, !!transposeA, !!transposeB);
  if (p == null) return null;
  const out = matmulOutput(backend, p);
  runMatmul(p, out, null, BIAS_NONE, 0, 0);
  return output(backend, [...p.batchShape, p.M, p.N], out);
};

/** How a bias of `shape` adds to a [..., M, N] product: one of the epilogue modes, or null (general). */
function biasMode(shape: readonly number[], outRank: number, M: number, N: number): number | null {
  if (shape.length > outRank) return null;
  let start = 0;
  while (start < shape.length && shape[start] === 1) start++;
  const s = shape.slice(start);
  if (s.length === 0) return BIAS_SCALAR;
  if (s.length === 1 && s[0] === N) return BIAS_ROW;
  if (s.length === 2 && s[0] === M && s[1] === N) return BIAS_FULL;
  if (s.length === 2 && s[0] === M && s[1] === 1) return BIAS_COL;
  return null;
}

const fusedMatMulKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { a, b, bias, preluActivationWeights } = args.inputs as {
    a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo;
  };
  const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as {
    transposeA: boolean; transposeB: boolean; activation?: string; leakyreluAlpha?: number;
  };
  if (preluActivationWeights != null) return null;
  const act = ACTIVATIONS[activation ?? 'linear'];
  if (act == null) return null;
  const alpha = Number(leakyreluAlpha ?? 0.2);
  const p = planMatmul(backend, a, b, !!transposeA, !!transposeB);
  if (p == null) return null;
  let biasValues: Float32Array | null = null;
  let mode = BIAS_NONE;
  if (bias != null) {
    biasValues = float32Values(backend, bias);
    if (biasValues == null) return null;
    const m = biasMode(bias.shape, p.batchShape.length + 2, p.M, p.N);
    if (m == null) {
      // Any other broadcastable bias: product, then a broadcasting add, then the activation.
      const prod = matmulOutput(backend, p);
      runMatmul(p, prod, null, BIAS_NONE, 0, 0);
      const sum = binaryValues(backend, BINARY_OPS.Add, prod, [...p.batchShape, p.M, p.N], biasValues, bias.shape);
      if (sum == null) return null;
      if (act.unary >= 0) addon!.unary(act.unary, sum.values, sum.values, alpha);
      return output(backend, sum.shape, sum.values);
    }
    mode = m;
  }
  const out = matmulOutput(backend, p);
  runMatmul(p, out, biasValues, mode, act.act, alpha);
  return output(backend, [...p.batchShape, p.M, p.N], out);
};

// ---- Convolution and pooling (NHWC) --------------------------------------------------------------

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type ConvPad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
type RoundingMode = Parameters<typeof tf.backend_util.computeConv2DInfo>[5];

/**
 * The addon's geometry array for a convolution or pooling info:
 * [N, H, W, C, KH, KW, CO, OH, OW, strideH, strideW, dilationH, dilationW, padTop, padLeft].
 * Null when a field does not fit an int32.
 */
export function convGeometry(info: Conv2DInfo): Int32Array | null {
  const fields = [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.filterHeight, info.filterWidth, info.outChannels, info.outHeight, info.outWidth,
    info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left,
  ];
  if (!fields.every((v) => Number.isInteger(v) && Math.abs(v) < 2 ** 31)) return null;
  return Int32Array.from(fields);
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: ConvPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: RoundingMode;
}

/** Conv info for an NHWC float32 convolution the addon handles, or null (NCHW, bad ranks). */
function convInfoFor(xShape: readonly number[], filterShape: readonly number[], attrs: ConvAttrs, dilations: ConvAttrs['dilations']): Conv2DInfo | null {
  if (attrs.dataFormat === 'NCHW') return null;
  if (xShape.length !== 4 || filterShape.length !== 4) return null;
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides, dilations ?? 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
}

/** How a fused convolution's bias applies: per output channel, scalar, or null (a general broadcast). */
function convBiasMode(shape: readonly number[], outChannels: number): number | null {
  if (shape.length > 4) return null;
  const size = sizeOf(shape);
  if (size === 1) return BIAS_SCALAR;
  if (size === outChannels && shape[shape.length - 1] === outChannels) return BIAS_ROW;
  return null;
}

const conv2dKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs;
  const info = convInfoFor(x.shape, filter.shape, attrs, attrs.dilations);
  const geom = info && convGeometry(info);
  const xv = float32Values(backend, x);
  const wv = float32Values(backend, filter);
  if (geom == null || xv == null || wv == null) return null;
  const out = backend.allocFloat32(sizeOf(info!.outShape));
  addon!.conv2d(xv, wv, out, geom, null, BIAS_NONE, 0, 0);
  return output(backend, info!.outShape.slice(), out);
};

const fusedConv2dKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { x, filter, bias, preluActivationWeights } = args.inputs as {
    x: TensorInfo; filter: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo;
  };
  const attrs = args.attrs as unknown as ConvAttrs & { activation?: string; leakyreluAlpha?: number };
  if (preluActivationWeights != null) return null;
  const act = ACTIVATIONS[attrs.activation ?? 'linear'];
  if (act == null) return null;
  const alpha = Number(attrs.leakyreluAlpha ?? 0.2);
  const info = convInfoFor(x.shape, filter.shape, attrs, attrs.dilations);
  const geom = info && convGeometry(info);
  const xv = float32Values(backend, x);
  const wv = float32Values(backend, filter);
  if (geom == null || xv == null || wv == null) return null;
  const outShape = info!.outShape.slice();
  let biasValues: Float32Array | null = null;
  let mode = BIAS_NONE;
  if (bias != null) {
    biasValues = float32Values(backend, bias);
    if (biasValues == null) return null;
    const m = convBiasMode(bias.shape, info!.outChannels);
    if (m == null) {
      // A bias broadcast over more than the channels: convolution, broadcasting add, activation.
      const conv = backend.allocFloat32(sizeOf(outShape));
      addon!.conv2d(xv, wv, conv, geom, null, BIAS_NONE, 0, 0);
      const sum = binaryValues(backend, BINARY_OPS.Add, conv, outShape, biasValues, bias.shape);
      if (sum == null) return null;
      if (act.unary >= 0) addon!.unary(act.unary, sum.values, sum.values, alpha);
      return output(backend, sum.shape, sum.values);
    }
    mode = m;
  }
  const out = backend.allocFloat32(sizeOf(outShape));
  addon!.conv2d(xv, wv, out, geom, biasValues, mode, act.act, alpha);
  return output(backend, outShape, out);
};

const conv2dBackpropInputKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
  const info = convInfoFor(attrs.inputShape, filter.shape, attrs, 1);
  if (info == null || !tf.util.arraysEqual(dy.shape, info.outShape)) return null;
  const geom = convGeometry(info);
  const dyv = float32Values(backend, dy);
  const wv = float32Values(backend, filter);
  if (geom == null || dyv == null || wv == null) return null;
  const dx = backend.allocFloat32(sizeOf(info.inShape));
  addon!.conv2dBackpropInput(dyv, wv, dx, geom);
  return output(backend, info.inShape.slice(), dx);
};

const conv2dBackpropFilterKernel: NativeImpl = (args) => {
  const backend = backendOf(args);
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const info = convInfoFor(x.shape, attrs.filterShape, attrs, 1);
  if (info == null || !tf.util.arraysEqual(dy.shape, info.outShape)) return null;
  const geom = convGeometry(info);
  const xv = float32Values(backend, x);
  const dyv = float32Values(backend, dy);
  if (geom == null || xv == null || dyv == null) return null;
  const dw = backend.allocFloat32(sizeOf(info.filterShape));
  addon!.conv2dBackpropFilter(xv, dyv, dw, geom);
  return output(backend, info.filterShape.slice(), dw);
};

const POOL_MAX = 0;
const POOL_AVG = 1;

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: ConvPad;
  dimRoundingMode?: RoundingMode;
}

function poolInfoFor(xShape: readonly number[], attrs: PoolAttrs): Conv2DInfo | null {
  if (xShape.length !== 4) return null;
  return tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode,
  );
}

function poolKernel(op: number): NativeImpl {
  return (args) => {
    const backend = backendOf(args);
    const { x } = args.inputs as { x: TensorInfo };
    const info = poolInfoFor(x.shape, args.attrs as unknown as PoolAttrs);
    const geom = info && convGeometry(info);
    const xv = float32Values(backend, x);
    if (geom == null || xv == null) return null;
    const out = backend.allocFloat32(sizeOf(info!.outShape));
    addon!.pool2d(op, xv, out, geom);
    return output(backend, info!.outShape.slice(), out);
  };
}

/**
 * MaxPoolGrad ({dy, input, output}) and AvgPoolGrad ({dy, input}). The average-pooling gradient divides
 * by the number of window elements inside the input, as the forward pass (on every backend) does; tfjs's
 * cpu AvgPoolGrad divides by the full window size, which differs for windows that overlap 'same' padding.
 * tfjs's pooling gradients do not pass the forward's dimRoundingMode on (with a numeric pad, the cpu
 * kernels then use the wrong output size); here it is recovered from dy's shape.
 */
function poolGradKernel(op: number): NativeImpl {
  return (args) => {
    const backend = backendOf(args);
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const attrs = args.attrs as unknown as PoolAttrs;
    let info = poolInfoFor(input.shape, attrs);
    if (info != null && !tf.util.arraysEqual(dy.shape, info.outShape) && attrs.dimRoundingMode == null && typeof attrs.pad === 'number') {
      // tfjs's MaxPool and AvgPool gradients drop the forward's dimRoundingMode: recover it from dy.
      for (const mode of ['ceil', 'round', 'floor'] as const) {
        const candidate = poolInfoFor(input.shape, { ...attrs, dimRoundingMode: mode });
        if (candidate != null && tf.util.arraysEqual(dy.shape, candidate.outShape)) {
          info = candidate;
          break;
        }
      }
    }
    if (info == null || !tf.util.arraysEqual(dy.shape, info.outShape)) return null;
    const geom = convGeometry(info);
    const dyv = float32Values(backend, dy);
    const xv = op === POOL_MAX ? float32Values(backend, input) : null;
    if (geom == null || dyv == null || (op === POOL_MAX && xv == null)) return null;
    const dx = backend.allocFloat32(sizeOf(input.shape));
    addon!.pool2dBackprop(op, xv, dyv, dx, geom);
    return output(backend, input.shape.slice(), dx);
  };
}

// ---- Data movement -------------------------------------------------------------------------------

/**
 * Tile by block copies: each input row is copied once, then every finished block is repeated with
 * copyWithin. The cpu kernel indexes element by element; batch norm's gradient tiles [1,1,1,C] over a
 * whole activation, which made it the slowest kernel of a conv step.
 */
function tileKernel(args: KernelArgs): TensorInfo | null {
  const backend = backendOf(args);
  const { x } = args.inputs as { x: TensorInfo };
  const reps = (args.attrs as unknown as { reps: number[] }).reps;
  const xv = float32Values(backend, x);
  if (xv == null || reps.length !== x.shape.length) return null;
  const shape = x.shape;
  const rank = shape.length;
  const outShape = shape.map((d, i) => d * reps[i]);
  const out = backend.allocFloat32(sizeOf(outShape));
  if (rank === 0 || out.length === 0) return output(backend, outShape, out.length ? xv.slice() : out);
  // inner[k]: elements of the input below dim k; block[k]: elements of the output below dim k.
  const inner = new Array<number>(rank + 1).fill(1);
  const block = new Array<number>(rank + 1).fill(1);
  for (let k = rank - 1; k >= 0; k--) {
    inner[k] = inner[k + 1] * shape[k];
    block[k] = block[k + 1] * outShape[k];
  }
  const fill = (k: number, from: number, to: number): void => {
    const once = shape[k] * block[k + 1];
    if (k === rank - 1) out.set(xv.subarray(from, from + shape[k]), to);
    else for (let i = 0; i < shape[k]; i++) fill(k + 1, from + i * inner[k + 1], to + i * block[k + 1]);
    for (let r = 1; r < reps[k]; r++) out.copyWithin(to + r * once, to, to + once);
  };
  fill(0, 0, 0);
  return output(backend, outShape, out);
}

/**
 * Transpose of a float32 tensor of rank <= 4 as one strided copy in the addon (binary op BIN_FIRST, which
 * reads only its first input). tfjs's cpu kernel computes every element's source index from scratch.
 */
function transposeKernel(args: KernelArgs): TensorInfo | null {
  const backend = backendOf(args);
  const { x } = args.inputs as { x: TensorInfo };
  const perm = (args.attrs as unknown as { perm: number[] }).perm;
  const xv = float32Values(backend, x);
  const rank = x.shape.length;
  if (xv == null || rank > 4 || perm.length !== rank) return null;
  const outShape = perm.map((p) => x.shape[p]);
  const out = backend.allocFloat32(xv.length);
  if (xv.length === 0) return output(backend, outShape, out);
  const strides = new Array<number>(rank).fill(1);
  for (let k = rank - 2; k >= 0; k--) strides[k] = strides[k + 1] * x.shape[k + 1];
  const d = [1, 1, 1, 1];
  const sa = [0, 0, 0, 0];
  perm.forEach((p, k) => {
    d[4 - rank + k] = x.shape[p];
    sa[4 - rank + k] = strides[p];
  });
  addon!.binary(BIN_FIRST, xv, xv, out, d[0], d[1], d[2], d[3], sa[0], sa[1], sa[2], sa[3], 0, 0, 0, 0);
  return output(backend, outShape, out);
}

/**
 * Copies the block of `src` (shape `srcShape`) starting at `srcStart` and of extent `size` into `dst`
 * (shape `dstShape`) at `dstStart`, as contiguous runs of the innermost dims: what Slice and Pad are. The
 * cpu kernels index element by element (a pad of a ViT's tokens, or its gradient, took ~100 ms).
 */
function copyBlock(
  src: Float32Array, srcShape: readonly number[], srcStart: readonly number[],
  dst: Float32Array, dstShape: readonly number[], dstStart: readonly number[], size: readonly number[],
): void {
  const rank = size.length;
  const strides = (shape: readonly number[]) => {
    const st = new Array<number>(rank).fill(1);
    for (let k = rank - 2; k >= 0; k--) st[k] = st[k + 1] * shape[k + 1];
    return st;
  };
  const ss = strides(srcShape);
  const ds = strides(dstShape);
  // The run: the innermost dims copied whole in both (plus the first dim that is not), contiguous in both.
  let k = rank - 1;
  let run = size[k];
  while (k > 0 && size[k] === srcShape[k] && size[k] === dstShape[k]) {
    k--;
    run *= size[k];
  }
  const visit = (dim: number, so: number, dof: number): void => {
    if (dim === k) {
      const from = so + srcStart[dim] * ss[dim];
      dst.set(src.subarray(from, from + run), dof + dstStart[dim] * ds[dim]);
      return;
    }
    for (let i = 0; i < size[dim]; i++) visit(dim + 1, so + (srcStart[dim] + i) * ss[dim], dof + (dstStart[dim] + i) * ds[dim]);
  };
  if (size.every((d) => d > 0)) visit(0, 0, 0);
}

function sliceKernel(args: KernelArgs): TensorInfo | null {
  const backend = backendOf(args);
  const { x } = args.inputs as { x: TensorInfo };
  const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
  const xv = float32Values(backend, x);
  const rank = x.shape.length;
  if (xv == null || rank === 0 || begin.length !== rank || size.length !== rank) return null;
  const extent = size.map((d, i) => (d === -1 ? x.shape[i] - begin[i] : d));
  if (extent.some((d, i) => d < 0 || begin[i] < 0 || begin[i] + d > x.shape[i])) return null;
  const out = backend.allocFloat32(sizeOf(extent));
  copyBlock(xv, x.shape, begin, out, extent, new Array<number>(rank).fill(0), extent);
  return output(backend, extent, out);
}

function padKernel(args: KernelArgs): TensorInfo | null {
  const backend = backendOf(args);
  const { x } = args.inputs as { x: TensorInfo };
  const { paddings, constantValue } = args.attrs as unknown as { paddings: [number, number][]; constantValue: number };
  const xv = float32Values(backend, x);
  const rank = x.shape.length;
  if (xv == null || rank === 0 || paddings.length !== rank) return null;
  const outShape = x.shape.map((d, i) => paddings[i][0] + d + paddings[i][1]);
  const out = backend.allocFloat32(sizeOf(outShape));
  out.fill(constantValue);
  copyBlock(xv, x.shape, new Array<number>(rank).fill(0), out, outShape, paddings.map((p) => p[0]), x.shape);
  return output(backend, outShape, out);
}

/**
 * tfjs's FusedBatchNorm (batch norm with given statistics, as in inference) when the statistics, scale and
 * offset each hold one value per channel of the last axis; other broadcasts run the cpu kernel.
 */
function batchNormKernel(args: KernelArgs): TensorInfo | null {
  const backend = backendOf(args);
  const { x, mean, variance, scale, offset } = args.inputs as Record<'x' | 'mean' | 'variance', TensorInfo> & Partial<Record<'scale' | 'offset', TensorInfo>>;
  const { varianceEpsilon } = args.attrs as { varianceEpsilon?: number };
  if (x.shape.length === 0) return null;
  const [rows, cols] = rowsAndColumns(x.shape);
  const perChannel = (t: TensorInfo | undefined): boolean => t == null || (sizeOf(t.shape) === cols && t.shape[t.shape.length - 1] === cols);
  if (![mean, variance, scale, offset].every(perChannel)) return null;
  const xv = float32Values(backend, x);
  const values = [mean, variance, scale, offset].map((t) => (t == null ? null : float32Values(backend, t)));
  if (xv == null || values[0] == null || values[1] == null || (scale != null && values[2] == null) || (offset != null && values[3] == null)) return null;
  const y = backend.allocFloat32(rows * cols);
  addon!.batchNormInfer(xv, values[0], values[1], values[2], values[3], y, rows, cols, varianceEpsilon ?? 0.001);
  return output(backend, x.shape.slice(), y);
}

// ---- The table -----------------------------------------------------------------------------------

let kernelTable: Map<string, (fallback: KernelFunc) => KernelFunc> | null = null;

function nativeKernels(): Map<string, (fallback: KernelFunc) => KernelFunc> {
  if (kernelTable) return kernelTable;
  const t = new Map<string, (fallback: KernelFunc) => KernelFunc>();
  t.set('BatchMatMul', withFallback(batchMatMulKernel));
  t.set('_FusedMatMul', withFallback(fusedMatMulKernel));
  for (const [name, op] of Object.entries(BINARY_OPS)) t.set(name, withFallback(binaryKernel(op)));
  for (const [name, op] of Object.entries(UNARY_OPS)) t.set(name, withFallback(unaryKernel(op)));
  for (const [name, r] of Object.entries(REDUCE_OPS)) t.set(name, withFallback(reduceKernel(r.op, r.axisAttr)));
  t.set('Softmax', withFallback(softmaxKernel));
  t.set('Conv2D', withFallback(conv2dKernel));
  t.set('FusedConv2D', withFallback(fusedConv2dKernel));
  t.set('Conv2DBackpropInput', withFallback(conv2dBackpropInputKernel));
  t.set('Conv2DBackpropFilter', withFallback(conv2dBackpropFilterKernel));
  t.set('MaxPool', withFallback(poolKernel(POOL_MAX)));
  t.set('AvgPool', withFallback(poolKernel(POOL_AVG)));
  t.set('MaxPoolGrad', withFallback(poolGradKernel(POOL_MAX)));
  t.set('AvgPoolGrad', withFallback(poolGradKernel(POOL_AVG)));
  t.set('Tile', withFallback(tileKernel));
  t.set('Transpose', withFallback(transposeKernel));
  t.set('Slice', withFallback(sliceKernel));
  t.set('PadV2', withFallback(padKernel));
  t.set('FusedBatchNorm', withFallback(batchNormKernel));
  kernelTable = t;
  return t;
}
