/**
 * A matrix product on the `webgpu` backend as one dispatch of our own (browser-safe): C = act(op(A) op(B) + b)
 * with op a transpose or not, act ReLU or linear, the bias optional.
 *
 * Why our own: tfjs-backend-webgpu's matmul programs are fine on the GPU, but each run costs the host a
 * shader key, a uniform block written and a bind group made (about five times what one of our dispatches
 * costs), and a training step is mostly matmuls (they were 13 of the SLL MLP step's 25 dispatches). Here
 * the shapes go in a constant uniform written once per shape and the bind group is found again when tfjs's
 * pool hands the same buffers back (tfjs-webgpu.ts).
 *
 * The kernel (default tiling, {@link MatMulTiling}): a workgroup of 16 x 16 threads computes a 64 x 64 tile
 * of C, each thread 4 x 4 entries (rows ty + 16 i, columns tx + 16 j, so that neighbouring threads write
 * neighbouring columns), over K in slices of 16 held in workgroup memory (k-major, each row padded to 65 so
 * that the transposing loads do not all hit one bank). A (B) is read with consecutive threads on its
 * contiguous axis, whichever way it is stored. Out-of-range entries load as 0.
 *
 * In front of tfjs's `BatchMatMul` and `_FusedMatMul` (a single non-empty matrix on each side, float32, bias
 * of the columns' size, ReLU or no activation), so also behind {@link DENSE_KERNEL}; every other case goes to
 * tfjs's kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { keepThreshold } from '../data/random.js';
import { DENSE_KERNEL } from '../models/fused-layers.js';
import { MASKED_PRODUCT_KERNEL, type MaskDraw } from '../objectives/projection.js';
import { STREAM_BITS_WGSL } from './masked-projection.js';
import { computePipeline, constantUniformBuffer, inFront, recordDispatch, releaseAfterSubmit, stockKernel, tensorBuffer, uniformBuffer, webGpuBackend } from './tfjs-webgpu.js';

/** The K slice held in workgroup memory at a time. */
const SLICE = 16;
const MAX_WORKGROUPS = 65535;

/**
 * How the product splits C, as `${rows}x${cols}/${rowsPerThread}x${colsPerThread}`: a workgroup computes a
 * rows x cols tile of C, each of its threads rowsPerThread x colsPerThread entries. Larger per-thread tiles
 * read workgroup memory less often per multiply-add; larger tiles make fewer workgroups, fewer than a big
 * GPU has cores when C is small. `bench:gpu -- --matmuls` times each on a card.
 */
export type MatMulTiling = '64x64/4x4' | '128x64/8x4' | '128x128/8x8';
/** Every tiling, the default first. */
export const MATMUL_TILINGS: readonly MatMulTiling[] = ['64x64/4x4', '128x64/8x4', '128x128/8x8'];

/** A tiling's sizes: the tile's rows and columns, each thread's, and the workgroup's threads along each. */
function tilingSizes(tiling: MatMulTiling) {
  const [rows, cols, rowsPerThread, colsPerThread] = tiling.split(/[x/]/).map(Number);
  const threadRows = rows / rowsPerThread;
  const threadCols = cols / colsPerThread;
  return { rows, cols, rowsPerThread, colsPerThread, threadRows, threadCols, threads: threadRows * threadCols };
}

/** Which matmul a pipeline computes. */
export interface MatMulVariant {
  transposeA: boolean;
  transposeB: boolean;
  bias: boolean;
  relu: boolean;
  /**
   * B is a projection R read through a Bernoulli mask (objectives/projection.ts's masked product): entry i
   * of B's storage is kept, times the draw's value, when its 24 bits of the draw's stream are below the
   * threshold (data/random.ts's streamBits24), else read as 0.
   */
  mask: boolean;
}

/**
 * The loads of one operand's `size` x 16 slice into workgroup memory `tile` (k-major, rows padded by one:
 * tile[k * (size + 1) + i]) by `threads` threads: `contiguousK`: the operand is stored with k contiguous (A as
 * [M, K], B as [N, K]), so 16 neighbouring threads read a row's 16 k; else i is contiguous (A as [K, M], B as
 * [K, N]) and `size` threads read a row.
 */
function sliceLoads(name: 'a' | 'b', tile: string, outer: string, size: number, threads: number, contiguousK: boolean, masked = false): string {
  const loads = (size * SLICE) / threads;
  const lines: string[] = [];
  for (let l = 0; l < loads; l++) {
    const [i, k] = contiguousK
      ? [`t / ${SLICE}u + ${l * (threads / SLICE)}u`, `t % ${SLICE}u`]
      : [`t % ${size}u`, `t / ${size}u + ${l * (threads / size)}u`];
    const index = contiguousK ? `gi * S.K + gk` : `gk * S.${outer} + gi`;
    lines.push(`    {
    let i = ${i};
    let k = ${k};
    let gi = ${name}0 + i;
    let gk = k0 + k;
    var v = 0.0;
    if (gi < S.${outer} && gk < S.K) { ${masked ? `let e = ${index}; v = ${name}[e] * kept(e);` : `v = ${name}[${index}];`} }
    ${tile}[k * ${size + 1}u + i] = v;
    }`);
  }
  return lines.join('\n');
}

/** WGSL of one {@link MatMulVariant} with `tiling`: C [M, N] = act(op(A) op(B) + bias). */
export function matMulWgsl(v: MatMulVariant, tiling: MatMulTiling = MATMUL_TILINGS[0]): string {
  const t = tilingSizes(tiling);
  if (t.threads % SLICE !== 0 || t.threads % t.rows !== 0 || t.threads % t.cols !== 0 || t.threads > 256) {
    throw new Error(`matmul tiling ${tiling}: its ${t.threads} threads do not load its tiles`);
  }
  // The thread's products are unrolled into scalars (acc_i_j) so that they stay in registers whatever the
  // shader compiler does with arrays.
  const I = Array.from({ length: t.rowsPerThread }, (_, i) => i);
  const J = Array.from({ length: t.colsPerThread }, (_, j) => j);
  const acc = I.flatMap((i) => J.map((j) => `acc_${i}_${j}`));
  const products = I.flatMap((i) => J.map((j) => `      acc_${i}_${j} = fma(a_${i}, b_${j}, acc_${i}_${j});`));
  const stores = I.flatMap((i) => [
    `  row = a0 + ty + ${i * t.threadRows}u;`,
    `  if (row < S.M) {`,
    ...J.map((j) => `    store(row, b0 + tx + ${j * t.threadCols}u, acc_${i}_${j});`),
    `  }`,
  ]);
  return /* wgsl */ `
struct Shape { M: u32, N: u32, K: u32, pad: u32 };
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> S: Shape;
${v.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${v.mask ? `struct Draw { key: u32, threshold: u32, value: f32, pad: u32 };
@group(0) @binding(${v.bias ? 5 : 4}) var<uniform> D: Draw;

${STREAM_BITS_WGSL}
// The mask's entry e: kept (times the draw's value) when its 24 bits are below the threshold.
fn kept(e: u32) -> f32 {
  return select(0.0, D.value, streamBits24(D.key, e) < D.threshold);
}` : ''}
var<workgroup> As: array<f32, ${SLICE * (t.rows + 1)}>;
var<workgroup> Bs: array<f32, ${SLICE * (t.cols + 1)}>;

fn store(row: u32, col: u32, value: f32) {
  if (col < S.N) {
    var x = value${v.bias ? ' + bias[col]' : ''};
    ${v.relu ? 'x = max(x, 0.0);' : ''}
    c[row * S.N + col] = x;
  }
}

@compute @workgroup_size(${t.threadCols}, ${t.threadRows})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let t = ty * ${t.threadCols}u + tx;
  let a0 = wid.y * ${t.rows}u;
  let b0 = wid.x * ${t.cols}u;
${acc.map((x) => `  var ${x} = 0.0;`).join('\n')}
  for (var k0 = 0u; k0 < S.K; k0 += ${SLICE}u) {
${sliceLoads('a', 'As', 'M', t.rows, t.threads, !v.transposeA)}
${sliceLoads('b', 'Bs', 'N', t.cols, t.threads, v.transposeB, v.mask)}
    workgroupBarrier();
    for (var k = 0u; k < ${SLICE}u; k++) {
${I.map((i) => `      let a_${i} = As[k * ${t.rows + 1}u + ty + ${i * t.threadRows}u];`).join('\n')}
${J.map((j) => `      let b_${j} = Bs[k * ${t.cols + 1}u + tx + ${j * t.threadCols}u];`).join('\n')}
${products.join('\n')}
    }
    workgroupBarrier();
  }
  var row = 0u;
${stores.join('\n')}
}
`;
}

type KernelFunc = tf.KernelConfig['kernelFunc'];
type Activation = 'linear' | 'relu';

interface MatMulArgs {
  a: tf.TensorInfo;
  b: tf.TensorInfo;
  bias?: tf.TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  activation?: string;
  /** B read through this Bernoulli mask (MASKED_PRODUCT_KERNEL). */
  mask?: MaskDraw;
}

/** The product's M, N, K when this kernel takes the case, else null (tfjs's kernel takes it). */
function shapeOf({ a, b, bias, transposeA, transposeB, activation }: MatMulArgs): { M: number; N: number; K: number } | null {
  const rank = a.shape.length;
  if (b.shape.length !== rank || (rank !== 2 && rank !== 3)) return null;
  if (rank === 3 && (a.shape[0] !== 1 || b.shape[0] !== 1)) return null;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  if (activation != null && activation !== 'linear' && activation !== 'relu') return null;
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transposeA ? [ac, ar] : [ar, ac];
  const [K2, N] = transposeB ? [bc, br] : [br, bc];
  if (K !== K2) throw new Error(`matMul: inner dimensions ${K} and ${K2} differ (a [${a.shape}], b [${b.shape}], transposeA ${transposeA}, transposeB ${transposeB})`);
  if (M * N * K === 0) return null;
  if (bias && (bias.dtype !== 'float32' || tf.util.sizeFromShape(bias.shape) !== N || bias.shape[bias.shape.length - 1] !== N)) return null;
  return { M, N, K };
}

/** The WGSL of each variant, by its pipeline's name. */
const wgsl = new Map<string, string>();

/** The tiling products are recorded with (see {@link useMatMul}). */
let currentTiling: MatMulTiling = MATMUL_TILINGS[0];

/** Records C = act(op(a) op(b) + bias) into a new tensor of the backend, or returns null for tfjs's kernel. */
function record(kernelBackend: unknown, args: MatMulArgs): tf.TensorInfo | null {
  const shape = shapeOf(args);
  if (!shape) return null;
  const { M, N, K } = shape;
  const tiling = currentTiling;
  const { rows, cols } = tilingSizes(tiling);
  const groups: [number, number] = [Math.ceil(N / cols), Math.ceil(M / rows)];
  if (groups[0] > MAX_WORKGROUPS || groups[1] > MAX_WORKGROUPS) return null;
  const backend = webGpuBackend();
  const webgpu = kernelBackend as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo };
  const out = webgpu.makeTensorInfo(args.a.shape.length === 3 ? [1, M, N] : [M, N], 'float32');
  const variant: MatMulVariant = {
    transposeA: args.transposeA,
    transposeB: args.transposeB,
    bias: args.bias != null,
    relu: args.activation === 'relu',
    mask: args.mask != null,
  };
  const name = `sll-matmul-${+variant.transposeA}${+variant.transposeB}${+variant.bias}${+variant.relu}${+variant.mask}-${tiling}`;
  let code = wgsl.get(name);
  if (!code) wgsl.set(name, (code = matMulWgsl(variant, tiling)));
  const pipeline = computePipeline(backend.device, name, code);
  const buffers = [tensorBuffer(backend, args.a), tensorBuffer(backend, args.b), tensorBuffer(backend, out, true), constantUniformBuffer(backend, Uint32Array.from([M, N, K, 0]).buffer)];
  const tensors = [args.a, args.b, out];
  if (args.bias) {
    buffers.push(tensorBuffer(backend, args.bias));
    tensors.push(args.bias);
  }
  let draw: GPUBuffer | null = null;
  if (args.mask) {
    // The step's draw changes every step: a pool buffer, handed back once the dispatch is submitted.
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([args.mask.key >>> 0, keepThreshold(args.mask.keep)]);
    new Float32Array(params, 8, 1)[0] = args.mask.value;
    buffers.push((draw = uniformBuffer(backend, params)));
  }
  recordDispatch(backend, pipeline, buffers, tensors, groups);
  if (draw) releaseAfterSubmit(backend, draw);
  return out;
}

/** BatchMatMul for webgpu: one matrix a side here, anything else by tfjs's kernel. */
const batchMatMul: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
  return record(args.backend, { a, b, transposeA, transposeB }) ?? stockKernel('BatchMatMul')(args);
};

/** _FusedMatMul (and the fused Dense layer) for webgpu: bias and ReLU or none here, else tfjs's kernel. */
const fusedMatMul: KernelFunc = (args) => {
  const { a, b, bias, preluActivationWeights } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
  const { transposeA, transposeB, activation } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean; activation?: Activation };
  const out = preluActivationWeights ? null : record(args.backend, { a, b, bias, transposeA, transposeB, activation: activation ?? 'linear' });
  return out ?? stockKernel('_FusedMatMul')(args);
};

/** The masked product f (M ⊙ R) of objectives/projection.ts: always here (its inputs are 2-D float32). */
const maskedProduct: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeB, key, keep, value } = args.attrs as unknown as { transposeB: boolean } & MaskDraw;
  const out = record(args.backend, { a, b, transposeA: false, transposeB, mask: { key, keep, value } });
  if (!out) throw new Error(`${MASKED_PRODUCT_KERNEL}: a [${a.shape}] ${a.dtype} times b [${b.shape}] ${b.dtype} is not a product of non-empty float32 matrices`);
  return out;
};

/**
 * Puts this matmul in front of tfjs-webgpu's `BatchMatMul` and `_FusedMatMul` (on; the fused Dense layer,
 * {@link DENSE_KERNEL}, runs `_FusedMatMul`) and registers it as the masked product of the projection
 * heads ({@link MASKED_PRODUCT_KERNEL}), or leaves products to tfjs's programs (off). `tiling`: the one
 * our products use from now on (default: the first of {@link MATMUL_TILINGS}). Needs tfjs-backend-webgpu loaded.
 */
export function useMatMul(on: boolean, tiling: MatMulTiling = MATMUL_TILINGS[0]): void {
  if (!MATMUL_TILINGS.includes(tiling)) throw new Error(`matmul tiling '${tiling}' is not one of ${MATMUL_TILINGS.join(', ')}`);
  currentTiling = tiling;
  inFront('BatchMatMul', batchMatMul, on);
  inFront('_FusedMatMul', fusedMatMul, on);
  if (tf.getKernel(MASKED_PRODUCT_KERNEL, 'webgpu')) tf.unregisterKernel(MASKED_PRODUCT_KERNEL, 'webgpu');
  if (on) tf.registerKernel({ kernelName: MASKED_PRODUCT_KERNEL, backendName: 'webgpu', kernelFunc: maskedProduct });
}
